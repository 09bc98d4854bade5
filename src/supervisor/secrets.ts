// Runs in the supervisor, from the first line of `forkd serve` on. Where the
// daemon's secrets (the bearer token and the restart handover's key) may be
// and where not. Every run executes code as the daemon's user, so what that
// user's processes can read must not hold them: not the zygote's environment
// (which every run inherits), not the supervisor's /proc/PID/environ, mem or
// fds (the supervisor is made non-dumpable), not a command line (readable by
// every local user; a restart's exec passes neither --token nor FORKD_TOKEN),
// not an fd a zygote inherits.
import { parseArgs } from 'node:util';
import { native } from '../native';
import { serveOptions } from './config';
import { HANDOVER_ENV } from './restart/secret-channel';

/** What forkd reads from its environment to authenticate or to restart: passed to no zygote and to no restarted image. */
export const SECRET_ENV: readonly string[] = ['FORKD_TOKEN', HANDOVER_ENV];

/**
 * First thing in `forkd serve`, before a secret is read: the zygote and the
 * runs (same user) can no longer read this process's environment, memory
 * or fds, nor ptrace it (only root can). The fds it was started with beyond
 * stdio (a launcher's pipe, a token file given as /dev/fd/N) become
 * close-on-exec, so no zygote or run inherits them.
 */
export function guardProcess(): void {
  native.setDumpable(false);
  native.markAllCloexec();
}

/** Removes the secret variables from this process's environment: what it passes on (zygote, restart) no longer has them. */
export function dropSecretEnv(env: NodeJS.ProcessEnv = process.env): void {
  for (const name of SECRET_ENV) delete env[name];
}

/** The environment a zygote (and so every run) starts with: the supervisor's, without its secrets. */
export function zygoteEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = { ...env };
  dropSecretEnv(out);
  return out;
}

/**
 * argv (the CLI's, after node) without `--token VALUE` or `--token=VALUE`:
 * what a restart's exec runs. parseArgs finds the option as `forkd serve`
 * parsed it, so a value that merely looks like "--token" is left alone.
 */
export function withoutToken(argv: string[]): string[] {
  const { tokens } = parseArgs({ args: argv, options: serveOptions, strict: false, allowPositionals: true, tokens: true });
  const drop = new Set<number>();
  for (const t of tokens) {
    if (t.kind === 'option' && t.name === 'token') {
      drop.add(t.index);
      if (t.inlineValue === false) drop.add(t.index + 1);
    }
    if (t.kind === 'option-terminator') break;
  }
  return argv.filter((_, i) => !drop.has(i));
}
