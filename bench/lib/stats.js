// Runs in the bench driver. Summaries and plain-text tables. Percentiles use
// the nearest-rank method: with n samples, p99 is the ceil(0.99 n)-th
// smallest, so below 100 samples it is the maximum (the table prints n).
'use strict';

function sorted(samples) {
  return Float64Array.from(samples).sort();
}

function rank(s, p) {
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
}

/** { n, min, p25, median, p75, p99, max, mean } of an array of numbers. */
function summarize(samples) {
  const s = sorted(samples);
  const n = s.length;
  let sum = 0;
  for (const v of s) sum += v;
  return {
    n,
    min: n ? s[0] : NaN,
    p25: rank(s, 0.25),
    median: n ? (n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2) : NaN,
    p75: rank(s, 0.75),
    p99: rank(s, 0.99),
    max: n ? s[n - 1] : NaN,
    mean: n ? sum / n : NaN,
  };
}

/** Milliseconds, with precision that fits the magnitude. */
function ms(v) {
  if (v === undefined || v === null || !Number.isFinite(v)) return '-';
  if (v >= 1000) return `${(v / 1000).toFixed(2)} s`;
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  if (v >= 1) return v.toFixed(2);
  return v.toFixed(3);
}

function ratio(a, b) {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '-';
  const r = a / b;
  return r >= 100 ? `${r.toFixed(0)}x` : r >= 10 ? `${r.toFixed(1)}x` : `${r.toFixed(2)}x`;
}

/** Plain-text table: the first column (and those listed in `left`) left-aligned, the others right-aligned. */
function table(header, rows, { left = [] } = {}) {
  const all = [header, ...rows].map((r) => r.map((c) => String(c)));
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r) => r.map((c, i) => (i === 0 || left.includes(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [line(all[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n');
}

module.exports = { summarize, ms, ratio, table };
