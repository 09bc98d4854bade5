// Runs in the uvu process (and, by copy, in the children it forks). Shared
// test helpers: bounded waits, a ready channel children report on, spawned
// fixtures whose stderr ends up in the failure message, and /proc readers
// for zombies and process facts. Not a test file (the runner only loads
// *.test.js).
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const assert = require('uvu/assert');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');

/** Resolves with `promise`, or rejects after `ms` naming `what`. */
function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `check` every 10 ms until it returns a truthy value, which it resolves with; at most `ms`. */
async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A child's exit info within `ms`; on timeout the child is SIGKILLed and reaped, then the test fails. */
async function exitOf(child, ms = 10000) {
  try {
    return await within(child.exited, ms, `child ${child.pid} to exit`);
  } catch (error) {
    child.kill('SIGKILL');
    await within(child.exited, 5000, `child ${child.pid} to die after SIGKILL`).catch(() => {});
    throw error;
  }
}

function tmpDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'forkd-test-'));
}

/**
 * A unix-socket server children report to: a child calls
 * `tell(channel.path, line)`, the test awaits `channel.next()`. Lines from
 * any number of connections arrive in order of receipt.
 */
async function readyChannel() {
  const dir = tmpDir();
  const socketPath = path.join(dir, 'ready.sock');
  const lines = [];
  const waiters = [];
  const push = (line) => {
    const waiter = waiters.shift();
    if (waiter) waiter(line);
    else lines.push(line);
  };
  const server = net.createServer((socket) => {
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      buffer += chunk;
      for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
        push(buffer.slice(0, i));
        buffer = buffer.slice(i + 1);
      }
    });
    socket.on('error', () => {});
  });
  await new Promise((resolve, reject) => server.listen(socketPath, resolve).once('error', reject));
  return {
    path: socketPath,
    next(ms = 10000) {
      if (lines.length > 0) return Promise.resolve(lines.shift());
      return within(new Promise((resolve) => waiters.push(resolve)), ms, 'a line on the ready channel');
    },
    async close() {
      await new Promise((resolve) => server.close(resolve));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** In a child: sends one line on a ready channel; resolves once it is written. */
function tell(socketPath, line) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath, () => socket.end(`${line}\n`));
    socket.on('close', resolve);
    socket.on('error', reject);
  });
}

/**
 * Runs test/fixtures/<name> in a fresh node with `flags`, bounded by
 * `timeoutMs`. The fixture leads its own process group: on timeout the whole
 * group is SIGKILLed (a child it forked may hold the pipes open), and after it
 * exits any process left in the group is reported as `strays` and killed.
 * Resolves with its exit status, stdout, stderr and the last stdout line
 * parsed as JSON.
 */
function runFixture(name, { args = [], flags = ['--single-threaded', '--expose-gc'], env = {}, timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const file = path.join(__dirname, 'fixtures', name);
    const child = spawn(process.execPath, [...flags, file, ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const killGroup = (signal) => {
      try {
        process.kill(-child.pid, signal);
        return true;
      } catch {
        return false; // ESRCH: the group is empty
      }
    };
    const out = [];
    const err = [];
    child.stdout.on('data', (chunk) => out.push(chunk));
    child.stderr.on('data', (chunk) => err.push(chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup('SIGKILL');
    }, timeoutMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const strays = killGroup(0);
      if (strays) killGroup('SIGKILL');
      // The pipes end once every process that holds them is gone.
      const closed = new Promise((resolve) => child.once('close', resolve));
      within(closed, 5000, 'the fixture\'s pipes to close')
        .catch(() => {
          child.stdout.destroy();
          child.stderr.destroy();
        })
        .then(() => {
          const stdout = Buffer.concat(out).toString('utf8');
          const stderr = Buffer.concat(err).toString('utf8');
          const last = stdout.trimEnd().split('\n').pop();
          let json;
          try {
            json = JSON.parse(last);
          } catch {
            json = undefined;
          }
          resolve({ code, signal, timedOut, strays, stdout, stderr, json });
        });
    });
  });
}

/** Throws (with the fixture's stderr) unless it exited 0 and printed JSON. */
function fixtureOk(run, name) {
  if (run.code === 0 && run.json !== undefined && !run.strays) return run.json;
  const why = run.timedOut ? 'timed out' : run.strays ? 'left processes behind' : `exited with code ${run.code}, signal ${run.signal}`;
  throw new Error(`fixture ${name} ${why}\n--- stdout:\n${run.stdout.slice(-4000)}\n--- stderr:\n${run.stderr.slice(-4000)}`);
}

/** Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, session, ...]. */
function procStat(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Processes whose parent is `ppid`, with their state letter (Z = zombie). */
function childrenOf(ppid = process.pid) {
  const out = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(entry);
    if (stat !== null && Number(stat[1]) === ppid) out.push({ pid: Number(entry), state: stat[0] });
  }
  return out;
}

function zombiesOf(ppid = process.pid) {
  return childrenOf(ppid).filter((c) => c.state === 'Z');
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for a server that cannot be told port 0). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Awaits `promise`, asserting it rejects with `code` (and a message matching `pattern`); returns the error. */
async function rejectsWith(promise, code, pattern) {
  try {
    await promise;
  } catch (error) {
    assert.is(error.code, code, error.stack);
    if (pattern) assert.match(error.message, pattern);
    return error;
  }
  throw new Error(`expected a rejection with ${code}`);
}

module.exports = { rejectsWith, within, until, exitOf, tmpDir, readyChannel, tell, runFixture, fixtureOk, procStat, childrenOf, zombiesOf, freePort, root };
