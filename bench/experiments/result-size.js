// `node bench/experiments/result-size.js`: what large run results cost the
// daemon's supervisor (issue 10, case 9). Starts `forkd serve` on an app
// whose handler returns about N MB of JSON (an array of 1 KiB strings), then:
// one 50 MB result, four 20 MB results one after the other (all retained),
// each fetched with ?wait=true as a client would; after each, a trivial run
// measures how long the daemon takes to serve the next request. Prints the
// supervisor's CPU (utime + stime from /proc/PID/stat) per step, its RSS
// after the step and its peak RSS (VmHWM). Knobs: FORKD_RESULT_FLAGS (extra
// `forkd serve` flags, e.g. "--max-result-bytes 67108864"), FORKD_RESULT_MB
// (default "50,20,20,20,20").
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..', '..');
const CLK_TCK = 100;

function procCpuMs(pid) {
  const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

function procMemMb(pid) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

function post(port, urlPath, body) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: urlPath, headers: { 'content-type': 'application/json' }, agent: false }, (res) => {
      let bytes = 0;
      const head = [];
      res.on('data', (c) => {
        if (bytes < 4096) head.push(c);
        bytes += c.length;
      });
      res.on('end', () => resolve({ status: res.statusCode, bytes, head: Buffer.concat(head).toString('utf8').slice(0, 4096) }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forkd-result-size-'));
  const app = path.join(dir, 'app.js');
  fs.writeFileSync(
    app,
    `exports.handlers = {
  big: async ({ mb }) => Array.from({ length: mb * 1024 }, (_, i) => String(i).padStart(1022, 'x')),
  small: async () => 1,
};\n`,
  );
  const flags = (process.env.FORKD_RESULT_FLAGS ?? '').split(/\s+/).filter(Boolean);
  const sizes = (process.env.FORKD_RESULT_MB ?? '50,20,20,20,20').split(',').map(Number);
  const child = spawn(process.execPath, [path.join(root, 'dist', 'cli', 'main.js'), 'serve', '--app', app, '--port', '0', '--state-dir', path.join(dir, 'state'), ...flags], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let port = 0;
  let ready = false;
  let log = '';
  await new Promise((resolve, reject) => {
    child.stderr.setEncoding('utf8').on('data', (chunk) => {
      log += chunk;
      for (const line of chunk.split('\n')) {
        if (line.includes('"forkd listening"')) port = JSON.parse(line).port;
        if (line.includes('"zygote ready"')) ready = true;
      }
      if (port !== 0 && ready) resolve();
    });
    child.once('exit', () => reject(new Error(`the daemon exited:\n${log}`)));
  });
  const rows = [];
  try {
    const base = procMemMb(child.pid);
    console.log(`supervisor pid ${child.pid}, RSS at start ${base.rss.toFixed(0)} MB; flags: ${flags.join(' ') || '(defaults)'}`);
    for (const mb of sizes) {
      const cpu0 = procCpuMs(child.pid);
      const t0 = performance.now();
      const res = await post(port, '/v1/runs?wait=true', { handler: 'big', args: { mb } });
      const wall = performance.now() - t0;
      const cpu = procCpuMs(child.pid) - cpu0;
      const t1 = performance.now();
      const next = await post(port, '/v1/runs?wait=true', { handler: 'small' });
      const nextMs = performance.now() - t1;
      const mem = procMemMb(child.pid);
      const state = /"state":"([a-z_]+)"/.exec(res.head)?.[1] ?? '?';
      const code = /"code":"(FORKD_ERR_[A-Z_]+)"/.exec(res.head)?.[1] ?? '';
      const nextState = /"state":"([a-z_]+)"/.exec(next.head)?.[1] ?? '?';
      rows.push({ mb, status: res.status, state, code, answerMb: (res.bytes / 1048576).toFixed(1), wallMs: wall.toFixed(0), cpuMs: cpu.toFixed(0), rssMb: mem.rss.toFixed(0), peakMb: mem.hwm.toFixed(0), nextRun: `${nextState} in ${nextMs.toFixed(0)} ms` });
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.table(rows);
}

main().catch((error) => {
  console.error(error.stack ?? String(error));
  process.exitCode = 1;
});
