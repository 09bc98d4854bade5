// Runs in the `forkd` CLI. The client commands: each parses its arguments,
// calls the daemon through ForkdClient and prints for a person (or --json).
import { once } from 'node:events';
import { constants as osConstants } from 'node:os';
import type { Writable } from 'node:stream';
import type { ForkdClient, RunRecord, RunState } from '../client/client';
import { STATUS_FAILED_TO_START, STATUS_LOST, runStates } from '../supervisor/runs/run-record';
import { UsageError, intOption, parseCommand, type Parsed } from './args';

export interface Io {
  stdout: Writable;
  stderr: Writable;
}

export type Command = (client: () => ForkdClient, parsed: Parsed, io: Io) => Promise<number>;

export interface CommandSpec {
  options: NonNullable<Parameters<typeof parseCommand>[2]>;
  positionals: { min: number; max: number; names: string };
  run: Command;
}

async function write(stream: Writable, chunk: string | Buffer): Promise<void> {
  if (!stream.write(chunk)) await once(stream, 'drain');
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** As timeout(1) reports a command it timed out (see `forkd run --help`). */
export const EXIT_TIMED_OUT = 124;
/** The same numbers the line protocol's `check` gives (run-record.ts). */
export const EXIT_FAILED_TO_START = STATUS_FAILED_TO_START;
export const EXIT_LOST = STATUS_LOST;

/**
 * The status a shell sees for a run that has ended, as it would for a
 * command: its exit code, 128 + N when signal N killed it, 124 for a timeout
 * as timeout(1) reports one (whatever the run exited with after its SIGTERM,
 * so `&&` never takes a timeout for a success), 127 for a run that could not
 * be started, 255 when how it ended is not known.
 */
export function exitStatusOf(record: RunRecord): number {
  switch (record.state) {
    case 'timed_out':
      return EXIT_TIMED_OUT;
    case 'failed_to_start':
      return EXIT_FAILED_TO_START;
    case 'killed': {
      const signo = record.signal !== null ? (osConstants.signals as Record<string, number>)[record.signal] : undefined;
      return signo !== undefined ? 128 + signo : EXIT_LOST;
    }
    case 'exited':
      return record.exitCode ?? EXIT_LOST;
    default:
      return EXIT_LOST;
  }
}

function describeEnd(record: RunRecord): string {
  const how = record.signal !== null ? `signal ${record.signal}` : record.exitCode !== null ? `exit code ${record.exitCode}` : 'no exit status';
  const why = record.error !== undefined ? `: ${record.error.name}: ${record.error.message}` : '';
  return `run ${record.id} ${record.state.replace(/_/g, ' ')} (${how})${why}`;
}

// Signals a person sends to `forkd run --wait` (Ctrl-C, a closed terminal, a
// kill) are meant for the run, as they would be for a job in the foreground.
const forwardedSignals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Follows a run to its end; `detached` (128 + N) when a second signal N said to stop waiting. */
async function followRun(client: ForkdClient, record: RunRecord, io: Io): Promise<{ final: RunRecord } | { detached: number }> {
  const pipe = async (stream: 'stdout' | 'stderr', to: Writable): Promise<void> => {
    for await (const chunk of client.output(record.id, { stream, follow: true })) await write(to, chunk);
  };
  let detach!: (status: number) => void;
  const detached = new Promise<number>((resolve) => (detach = resolve));
  let received = 0;
  // The first signal goes to the run, and the CLI waits for the run to end
  // (with its status); a second one stops waiting and leaves the run going.
  const onSignal = (signal: NodeJS.Signals): void => {
    received++;
    if (received > 1) return detach(128 + osConstants.signals[signal]);
    void write(io.stderr, `forkd: sending ${signal} to run ${record.id} (${signal === 'SIGINT' ? 'Ctrl-C' : 'signal'} again to stop waiting; the run goes on)\n`);
    client.signal(record.id, signal).catch((error: Error) => write(io.stderr, `forkd: could not signal run ${record.id}: ${error.message}\n`));
  };
  for (const signal of forwardedSignals) process.on(signal, onSignal);
  try {
    const followed = (async () => {
      await Promise.all([pipe('stdout', io.stdout), pipe('stderr', io.stderr)]);
      let final = record;
      while (final.state === 'running') final = await client.get(record.id, { waitMs: 60_000 });
      return { final };
    })();
    // Detached, the output streams are cut when the client closes (cli()); the
    // race has already taken their end, error or not.
    return await Promise.race([followed, detached.then((status) => ({ detached: status }))]);
  } finally {
    for (const signal of forwardedSignals) process.off(signal, onSignal);
  }
}

const run: CommandSpec = {
  options: {
    args: { type: 'string' },
    id: { type: 'string' },
    'timeout-ms': { type: 'string' },
    env: { type: 'string', multiple: true },
    wait: { type: 'boolean' },
    json: { type: 'boolean' },
  },
  positionals: { min: 1, max: 1, names: 'a HANDLER' },
  async run(client, { values, positionals }, io) {
    let args: unknown;
    if (typeof values.args === 'string') {
      try {
        args = JSON.parse(values.args);
      } catch (error) {
        throw new UsageError(`--args must be JSON: ${(error as Error).message}`, 'run');
      }
    }
    let env: Record<string, string> | undefined;
    for (const pair of (values.env as string[] | undefined) ?? []) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new UsageError(`--env must be NAME=VALUE, got ${JSON.stringify(pair)}`, 'run');
      env ??= {};
      env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    const timeoutMs = intOption(values, 'timeout-ms', 'run');
    const c = client();
    const record = await c.run(positionals[0], args, { id: values.id as string | undefined, timeoutMs, env });
    if (values.wait !== true) {
      await write(io.stdout, values.json === true ? json(record) : `${record.id}\n`);
      if (record.state !== 'failed_to_start') return 0;
      await write(io.stderr, `forkd: ${describeEnd(record)}\n`);
      return EXIT_FAILED_TO_START;
    }
    const followed = record.state === 'running' ? await followRun(c, record, io) : { final: record };
    if ('detached' in followed) {
      await write(io.stderr, `forkd: stopped waiting; run ${record.id} goes on ('forkd status ${record.id}')\n`);
      return followed.detached;
    }
    const final = followed.final;
    if (values.json === true) await write(io.stdout, json(final));
    else if (final.result !== undefined) await write(io.stdout, `${JSON.stringify(final.result)}\n`);
    if (final.state !== 'exited' || final.exitCode !== 0) await write(io.stderr, `forkd: ${describeEnd(final)}\n`);
    return exitStatusOf(final);
  },
};

function formatDuration(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
}

/** Lines of aligned columns. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ').trimEnd()).join('\n') + '\n';
}

const ps: CommandSpec = {
  options: { state: { type: 'string' }, json: { type: 'boolean' } },
  positionals: { min: 0, max: 0, names: 'no arguments' },
  async run(client, { values }, io) {
    const state = values.state as RunState | undefined;
    if (state !== undefined && !runStates.includes(state)) throw new UsageError(`--state must be one of ${runStates.join(', ')}, got ${JSON.stringify(state)}`, 'ps');
    const runs = await client().list({ state });
    if (values.json === true) {
      await write(io.stdout, json(runs));
      return 0;
    }
    runs.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    const now = Date.now();
    const rows = [['ID', 'HANDLER', 'STATE', 'PID', 'EXIT', 'STARTED', 'DURATION']];
    for (const r of runs) {
      const exit = r.exitCode !== null ? String(r.exitCode) : (r.signal ?? '-');
      const started = r.startedAt ?? r.createdAt;
      const duration = r.durationMs ?? (r.state === 'running' ? now - Date.parse(started) : null);
      rows.push([r.id, r.handler, r.state, r.pid === null ? '-' : String(r.pid), exit, started.replace(/\.\d+Z$/, 'Z'), formatDuration(duration)]);
    }
    await write(io.stdout, table(rows));
    return 0;
  },
};

const status: CommandSpec = {
  options: { 'wait-ms': { type: 'string' } },
  positionals: { min: 1, max: 1, names: 'a run ID' },
  async run(client, { values, positionals }, io) {
    const waitMs = intOption(values, 'wait-ms', 'status');
    await write(io.stdout, json(await client().get(positionals[0], { waitMs })));
    return 0;
  },
};

const logs: CommandSpec = {
  options: { follow: { type: 'boolean', short: 'f' }, stderr: { type: 'boolean' } },
  positionals: { min: 1, max: 1, names: 'a run ID' },
  async run(client, { values, positionals }, io) {
    const stream = values.stderr === true ? 'stderr' : 'stdout';
    if (values.follow === true) {
      for await (const chunk of client().output(positionals[0], { stream, follow: true })) await write(io.stdout, chunk);
    } else {
      await write(io.stdout, await client().output(positionals[0], { stream }));
    }
    return 0;
  },
};

const kill: CommandSpec = {
  options: { signal: { type: 'string', short: 's' } },
  positionals: { min: 1, max: 1, names: 'a run ID' },
  async run(client, { values, positionals }) {
    const raw = (values.signal as string | undefined) ?? 'SIGTERM';
    await client().signal(positionals[0], /^\d+$/.test(raw) ? Number(raw) : raw);
    return 0;
  },
};

const free: CommandSpec = {
  options: {},
  positionals: { min: 1, max: 1, names: 'a run ID' },
  async run(client, { positionals }) {
    await client().free(positionals[0]);
    return 0;
  },
};

const restart: CommandSpec = {
  options: {},
  positionals: { min: 0, max: 0, names: 'no arguments' },
  async run(client, _parsed, io) {
    await write(io.stdout, json(await client().restart()));
    return 0;
  },
};

const stop: CommandSpec = {
  options: { 'leave-runs': { type: 'boolean' } },
  positionals: { min: 0, max: 0, names: 'no arguments' },
  async run(client, parsed, io) {
    const leaveRuns = parsed.values['leave-runs'] === true;
    await client().stop({ leaveRuns });
    await write(io.stdout, leaveRuns ? 'stopping; running runs are left for the next daemon on its state dir\n' : 'stopping\n');
    return 0;
  },
};

const health: CommandSpec = {
  options: {},
  positionals: { min: 0, max: 0, names: 'no arguments' },
  async run(client, _parsed, io) {
    const report = await client().health();
    await write(io.stdout, json(report));
    return report.status === 'ok' ? 0 : 1;
  },
};

export const commands: Record<string, CommandSpec> = { run, ps, status, logs, kill, free, restart, stop, health };
