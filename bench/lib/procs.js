// Runs in the bench driver and in the host processes. Starting the measuring
// processes, the C baseline, and reading a process's memory from /proc.
'use strict';
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const binDir = path.join(__dirname, '..', 'results', 'bin');
const cSource = path.join(__dirname, '..', 'c', 'fork-cycle.c');
const cBinary = path.join(binDir, 'fork-cycle');

/** Compiles bench/c/fork-cycle.c (cc -O2) when the binary is missing or stale. */
function compileC() {
  const stale = !fs.existsSync(cBinary) || fs.statSync(cBinary).mtimeMs < fs.statSync(cSource).mtimeMs;
  if (stale) {
    fs.mkdirSync(binDir, { recursive: true });
    execFileSync(process.env.CC || 'cc', ['-O2', '-Wall', '-o', cBinary, cSource], { stdio: 'inherit' });
  }
  return cBinary;
}

// fork-cycle reports microseconds; the suite works in milliseconds.
function cLatency(j) {
  const toMs = (a) => a.map((us) => us / 1000);
  return { rssKb: j.rssKb, maps: j.maps, forkMs: toMs(j.forkUs), startMs: toMs(j.startUs), cycleMs: toMs(j.cycleUs) };
}

/** Runs the C baseline with the given options; resolves with its JSON line. */
function runC(options) {
  const args = [];
  for (const [k, v] of Object.entries(options)) args.push(`--${k}`, String(v));
  return new Promise((resolve, reject) => {
    const child = spawn(compileC(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code, signal) => {
      if (code !== 0) return reject(new Error(`fork-cycle ${args.join(' ')} ended with ${signal ?? code}: ${err.trim()}`));
      resolve(JSON.parse(out));
    });
  });
}

/**
 * Starts `node <flags> <script>` with a task, and resolves with the JSON it
 * writes to its result file. Its stderr (progress lines) is passed through,
 * indented; the last lines are kept for the error if it fails.
 */
function runHost(script, flags, task, { label = path.basename(script), env } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forkd-bench-'));
  const taskPath = path.join(dir, 'task.json');
  const resultPath = path.join(dir, 'result.json');
  fs.writeFileSync(taskPath, JSON.stringify(task));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...flags, script, taskPath, resultPath], {
      env: env ?? process.env,
      // stdout is not used: a forkd host refuses to fork while stdout has
      // queued output, and progress goes to stderr anyway.
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const tail = [];
    let partial = '';
    child.stderr.on('data', (chunk) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        process.stderr.write(`  [${label}] ${line}\n`);
        tail.push(line);
        if (tail.length > 30) tail.shift();
      }
    });
    child.on('close', (code, signal) => {
      try {
        if (code !== 0) throw new Error(`${label} ended with ${signal ?? `code ${code}`}:\n${tail.join('\n')}${partial}`);
        resolve(JSON.parse(fs.readFileSync(resultPath, 'utf8')));
      } catch (error) {
        reject(error);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

/** Memory of a process from /proc/PID/smaps_rollup, in KiB. uss = Private_Clean + Private_Dirty. */
function smapsRollup(pid = 'self') {
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  const privateClean = field('Private_Clean');
  const privateDirty = field('Private_Dirty');
  return {
    rssKb: field('Rss'),
    pssKb: field('Pss'),
    ussKb: privateClean + privateDirty,
    privateCleanKb: privateClean,
    privateDirtyKb: privateDirty,
    sharedKb: field('Shared_Clean') + field('Shared_Dirty'),
  };
}

function statusKb(pid, field) {
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
}

function rssKb(pid = 'self') {
  return statusKb(pid, 'VmRSS');
}

/** The anonymous part of RSS: what fork() copies page-table entries for. */
function rssAnonKb(pid = 'self') {
  return statusKb(pid, 'RssAnon');
}

/** Memory taken by the process's page tables (a fork copies them). */
function vmPteKb(pid = 'self') {
  return statusKb(pid, 'VmPTE');
}

/** Number of mappings (VMAs) of a process. */
function mapCount(pid = 'self') {
  return fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter(Boolean).length;
}

function procState(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return 'gone';
  }
}

/**
 * A promise of a timer. Not node:timers/promises: in a forkd host, a timer
 * pending at fork() must be one forkd tracks (the global setTimeout, looked
 * up at call time, after forkd wrapped it), or it fires in the child and
 * runs the parent's code there. A prefork child, idle for long, met exactly
 * that with timers/promises: docs/FORK_SAFETY.md lists it as not covered.
 */
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits (bounded) until a process that stopped itself with SIGSTOP is stopped. */
async function waitStopped(pid, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const state = procState(pid);
    if (state === 'T' || state === 't') return;
    if (state === 'gone' || state === 'Z') throw new Error(`process ${pid} ended before it stopped`);
    if (Date.now() > end) throw new Error(`process ${pid} did not stop within ${timeoutMs} ms (state ${state})`);
    await sleep(1);
  }
}

/** Nanoseconds of the shared monotonic clock between two hrtime.bigint() values, as ms. */
function msBetween(t0, t1) {
  return Number(BigInt(t1) - BigInt(t0)) / 1e6;
}

function machine() {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    thp: fs.existsSync('/sys/kernel/mm/transparent_hugepage/enabled')
      ? fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8').trim()
      : 'unknown',
  };
}

/**
 * A measuring host's start: the task file and result path from argv, a
 * stderr logger, and a watch that ends the host if the bench driver dies
 * (a host is useless without it).
 */
function hostTask() {
  const [taskPath, resultPath] = process.argv.slice(2);
  const task = JSON.parse(fs.readFileSync(taskPath, 'utf8'));
  const driver = process.ppid;
  setInterval(() => {
    if (process.ppid !== driver) process.exit(1);
  }, 500).unref();
  return { task, resultPath, log: (line) => process.stderr.write(`${line}\n`) };
}

module.exports = { compileC, runC, cLatency, runHost, smapsRollup, rssKb, rssAnonKb, vmPteKb, mapCount, waitStopped, msBetween, sleep, machine, hostTask };
