// Runs in the `forkd` CLI. Argument parsing shared by every command: the
// global options (where the daemon is), usage errors (exit 2) and value checks.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ForkdClient } from '../client/client';

/** A mistake in the command line: printed as one line, exit status 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

export const globalOptions = {
  url: { type: 'string' },
  socket: { type: 'string' },
  token: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const satisfies Options;

const GLOBAL_WITH_VALUE = /^--(url|socket|token)(=.*)?$/;

/** Splits `forkd [global options] COMMAND [args]`: global options may also come after the command. */
export function splitCommand(argv: string[]): { globals: string[]; command: string | undefined; rest: string[] } {
  const globals: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h' || arg === '--version' || arg === '-v') {
      globals.push(arg);
      i++;
      continue;
    }
    const m = GLOBAL_WITH_VALUE.exec(arg);
    if (m === null) break;
    if (m[2] !== undefined) {
      globals.push(arg);
      i++;
    } else {
      if (i + 1 >= argv.length) throw new UsageError(`option ${arg} needs a value`);
      globals.push(arg, argv[i + 1]);
      i += 2;
    }
  }
  return { globals, command: argv[i], rest: argv.slice(i + 1) };
}

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/** Parses a command's arguments (plus the global options) strictly; mistakes are UsageErrors. */
export function parseCommand(command: string, args: string[], options: Options, positionals: { min: number; max: number; names: string }): Parsed {
  let parsed: Parsed;
  try {
    parsed = parseArgs({ args, options: { ...options, ...globalOptions }, strict: true, allowPositionals: true }) as Parsed;
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0], command);
  }
  if (parsed.values.help === true || parsed.values.version === true) return parsed;
  const n = parsed.positionals.length;
  if (n < positionals.min) throw new UsageError(`forkd ${command} needs ${positionals.names}`, command);
  if (n > positionals.max) throw new UsageError(`forkd ${command} takes ${positionals.max === 0 ? 'no arguments' : positionals.names}, got extra ${JSON.stringify(parsed.positionals[positionals.max])}`, command);
  return parsed;
}

/** A non-negative integer option, or undefined when absent. */
export function intOption(values: Parsed['values'], flag: string, command: string): number | undefined {
  const raw = values[flag];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !/^\d{1,10}$/.test(raw)) throw new UsageError(`--${flag} must be a non-negative integer, got ${JSON.stringify(raw)}`, command);
  return Number(raw);
}

/** The client for the daemon the global options (or FORKD_URL, FORKD_SOCKET, FORKD_TOKEN) point at. */
export function clientFrom(globals: Parsed['values'], env: NodeJS.ProcessEnv): ForkdClient {
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  try {
    return new ForkdClient({
      url: str(globals.url) ?? str(env.FORKD_URL),
      socketPath: str(globals.socket) ?? str(env.FORKD_SOCKET),
      token: str(globals.token) ?? str(env.FORKD_TOKEN),
    });
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/^url/, '--url'));
  }
}
