// Runs in the bench driver. Draws the start-latency distributions side by
// side as an SVG, by hand: one row per scenario on a shared logarithmic time
// axis; each row is a strip of every sample, a box from p25 to p75, the
// median as a bar, a whisker from the minimum to p99, and the median printed.
'use strict';
const { summarize } = require('./stats');

const COLORS = { c: '#6b7280', forkd: '#0f766e', baseline: '#b45309', skipped: '#9ca3af' };

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(v) {
  if (v >= 1000) return `${+(v / 1000).toFixed(2)} s`;
  if (v >= 10) return `${v.toFixed(0)} ms`;
  if (v >= 1) return `${v.toFixed(1)} ms`;
  return `${v.toFixed(2)} ms`;
}

// A deterministic jitter, so the same data draws the same picture.
function jitter(i) {
  const x = Math.sin(i * 12.9898) * 43758.5453;
  return x - Math.floor(x) - 0.5;
}

/**
 * series: [{ label, samples (ms), kind: 'c' | 'forkd' | 'baseline' | 'skipped', note? }]
 * Returns the SVG document as a string.
 */
function startLatencyChart(series, { title, subtitle }) {
  const left = 250;
  const right = 110;
  const plotW = 620;
  const rowH = 34;
  const top = 84;
  const width = left + plotW + right;
  const height = top + series.length * rowH + 50;
  const all = series.flatMap((s) => s.samples).filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.max(1e-3, Math.min(...all, 1))));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...all, 10)));
  const x = (v) => left + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotW;

  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${left}" y="24" font-size="15" font-weight="bold" fill="#111827">${esc(title)}</text>`);
  out.push(`<text x="${left}" y="42" fill="#4b5563">${esc(subtitle)}</text>`);
  let lx = left;
  for (const [kind, text] of [['c', 'C fork(): the physical limit'], ['forkd', 'forkd'], ['baseline', 'what Node offers instead']]) {
    out.push(`<rect x="${lx}" y="51" width="10" height="10" fill="${COLORS[kind]}" fill-opacity="0.6"/>`);
    out.push(`<text x="${lx + 14}" y="60" fill="#374151" font-size="11">${esc(text)}</text>`);
    lx += 24 + text.length * 6.2;
  }

  // Grid: decades labelled, 2 and 5 faint.
  const axisY = top + series.length * rowH + 6;
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    for (const m of [1, 2, 5]) {
      const v = d * m;
      if (v > hi * 1.0001) break;
      const gx = x(v).toFixed(1);
      out.push(`<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${axisY}" stroke="${m === 1 ? '#d1d5db' : '#f3f4f6'}"/>`);
      if (m === 1 || series.length > 0) {
        out.push(`<text x="${gx}" y="${axisY + 16}" text-anchor="middle" fill="${m === 1 ? '#374151' : '#9ca3af'}" font-size="${m === 1 ? 11 : 9}">${esc(fmt(v))}</text>`);
      }
    }
  }
  out.push(`<text x="${left + plotW / 2}" y="${axisY + 36}" text-anchor="middle" fill="#374151">start latency: request to the first line of the job (log scale)</text>`);

  series.forEach((s, i) => {
    const cy = top + i * rowH + rowH / 2;
    if (i % 2 === 0) out.push(`<rect x="0" y="${cy - rowH / 2}" width="${width}" height="${rowH}" fill="#f9fafb" fill-opacity="0.8"/>`);
    out.push(`<text x="${left - 12}" y="${cy + 4}" text-anchor="end" fill="#111827">${esc(s.label)}</text>`);
    if (s.kind === 'skipped' || s.samples.length === 0) {
      out.push(`<text x="${left + 8}" y="${cy + 4}" fill="${COLORS.skipped}" font-style="italic">not measured: ${esc(s.note ?? '')}</text>`);
      return;
    }
    const color = COLORS[s.kind] ?? COLORS.baseline;
    const st = summarize(s.samples);
    s.samples.forEach((v, k) => {
      out.push(`<circle cx="${x(v).toFixed(1)}" cy="${(cy + jitter(k) * (rowH - 12)).toFixed(1)}" r="1.6" fill="${color}" fill-opacity="0.35"/>`);
    });
    out.push(`<line x1="${x(st.min).toFixed(1)}" y1="${cy}" x2="${x(st.p99).toFixed(1)}" y2="${cy}" stroke="${color}" stroke-width="1.2"/>`);
    for (const v of [st.min, st.p99]) out.push(`<line x1="${x(v).toFixed(1)}" y1="${cy - 5}" x2="${x(v).toFixed(1)}" y2="${cy + 5}" stroke="${color}" stroke-width="1.2"/>`);
    const bx = x(st.p25);
    const bw = Math.max(1.5, x(st.p75) - bx);
    out.push(`<rect x="${bx.toFixed(1)}" y="${cy - 8}" width="${bw.toFixed(1)}" height="16" fill="${color}" fill-opacity="0.25" stroke="${color}"/>`);
    out.push(`<line x1="${x(st.median).toFixed(1)}" y1="${cy - 10}" x2="${x(st.median).toFixed(1)}" y2="${cy + 10}" stroke="${color}" stroke-width="3"/>`);
    out.push(`<text x="${left + plotW + 10}" y="${cy + 4}" fill="#111827">${esc(fmt(st.median))}<tspan dx="6" fill="#6b7280" font-size="10">n=${st.n}</tspan></text>`);
  });
  out.push(`<text x="${left + plotW + 10}" y="${top - 10}" fill="#374151" font-weight="bold">median</text>`);
  out.push(`<text x="10" y="${height - 8}" fill="#9ca3af" font-size="10">box: p25-p75, bar: median, whisker: min-p99, dots: every sample</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

module.exports = { startLatencyChart };
