// `node --single-threaded bench/experiments/child-guards.js`: what forkd's
// guards against repeated work cost (docs/FORK_SAFETY.md, hazards 47-49).
//   1. A write to a socket the child opened itself: net.Socket.prototype.write
//      checks first whether the socket is the parent's (one fstat per socket,
//      then a WeakMap lookup). Measured against the same write made through
//      the unguarded Writable.prototype.write, in the same child.
//   2. A write to a connection the parent opened: refused by a synchronous
//      throw (what a client such as ioredis gets instead of a reconnect).
//   3. fs.write through the in-flight counter (write-tracking.ts), against a
//      process that has not loaded forkd, each writing to /dev/null.
// Knobs: FORKD_BENCH_WRITES (default 100000), FORKD_BENCH_ROUNDS (7).
'use strict';
const { execFileSync } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const { Writable } = require('node:stream');
const forkd = require('../..');
const { summarize, table } = require('../lib/stats');

const WRITES = Number(process.env.FORKD_BENCH_WRITES ?? 100000);
const ROUNDS = Number(process.env.FORKD_BENCH_ROUNDS ?? 7);
const chunk = Buffer.alloc(16, 'x');

// ns per write for `write` on a socket pair of the child's own; the peer
// reads everything, so writes do not pile up in memory.
async function socketWrites(write) {
  const server = net.createServer((s) => s.resume());
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const socket = net.connect(server.address().port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.cork();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < WRITES; i++) write(socket);
  const ns = Number(process.hrtime.bigint() - t0) / WRITES;
  socket.destroy();
  server.close();
  return ns;
}

async function main() {
  const server = net.createServer((s) => s.resume());
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const inherited = net.connect(server.address().port, '127.0.0.1');
  await new Promise((resolve) => inherited.once('connect', resolve));
  const guarded = [];
  const bare = [];
  const refused = [];
  for (let round = 0; round < ROUNDS; round++) {
    const child = await forkd.forkRun(async () => {
      // Alternated, the first pair dropped: it pays for compiling both paths.
      const pairs = [];
      for (let k = 0; k < 4; k++) pairs.push([await socketWrites((s) => s.write(chunk)), await socketWrites((s) => Writable.prototype.write.call(s, chunk))]);
      const kept = pairs.slice(1);
      const a = summarize(kept.map((p) => p[0])).median;
      const b = summarize(kept.map((p) => p[1])).median;
      const n = 2000;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) {
        try {
          inherited.write(chunk);
        } catch {}
      }
      return { a, b, refusedNs: Number(process.hrtime.bigint() - t0) / n };
    });
    const { result } = await child.exited;
    guarded.push(result.a);
    bare.push(result.b);
    refused.push(result.refusedNs);
  }
  inherited.destroy();
  server.close();

  // fs.write with and without forkd loaded, in fresh processes, alternated.
  const fsLoop = (load) =>
    `${load ? "require(" + JSON.stringify(path.join(__dirname, '..', '..')) + ");" : ''}` +
    "const fs=require('fs');const fd=fs.openSync('/dev/null','w');const b=Buffer.alloc(16);let left=" + WRITES + ";" +
    'const t0=process.hrtime.bigint();let inflight=0;' +
    // 64 writes in flight at a time, as a busy logger keeps one or more.
    'function next(){while(inflight<64&&left>0){left--;inflight++;fs.write(fd,b,done)}}' +
    'function done(){inflight--;if(left>0)next();else if(inflight===0)process.stdout.write(String(Number(process.hrtime.bigint()-t0)/' + WRITES + '))}next();';
  const tracked = [];
  const untracked = [];
  for (let round = 0; round < ROUNDS; round++) {
    tracked.push(Number(execFileSync(process.execPath, ['-e', fsLoop(true)])));
    untracked.push(Number(execFileSync(process.execPath, ['-e', fsLoop(false)])));
  }

  const row = (name, samples) => {
    const s = summarize(samples);
    return [name, s.median.toFixed(0), s.p99.toFixed(0), String(s.n)];
  };
  console.log(`socket writes of 16 B (corked), ${WRITES} per run, median of 3 runs per child, one child per round, ns per write; fs.write to /dev/null, ${WRITES} per round`);
  console.log(
    table(
      ['what', 'median ns', 'max ns', 'rounds'],
      [
        row('child socket write, guarded', guarded),
        row('child socket write, unguarded', bare),
        row('write to the parent\'s socket (refused)', refused),
        row('fs.write, forkd loaded', tracked),
        row('fs.write, without forkd', untracked),
      ],
      { left: [0] },
    ),
  );
  const g = summarize(guarded).median;
  const b = summarize(bare).median;
  const t = summarize(tracked).median;
  const u = summarize(untracked).median;
  console.log(`guard: +${(g - b).toFixed(0)} ns per socket write (${((g / b - 1) * 100).toFixed(1)} %); write tracking: +${(t - u).toFixed(0)} ns per fs.write (${((t / u - 1) * 100).toFixed(1)} %)`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
