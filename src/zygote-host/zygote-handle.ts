// Runs in the zygote's parent: the daemon's supervisor, or a service that
// called startZygote(). The zygote as its parent sees it: starts the zygote
// process (src/zygote/main.ts, the same for both), talks to it over their
// private socketpair, and turns its messages into events. Which zygote is
// current, reloading and replacing one that died, live in zygote-set.ts.
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { Socket } from 'node:net';
import * as path from 'node:path';
import { ForkdError } from '../errors';
import { ExitWatch } from '../lib/exit-watch';
import { signalNumber } from '../lib/signals';
import { fdOf } from '../node-internals';
import { JsonLineChannel } from '../protocol/json-lines';
import { FROM_ZYGOTE_MAX_BYTES, FromZygote, SerializedError, SpawnRequest, TO_ZYGOTE_MAX_BYTES, ToZygote, isFromZygote } from '../protocol/zygote-messages';

export type ZygoteState = 'starting' | 'ready' | 'failed' | 'stopped';

export interface ZygoteInfo {
  pid: number;
  handlers: string[];
  loadMs: number;
  appVersion: string;
  loadedAt: string;
}

export type ExitedMessage = Extract<FromZygote, { t: 'exited' }>;

interface PendingSpawn {
  resolve(value: { pid: number; forkMs: number }): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

const ZYGOTE_MAIN = path.join(__dirname, '..', 'zygote', 'main.js');

/** How a zygote is started. */
export interface ZygoteSpawnSettings {
  /** The application module (an absolute path). */
  app: string;
  /** Children the zygote keeps forked ahead. */
  prefork: number;
  spawnTimeoutMs: number;
  /**
   * The zygote dies with this process (PR_SET_PDEATHSIG, and it exits at once
   * if this pid is no longer its parent), and its runs die with the zygote
   * (SIGKILL): a service's jobs do not outlive the service. Unset for the
   * daemon, whose runs outlive the zygote and are reaped by the supervisor.
   */
  parentPid?: number;
  /** The zygote's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** A zygote still loading after this many ms is killed, its load failed (FORKD_ERR_APP_LOAD); unset: no bound. */
  loadTimeoutMs?: number;
  /** How the error names that bound (default the daemon's flag, --load-timeout-ms). */
  loadTimeoutName?: string;
}

/** A zygote as handed across a supervisor restart (it stays our child: same pid). */
export interface ZygoteHandover {
  pid: number;
  /** Our end of the channel: inherited across the execve. */
  fd: number;
  info: ZygoteInfo | null;
  /** Channel bytes read but not yet parsed (a partial message), base64. */
  bufferedBase64?: string;
  /** The same as UTF-8 text, from an image before bufferedBase64 (a partial message may end inside a character). */
  buffered?: string;
  retiring: boolean;
  /** Epoch ms by which a zygote still loading must be ready (--load-timeout-ms); null once loaded. */
  loadDeadline?: number | null;
}

interface ZygoteProcess {
  pid: number | null;
  channel: Socket;
  kill(signal: NodeJS.Signals): void;
  onExit(listener: (code: number | null, signal: string | null, error?: Error) => void): void;
  /** Whether the process keeps this one's event loop alive. */
  setRef(on: boolean): void;
}

// --single-threaded: no V8 background threads, so none is mid-GC or
// mid-compile at fork, and children install optimized code themselves.
// --v8-pool-size=1: every fork parks the platform's workers; with Node's
// default of 4 that cost the zygote 5-18 % more CPU per run
// (bench/experiments/pool-size.js, docs/PERFORMANCE.md).
// --expose-gc: the zygote compacts its heap before it starts forking.
// Nothing of this process but stdout, stderr and the channel reaches the
// zygote: a fresh node, spawned (fork + exec), where every other fd Node and
// libuv open is close-on-exec.
function spawnZygote(settings: ZygoteSpawnSettings): ZygoteProcess {
  const args = ['--single-threaded', '--v8-pool-size=1', '--expose-gc', ZYGOTE_MAIN, '--app', settings.app, '--prefork', String(settings.prefork)];
  if (settings.parentPid !== undefined) args.push('--parent-pid', String(settings.parentPid));
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
    // Every run inherits the zygote's environment (the daemon's has no
    // secret in it: supervisor/secrets.ts zygoteEnv()).
    env: settings.env ?? process.env,
  });
  const channel = child.stdio[3] as Socket;
  return {
    pid: child.pid ?? null,
    channel,
    kill: (signal) => child.kill(signal),
    onExit: (listener) => {
      child.on('error', (error) => listener(null, null, error));
      child.on('exit', (code, signal) => listener(code, signal));
    },
    setRef: (on) => {
      if (on) {
        child.ref();
        channel.ref();
      } else {
        child.unref();
        channel.unref();
      }
    },
  };
}

// After a restart child_process no longer knows the zygote: its exit is
// watched through a pidfd and reaped by pid like any run.
function takeOverZygote(handover: ZygoteHandover): ZygoteProcess {
  const watch = new ExitWatch(handover.pid);
  return {
    pid: handover.pid,
    channel: new Socket({ fd: handover.fd, readable: true, writable: true }),
    kill: (signal) => watch.kill(signalNumber(signal)),
    onExit: (listener) => void watch.exited.then((info) => listener(info.code, info.signal)),
    setRef: (on) => (on ? watch.ref() : watch.unref()),
  };
}

/**
 * Events: 'ready' (ZygoteInfo), 'load_failed' (SerializedError),
 * 'exited' (ExitedMessage), 'late-fork' (runId, pid) for a fork reported
 * after its spawn timed out, 'died' ({ code, signal }) once when the process
 * has exited, and 'gone' once it has exited and every message it sent has
 * been read (its channel closed too).
 */
export class ZygoteHandle extends EventEmitter {
  state: ZygoteState = 'starting';
  info: ZygoteInfo | null = null;
  loadError: SerializedError | null = null;
  private readonly process: ZygoteProcess;
  private readonly channel: JsonLineChannel<FromZygote, ToZygote>;
  private readonly pending = new Map<string, PendingSpawn>();
  private dead = false;
  private channelClosed = false;
  private goneEmitted = false;
  private loadDeadline: number | null = null;
  private loadTimer: NodeJS.Timeout | null = null;
  private loadTimeoutName = '--load-timeout-ms';

  private constructor(
    process: ZygoteProcess,
    private readonly spawnTimeoutMs: number,
    buffered?: Buffer,
  ) {
    super();
    this.process = process;
    this.channel = new JsonLineChannel<FromZygote, ToZygote>(process.channel, isFromZygote, { maxIn: FROM_ZYGOTE_MAX_BYTES, maxOut: TO_ZYGOTE_MAX_BYTES }, buffered);
    this.channel.on('message', (message: FromZygote) => this.onMessage(message));
    this.channel.on('error', () => {}); // a broken channel shows up as the zygote's death
    this.channel.on('close', () => {
      this.channelClosed = true;
      this.maybeGone();
    });
    process.onExit((code, signal, error) => this.onDied(code, signal, error));
  }

  static spawn(settings: ZygoteSpawnSettings): ZygoteHandle {
    const zygote = new ZygoteHandle(spawnZygote(settings), settings.spawnTimeoutMs);
    if (settings.loadTimeoutName !== undefined) zygote.loadTimeoutName = settings.loadTimeoutName;
    if (settings.loadTimeoutMs !== undefined) zygote.boundLoad(Date.now() + settings.loadTimeoutMs);
    return zygote;
  }

  /** The zygote a previous supervisor image started (still our child: same pid). */
  static takeOver(handover: ZygoteHandover, spawnTimeoutMs: number): ZygoteHandle {
    const buffered = handover.bufferedBase64 !== undefined ? Buffer.from(handover.bufferedBase64, 'base64') : Buffer.from(handover.buffered ?? '', 'utf8');
    const zygote = new ZygoteHandle(takeOverZygote(handover), spawnTimeoutMs, buffered);
    zygote.info = handover.info;
    zygote.state = handover.retiring ? 'stopped' : handover.info !== null ? 'ready' : 'starting';
    if (zygote.state === 'starting' && typeof handover.loadDeadline === 'number') zygote.boundLoad(handover.loadDeadline);
    return zygote;
  }

  /**
   * A zygote still loading at `deadline` (epoch ms) is SIGKILLed and its load
   * reported failed. Loading runs the application's top level, which may
   * never return (a busy loop, a connection that never answers): the zygote
   * reads nothing meanwhile, so neither a message nor its channel closing
   * would reach it, and a restart waiting for it would never be answered.
   */
  private boundLoad(deadline: number): void {
    this.loadDeadline = deadline;
    const ms = Math.max(0, deadline - Date.now());
    this.loadTimer = setTimeout(() => {
      this.loadTimer = null;
      if (this.state !== 'starting' || this.dead) return;
      const error: SerializedError = {
        name: 'ForkdError',
        code: 'FORKD_ERR_APP_LOAD',
        message: `the application did not finish loading within ${ms} ms (${this.loadTimeoutName}): its zygote (pid ${this.pid}) was killed`,
      };
      this.process.kill('SIGKILL');
      this.state = 'failed';
      this.loadError = error;
      this.emit('load_failed', error);
    }, ms);
  }

  private loadEnded(): void {
    if (this.loadTimer !== null) clearTimeout(this.loadTimer);
    this.loadTimer = null;
    this.loadDeadline = null;
  }

  get pid(): number | null {
    return this.process.pid;
  }

  /** What the next supervisor needs to take this zygote over. */
  handover(retiring: boolean): ZygoteHandover {
    // A paused socket still reads until its buffer is full: what Node read but
    // did not emit is taken (and handled) now, or it would be lost in the exec.
    while (this.process.channel.read() !== null);
    const fd = fdOf(this.process.channel);
    if (this.pid === null || fd < 0) throw new ForkdError('FORKD_ERR_ZYGOTE_UNAVAILABLE', 'the zygote has no open channel to hand over');
    return { pid: this.pid, fd, info: this.info, bufferedBase64: this.channel.buffered().toString('base64'), retiring, loadDeadline: this.loadDeadline };
  }

  /** Whether the channel can still be handed over (a retiring zygote closes it before it exits). */
  channelOpen(): boolean {
    return !this.process.channel.destroyed && fdOf(this.process.channel) >= 0;
  }

  /** Stops reading the channel (for the instant before an execve). */
  pause(): void {
    this.process.channel.pause();
  }

  resume(): void {
    this.process.channel.resume();
  }

  /** Resolves once the zygote has exited and its channel has said all it will. */
  whenGone(): Promise<void> {
    if (this.goneEmitted) return Promise.resolve();
    return new Promise((resolve) => this.once('gone', () => resolve()));
  }

  /** Whether this zygote (its process and channel) keeps the event loop alive; it does from the start. */
  setRef(on: boolean): void {
    if (!this.dead) this.process.setRef(on);
  }

  private onMessage(message: FromZygote): void {
    switch (message.t) {
      case 'ready':
        this.loadEnded();
        this.state = 'ready';
        this.info = { pid: message.pid, handlers: message.handlers, loadMs: message.loadMs, appVersion: message.appVersion, loadedAt: message.loadedAt };
        this.emit('ready', this.info);
        break;
      case 'load_failed':
        this.loadEnded();
        this.state = 'failed';
        this.loadError = message.error;
        this.emit('load_failed', message.error);
        break;
      case 'spawned': {
        const pending = this.pending.get(message.runId);
        if (pending === undefined) {
          this.emit('late-fork', message.runId, message.pid);
          break;
        }
        this.pending.delete(message.runId);
        clearTimeout(pending.timer);
        pending.resolve({ pid: message.pid, forkMs: message.forkMs });
        break;
      }
      case 'spawn_failed': {
        const pending = this.pending.get(message.runId);
        if (pending === undefined) break;
        this.pending.delete(message.runId);
        clearTimeout(pending.timer);
        pending.reject(Object.assign(new ForkdError('FORKD_ERR_ZYGOTE_UNAVAILABLE', `the zygote could not fork: ${message.error.message}`), { cause: message.error }));
        break;
      }
      case 'exited':
        this.emit('exited', message);
        break;
    }
  }

  private onDied(code: number | null, signal: string | null, error?: Error): void {
    // child_process may report a failed spawn as 'error' and then 'exit'.
    if (this.dead) return;
    this.dead = true;
    this.loadEnded();
    const wasFailed = this.state === 'failed';
    this.state = wasFailed ? 'failed' : 'stopped';
    // A spawn that failed never started a process: there is no channel to wait for.
    if (error !== undefined) this.channelClosed = true;
    this.emit('died', { code, signal, error: error?.message ?? null });
    this.maybeGone();
  }

  // The exit can be seen before the last messages are read ('spawned' of a
  // run forked just before the zygote died): spawns still unanswered fail
  // only once the channel has said all it will.
  private maybeGone(): void {
    if (!this.dead || !this.channelClosed || this.goneEmitted) return;
    this.goneEmitted = true;
    for (const [, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new ForkdError('FORKD_ERR_ZYGOTE_UNAVAILABLE', 'the zygote died before the run was forked'));
    }
    this.pending.clear();
    this.emit('gone');
  }

  /** Asks the zygote to fork a run; rejects with FORKD_ERR_SPAWN_TIMEOUT if it does not answer in time. */
  spawn(request: Omit<SpawnRequest, 't'>): Promise<{ pid: number; forkMs: number }> {
    if (this.state !== 'ready') return Promise.reject(new ForkdError('FORKD_ERR_ZYGOTE_UNAVAILABLE', `the zygote is ${this.state}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(request.runId);
        reject(new ForkdError('FORKD_ERR_SPAWN_TIMEOUT', `the zygote did not report the fork of run ${request.runId} within ${this.spawnTimeoutMs} ms`));
      }, this.spawnTimeoutMs);
      this.pending.set(request.runId, { resolve, reject, timer });
      // A closed channel means the zygote is dying: 'exit' rejects this spawn.
      this.channel.send({ t: 'spawn', ...request });
    });
  }

  /** Asks the zygote to terminate a run it forked (SIGTERM, SIGKILL after the run's kill grace), or one it is forking. */
  abort(runId: string): void {
    this.channel.send({ t: 'abort', runId });
  }

  /** Lets the zygote exit once asked; its running children carry on. */
  retire(): void {
    this.state = 'stopped';
    this.channel.send({ t: 'shutdown' });
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.process.kill(signal);
  }
}
