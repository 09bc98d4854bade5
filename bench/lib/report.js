// Runs in the bench driver. Turns the raw figures of a run into the printed
// tables, the chart's series and the verdict on each target of issues 2 and 5.
// Every ratio compares figures measured in the same run.
'use strict';
const { summarize, ms, ratio, table } = require('./stats');

const med = (a) => (a && a.length ? summarize(a).median : NaN);
const mb = (kb) => (Number.isFinite(kb) ? (kb / 1024).toFixed(1) : '-');
const isSkipped = (x) => x === undefined || x === null || x.skipped !== undefined;

function row(label, samples, { vs, cp } = {}) {
  if (!samples || samples.length === 0) return null;
  const s = summarize(samples);
  return [label, String(s.n), ms(s.median), ms(s.p99), vs === undefined ? '' : ratio(s.median, vs), cp === undefined ? '' : ratio(cp, s.median)];
}

function skippedRow(label) {
  return [label, '-', 'skipped', '', '', ''];
}

const compact = (rows) => rows.filter(Boolean);

/** The issue-2 table for one heap size: fork in the parent, cycle, start, baselines. */
function sizeTable(r) {
  const f = r.forkd ?? {};
  const c = r.c?.latency;
  const b = r.baseline ?? {};
  const cpStart = med(b.cpFork?.startMs);
  const cStart = med(c?.startMs);
  const title = `${r.mb} MB heap (RSS ${mb(f.app?.rssKb)} MB, ${f.app?.maps ?? '-'} mappings)`;
  const rows = compact([
    row('C fork(), parent side', c?.forkMs),
    row('forkd fork(), parent side', f.rawFork?.forkMs, { vs: med(c?.forkMs) }),
    row('C fork + _exit + waitpid', c?.cycleMs),
    row('forkd fork + exit + reap', f.rawFork?.cycleMs, { vs: med(c?.cycleMs) }),
    row('C start (child runs)', c?.startMs, { cp: cpStart }),
    row('forkd forkRun start (fn runs)', f.start?.startMs, { vs: cStart, cp: cpStart }),
    row('forkd forkRun round trip', f.start?.roundTripMs, { vs: med(c?.cycleMs), cp: cpStart }),
    row('Worker start (after loading)', b.worker?.startMs, { vs: cStart, cp: cpStart }),
    row('V8 snapshot start', b.snapshot?.startMs, { vs: cStart, cp: cpStart }),
    row('child_process.fork start (after loading)', b.cpFork?.startMs, { vs: cStart, cp: cpStart }),
  ]);
  return `${title}\n${table(['', 'n', 'median ms', 'p99 ms', 'vs C', 'cp.fork / this'], rows)}`;
}

function startTable(r, daemon) {
  const f = r.forkd ?? {};
  const c = r.c?.latency;
  const b = r.baseline ?? {};
  const cStart = med(c?.startMs);
  const cpStart = med(b.cpFork?.startMs);
  const opt = { vs: cStart, cp: cpStart };
  const rows = compact([
    row('C fork() -> child runs (same RSS)', c?.startMs, opt),
    row('forkd forkRun() -> fn runs', f.start?.startMs, opt),
    row('forkd forkRun() -> promise settles', f.start?.resolvedMs, opt),
    f.prefork ? row(`forkd prefork pool (${f.prefork.size}) run() -> fn runs`, f.prefork.startMs, opt) : null,
    daemon === undefined ? null : isSkipped(daemon.httpOnDemand) ? skippedRow('forkd HTTP, on demand') : row('forkd HTTP, on demand', daemon.httpOnDemand.start.startMs, opt),
    daemon === undefined ? null : isSkipped(daemon.httpPrefork) ? skippedRow('forkd HTTP, prefork') : row('forkd HTTP, prefork', daemon.httpPrefork.start.startMs, opt),
    row('Worker -> first line after loading', b.worker?.startMs, opt),
    row('node from V8 snapshot -> main runs', b.snapshot?.startMs, opt),
    row('child_process.fork -> first line after loading', b.cpFork?.startMs, opt),
  ]);
  const notes = Object.entries(daemon ?? {})
    .filter(([, v]) => isSkipped(v))
    .map(([k, v]) => `   ${k} skipped: ${v.skipped}`);
  return [table(['start latency', 'n', 'median ms', 'p99 ms', 'vs C', 'cp.fork / this'], rows), ...notes].join('\n');
}

function physicalTable(sizes) {
  const rows = [];
  for (const r of sizes) {
    const f = r.forkd;
    if (!f?.rawFork || !r.c?.latency) continue;
    const cyc = med(f.rawFork.cycleMs);
    const cRss = med(r.c.latency.cycleMs);
    const cTight = med(r.c.tight?.cycleMs);
    rows.push([
      `${r.mb} MB`,
      mb(f.app.rssKb),
      mb(f.app.rssAnonKb),
      String(f.app.maps),
      ms(cRss),
      ms(cTight),
      ms(cyc),
      ratio(cyc, cRss),
      ratio(cyc, cTight),
      ms(med(r.c.latency.forkMs)),
      ms(med(f.rawFork.forkMs)),
      ratio(med(f.rawFork.forkMs), med(r.c.latency.forkMs)),
    ]);
  }
  return table(
    ['heap', 'RSS MB', 'anon MB', 'VMAs', 'C cycle', 'C tight', 'forkd cycle', 'vs C', 'vs tight', 'C fork', 'forkd fork', 'vs C'],
    rows,
  );
}

function phasesTable(sizes) {
  const rows = [];
  for (const r of sizes) {
    const p = r.forkd?.phases;
    if (!p) continue;
    rows.push([
      `${r.mb} MB`,
      ms(med(p.gateMs)),
      ms(med(r.c?.tight?.forkMs)),
      ms(med(p.nativeForkMs)),
      ms(med(r.forkd.rawFork?.forkMs)),
      ms(med(r.c?.tight?.startMs)),
      ms(med(p.nativeChildMs)),
      ms(med(p.jsChildMs)),
      ms(med(r.forkd.start?.startMs)),
    ]);
  }
  return table(['heap', 'JS gate', 'C fork (tight)', 'native fork', 'forkd.fork()', 'C child runs', 'native child', 'JS child', 'forkRun fn'], rows);
}

function throughputTable(empty, app, daemon) {
  const concs = Object.keys(app?.forkd?.throughput ?? empty?.forkd?.throughput ?? {}).map(Number);
  const rate = (x, c) => x?.[c]?.perSecond;
  const rows = concs.map((c) => {
    const fa = rate(app?.forkd?.throughput, c);
    const ca = rate(app?.c?.throughput, c);
    return [
      String(c),
      rate(empty?.forkd?.throughput, c)?.toFixed(0) ?? '-',
      rate(empty?.c?.throughput, c)?.toFixed(0) ?? '-',
      fa?.toFixed(0) ?? '-',
      ca?.toFixed(0) ?? '-',
      fa && ca ? `${((fa / ca) * 100).toFixed(0)}%` : '-',
      rate(app?.forkd?.prefork?.throughput, c)?.toFixed(0) ?? '-',
      daemon === undefined ? '-' : isSkipped(daemon.httpOnDemand) ? 'skipped' : rate(daemon.httpOnDemand.throughput, c)?.toFixed(0) ?? '-',
      daemon === undefined ? '-' : isSkipped(daemon.httpPrefork) ? 'skipped' : rate(daemon.httpPrefork.throughput, c)?.toFixed(0) ?? '-',
    ];
  });
  return table(
    ['concurrency', 'forkd empty', 'C empty RSS', `forkd ${app?.mb ?? '-'} MB`, 'C same RSS', 'forkd / C', 'prefork', 'HTTP', 'HTTP prefork'],
    rows,
  );
}

/** CPU time each trivial run cost (ms): where the two cores go. */
function cpuPerRunTable(empty, app) {
  const concs = Object.keys(app?.forkd?.throughput ?? {}).map(Number);
  const f = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
  const rows = concs.map((c) => {
    const fa = app.forkd.throughput[c];
    const ca = app.c?.throughput?.[c];
    const fe = empty?.forkd?.throughput?.[c];
    return [
      String(c),
      f(fe?.parentCpuMsPerRun),
      f(fe?.childCpuMsPerRun),
      f(fa.parentCpuMsPerRun),
      f(fa.childCpuMsPerRun),
      f(ca?.parentCpuMsPerRun),
      f(ca?.childCpuMsPerRun),
    ];
  });
  return table(['concurrency', 'empty: parent', 'child', `${app?.mb} MB: parent`, 'child', 'C same RSS: parent', 'child'], rows);
}

function memoryTable(r) {
  const m = r?.forkd?.memory?.gc;
  const mc = r?.forkd?.memory?.compactingGc;
  const b = r?.baseline?.cpMemory;
  const line = (label, list) => {
    if (!list || list.length === 0) return null;
    return [label, String(list.length), mb(med(list.map((x) => x.ussKb))), mb(med(list.map((x) => x.pssKb))), mb(med(list.map((x) => x.rssKb)))];
  };
  return table(
    ['child of the app', 'n', 'USS MB', 'PSS MB', 'RSS MB'],
    compact([
      line('forkd: right after fork', m?.afterFork),
      line('forkd: after a trivial job', m?.afterJob),
      line('forkd: after a full GC', m?.afterGc),
      line('(the zygote, meanwhile)', m?.parent),
      line('forkd, zygote compacted: right after fork', mc?.afterFork),
      line('forkd, zygote compacted: after a trivial job', mc?.afterJob),
      line('forkd, zygote compacted: after a full GC', mc?.afterGc),
      line('child_process.fork: after loading', b?.afterLoad),
      line('child_process.fork: after a trivial job', b?.afterJob),
      line('child_process.fork: after a full GC', b?.afterGc),
    ]),
  );
}

function heapScalingTable(sizes) {
  const rows = [];
  for (const r of sizes) {
    const f = r.forkd;
    if (!f?.start) continue;
    const s = summarize(f.start.startMs);
    const cStart = med(r.c?.latency?.startMs);
    const cp = med(r.baseline?.cpFork?.startMs);
    rows.push([`${r.mb} MB`, mb(f.app.rssKb), ms(s.median), ms(s.p99), ms(cStart), ratio(s.median, cStart), ms(med(r.baseline?.worker?.startMs)), ms(cp), ratio(cp, s.median)]);
  }
  return table(['heap', 'RSS MB', 'forkd start', 'p99', 'C start', 'vs C', 'Worker', 'cp.fork', 'cp.fork / forkd'], rows);
}

function burstTable(r) {
  const b = r?.forkd?.burst;
  if (!b) return '';
  const rows = Object.entries(b).map(([k, v]) => {
    const s = summarize(v.startMs);
    return [String(k), String(s.n), ms(s.median), ms(s.p99), ms(med(v.lastMs)), ms(med(v.lastMs) / Number(k))];
  });
  return table(['concurrent runs', 'n', 'median start ms', 'p99 ms', 'last of burst', 'per run'], rows);
}

/** The verdict on each target that this run measured. */
function targets({ app, memory, empty, daemon, sizes }) {
  const out = [];
  const add = (issue, target, measured, met, note) => out.push({ issue, target, measured, met, note });
  const f = app?.forkd;
  const cStart = med(app?.c?.latency?.startMs);
  const start = med(f?.start?.startMs);
  const cp = med(app?.baseline?.cpFork?.startMs);
  const worker = med(app?.baseline?.worker?.startMs);
  for (const r of sizes) {
    if (!r.forkd?.rawFork || !r.c?.latency) continue;
    const x = med(r.forkd.rawFork.cycleMs) / med(r.c.latency.cycleMs);
    add(2, `raw fork cycle within 1.3x of C at the same RSS (${r.mb} MB heap)`, `${x.toFixed(2)}x`, x <= 1.3);
  }
  if (Number.isFinite(start) && Number.isFinite(cStart)) {
    const x = start / cStart;
    add(5, `on-demand start within 1.3x of C fork() at the zygote's RSS (${app.mb} MB app)`, `${x.toFixed(2)}x (${ms(start)} vs ${ms(cStart)} ms)`, x <= 1.3);
  }
  if (Number.isFinite(start) && Number.isFinite(cp)) {
    const x = cp / start;
    add('2, 5', `start at least 30x faster than child_process.fork (${app.mb} MB app)`, `${x.toFixed(1)}x (${ms(start)} vs ${ms(cp)} ms)`, x >= 30);
  }
  if (Number.isFinite(start) && Number.isFinite(worker)) {
    const x = worker / start;
    add(5, `start at least 10x faster than a Worker (${app.mb} MB app)`, `${x.toFixed(1)}x (${ms(start)} vs ${ms(worker)} ms)`, x >= 10);
  }
  const best = (t) => Math.max(...Object.values(t ?? {}).map((v) => v.perSecond));
  if (empty?.forkd?.throughput) {
    const x = best(empty.forkd.throughput);
    const cx = best(empty.c?.throughput);
    add(5, 'at least 1000 trivial runs/s with a zygote that loads nothing', `${x.toFixed(0)}/s (C at that RSS: ${Number.isFinite(cx) ? cx.toFixed(0) : '-'}/s)`, x >= 1000);
  }
  if (f?.throughput && app?.c?.throughput) {
    const x = best(f.throughput);
    const cx = best(app.c.throughput);
    add(5, `throughput with the ${app.mb} MB app at least 70% of C at the same RSS`, `${((x / cx) * 100).toFixed(0)}% (${x.toFixed(0)} vs ${cx.toFixed(0)}/s, best concurrency of each)`, x / cx >= 0.7);
  }
  if (memory?.forkd?.memory) {
    const uss = med(memory.forkd.memory.gc.afterJob.map((m) => m.ussKb)) / 1024;
    add(5, `child USS after a trivial job on the ${memory.mb} MB app at most 5 MB`, `${uss.toFixed(1)} MB`, uss <= 5);
  }
  const lib = f?.prefork;
  const httpD = daemon?.httpOnDemand;
  const httpP = daemon?.httpPrefork;
  if (!lib) add(5, 'prefork start p50 at most 0.2 ms through the library; 150x faster than child_process.fork', 'not measured', null);
  else {
    const p = med(lib.startMs);
    add(5, 'prefork start p50 at most 0.2 ms through the library', `${ms(p)} ms (p99 ${ms(summarize(lib.startMs).p99)})`, p <= 0.2);
    if (Number.isFinite(cp)) add(5, `prefork start 150x faster than child_process.fork (${app.mb} MB app)`, `${(cp / p).toFixed(0)}x`, cp / p >= 150);
  }
  if (isSkipped(httpD)) add(5, 'HTTP adds at most 1 ms to the on-demand start', 'not measured', null, httpD?.skipped);
  else {
    const d = med(httpD.start.startMs) - start;
    add(5, 'HTTP adds at most 1 ms to the on-demand start', `+${ms(d)} ms`, d <= 1);
  }
  if (isSkipped(httpP)) add(5, 'prefork start p50 at most 1 ms end to end through HTTP', 'not measured', null, httpP?.skipped);
  else {
    const p = med(httpP.start.startMs);
    add(5, 'prefork start p50 at most 1 ms end to end through HTTP', `${ms(p)} ms`, p <= 1);
  }
  return out;
}

function targetsTable(list) {
  return table(
    ['issue', 'target', 'measured', 'verdict'],
    list.map((t) => [String(t.issue), t.target, t.measured, t.met === null ? 'not measured' : t.met ? 'met' : 'MISSED']),
    { left: [1, 2, 3] },
  );
}

/** Start-latency series for the chart, in display order. */
function chartSeries({ app, sizes, daemon }) {
  const series = [];
  const add = (label, samples, kind) => series.push({ label, samples: samples ?? [], kind });
  const skip = (label, what) => series.push({ label, samples: [], kind: 'skipped', note: what?.skipped ?? 'not measured' });
  if (app) {
    add(`C fork() at the ${app.mb} MB app's RSS`, app.c?.latency?.startMs, 'c');
    add(`forkd on demand, ${app.mb} MB`, app.forkd?.start?.startMs, 'forkd');
  }
  for (const r of sizes) if (r !== app && r.forkd?.start) add(`forkd on demand, ${r.mb} MB`, r.forkd.start.startMs, 'forkd');
  if (app?.forkd?.prefork) add(`forkd prefork, ${app.mb} MB`, app.forkd.prefork.startMs, 'forkd');
  if (daemon !== undefined) {
    if (isSkipped(daemon.httpOnDemand)) skip('forkd HTTP', daemon.httpOnDemand);
    else add(`forkd HTTP, ${app?.mb ?? '-'} MB`, daemon.httpOnDemand.start.startMs, 'forkd');
    if (isSkipped(daemon.httpPrefork)) skip('forkd HTTP prefork', daemon.httpPrefork);
    else add(`forkd HTTP prefork, ${app?.mb ?? '-'} MB`, daemon.httpPrefork.start.startMs, 'forkd');
  }
  if (app) {
    add(`Worker, ${app.mb} MB`, app.baseline?.worker?.startMs, 'baseline');
    add(`V8 snapshot, ${app.mb} MB`, app.baseline?.snapshot?.startMs, 'baseline');
    add(`child_process.fork, ${app.mb} MB`, app.baseline?.cpFork?.startMs, 'baseline');
  }
  return series.filter((s) => s.kind === 'skipped' || s.samples.length > 0);
}

/**
 * The service scenario: starting a job from a process that holds the app,
 * by forkRun in-process, through its own zygote (startZygote) and by
 * child_process.fork. "vs forkRun": ratio of medians to forkRun's;
 * "cp.fork / this": how many times faster than child_process.fork.
 */
function zygoteTable(z) {
  if (isSkipped(z)) return `   skipped: ${z?.skipped ?? 'not run'}`;
  const fr = { start: med(z.forkRun?.startMs), rt: med(z.forkRun?.roundTripMs) };
  const cp = { start: med(z.cpFork?.startMs), rt: med(z.cpFork?.roundTripMs) };
  const line = (label, part) => {
    if (!part || part.startMs.length === 0) return null;
    const s = summarize(part.startMs);
    const r = summarize(part.roundTripMs);
    return [label, String(s.n), ms(s.median), ms(s.p99), ratio(s.median, fr.start), ratio(cp.start, s.median), ms(r.median), ms(r.p99), ratio(r.median, fr.rt), ratio(cp.rt, r.median)];
  };
  const rows = compact([
    line('forkRun in-process', z.forkRun),
    line('startZygote, on demand', z.zygote),
    line(`startZygote, prefork ${z.prefork}`, z.zygotePrefork),
    line('child_process.fork (loads the app)', z.cpFork),
  ]);
  const out = [table(['', 'n', 'start p50', 'p99', 'vs forkRun', 'cp.fork / this', 'result p50', 'p99', 'vs forkRun', 'cp.fork / this'], rows)];
  const conc = Object.keys(z.forkRun?.throughput ?? {});
  if (conc.length > 0) {
    const trows = compact(
      [['forkRun in-process', z.forkRun], ['startZygote, on demand', z.zygote], [`startZygote, prefork ${z.prefork}`, z.zygotePrefork]].map(([label, part]) =>
        part?.throughput ? [label, ...conc.map((c) => part.throughput[c].perSecond.toFixed(0)), ...conc.map((c) => ratio(part.throughput[c].perSecond, z.forkRun.throughput[c].perSecond))] : null,
      ),
    );
    out.push('', table(['runs/s at concurrency', ...conc.map((c) => `c=${c}`), ...conc.map((c) => `vs forkRun c=${c}`)], trows));
  }
  out.push(`   (ms; "start": call to the job's first line; "result": to the result in the calling process; app ${z.heapMb} MB, zygote ready ${z.zygoteStartMs} ms after startZygote())`);
  return out.join('\n');
}

module.exports = {
  sizeTable,
  startTable,
  physicalTable,
  phasesTable,
  throughputTable,
  cpuPerRunTable,
  memoryTable,
  heapScalingTable,
  burstTable,
  targets,
  targetsTable,
  chartSeries,
  med,
  zygoteTable,
};
