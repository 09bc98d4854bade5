#!/usr/bin/env node
// Runs as the `forkd` command: `forkd serve` becomes the daemon's supervisor;
// every other command is a short-lived client of a running daemon. Errors are
// one line on stderr: exit 2 for a wrong command line, 1 for a failure.
// First: the command line may hold a token (hide-token.ts).
import './hide-token';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Writable } from 'node:stream';
import { ForkdError } from '../errors';
import type { SupervisorConfig } from '../supervisor/config';
import { UsageError, clientFrom, globalOptions, parseCommand, splitCommand } from './args';
import { commands, type Io } from './commands';
import { queueCommands } from './queue-commands';
import { usage } from './usage';
import { parseArgs } from 'node:util';
import type { ForkdClient } from '../client/client';

async function serve(args: string[], io: Io): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout.write(`${usage.serve}\n`);
    return 0;
  }
  if (args.includes('--version') || args.includes('-v')) {
    io.stdout.write(`${version()}\n`);
    return 0;
  }
  // Loaded only here: the client commands never load the daemon's code.
  const { guardProcess, dropSecretEnv } = await import('../supervisor/secrets');
  const { takeSecrets } = await import('../supervisor/restart/secret-channel');
  const { parseServeArgs } = await import('../supervisor/config');
  // Before any secret is read (the token, a restart's key): no other
  // process of this user may read them out of this one.
  guardProcess();
  const handed = takeSecrets();
  let config: SupervisorConfig;
  try {
    config = parseServeArgs(args, process.env, process.cwd(), handed?.token);
  } catch (error) {
    if (error instanceof ForkdError && error.code === 'FORKD_ERR_INVALID_ARG') throw new UsageError(error.message.replace(/^forkd serve: /, ''), 'serve');
    throw error;
  } finally {
    // Read once: the zygote, the runs and a restarted image never see it.
    dropSecretEnv();
  }
  const { main } = await import('../supervisor/main');
  await main(config, handed);
  return 0;
}

/** Runs the CLI with `argv` (without node and the script); resolves with the exit status. */
export async function cli(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr }, env = process.env): Promise<number> {
  let command: string | undefined;
  try {
    const split = splitCommand(argv);
    command = split.command;
    const globals = parseArgs({ args: split.globals, options: globalOptions, strict: true }).values;
    if (globals.version === true) {
      io.stdout.write(`${version()}\n`);
      return 0;
    }
    if (command === undefined || command === 'help') {
      const topic = split.rest[0];
      const text = topic !== undefined && Object.hasOwn(usage, topic) ? usage[topic] : usage.forkd;
      (command === undefined && globals.help !== true ? io.stderr : io.stdout).write(`${text}\n`);
      return command === undefined && globals.help !== true ? 2 : 0;
    }
    if (command === 'serve') return await serve(split.rest, io);
    const spec = Object.hasOwn(commands, command) ? commands[command] : Object.hasOwn(queueCommands, command) ? queueCommands[command] : undefined;
    // The line ends "(see 'forkd --help')", which lists the commands.
    if (spec === undefined) throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    if (globals.help === true) {
      io.stdout.write(`${usage[command]}\n`);
      return 0;
    }
    const parsed = parseCommand(command, split.rest, spec.options, spec.positionals);
    if (parsed.values.version === true) {
      io.stdout.write(`${version()}\n`);
      return 0;
    }
    if (parsed.values.help === true) {
      io.stdout.write(`${usage[command]}\n`);
      return 0;
    }
    let client: ForkdClient | undefined;
    try {
      return await spec.run(() => (client ??= clientFrom({ ...globals, ...parsed.values }, env)), parsed, io);
    } finally {
      client?.close();
    }
  } catch (error) {
    if (error instanceof UsageError) {
      const help = error.command ?? (command !== undefined && Object.hasOwn(usage, command) ? command : undefined);
      io.stderr.write(`forkd: ${error.message} (see 'forkd ${help !== undefined ? `${help} ` : ''}--help')\n`);
      return 2;
    }
    io.stderr.write(`forkd: ${oneLine(error)}\n`);
    return 1;
  }
}

/** The installed package's version: package.json sits two levels above dist/cli/. */
function version(): string {
  return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
}

function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s*\n\s*/g, ' ');
}

function flush(stream: Writable): Promise<void> {
  return new Promise((resolve) => stream.write('', () => resolve()));
}

if (require.main === module) {
  // `forkd logs -f ID | head`: a reader that went away is an ordinary end, not a crash.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      process.exit(process.exitCode ?? 0);
    });
  }
  cli(process.argv.slice(2)).then(
    async (status) => {
      await Promise.all([flush(process.stdout), flush(process.stderr)]);
      process.exitCode = status;
    },
    (error: unknown) => {
      process.stderr.write(`forkd: ${oneLine(error)}\n`);
      process.exitCode = 1;
    },
  );
}
