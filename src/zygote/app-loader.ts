// Runs in the zygote. Loads the application module once and finds its
// handlers. Handler names are looked up in a Map built here, never on the
// module object, so `constructor`, `__proto__` or a path can never reach a
// function the application did not export as a handler.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ForkdError } from '../errors';
import { isValidHandlerName } from '../protocol/run-request';
import type { Handler, HandlerContext } from './app-contract';

export type { Handler, HandlerContext } from './app-contract';

export interface LoadedApp {
  handlers: Map<string, Handler>;
  afterFork: ((ctx: HandlerContext) => unknown) | null;
  /** sha256 of the module file, 12 hex digits: which code the runs execute. */
  version: string;
  loadMs: number;
}

// A real dynamic import (TypeScript's CommonJS output would turn `import()`
// into require(), which cannot load an ES module).
// eslint-disable-next-line @typescript-eslint/no-implied-eval
const dynamicImport = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<Record<string, unknown>>;

async function importModule(file: string): Promise<Record<string, unknown>> {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return require(file) as Record<string, unknown>;
  } catch (error) {
    if ((error as { code?: string }).code !== 'ERR_REQUIRE_ESM') throw error;
    return dynamicImport(pathToFileURL(file).href);
  }
}

function asObject(value: unknown): Record<string, unknown> | null {
  return value !== null && (typeof value === 'object' || typeof value === 'function') ? (value as Record<string, unknown>) : null;
}

export async function loadApp(file: string): Promise<LoadedApp> {
  const started = performance.now();
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new ForkdError('FORKD_ERR_APP_LOAD', `cannot read the application module ${file}: ${(cause as Error).message}`, { cause });
  }
  let mod: Record<string, unknown>;
  try {
    mod = await importModule(file);
  } catch (cause) {
    const error = new ForkdError('FORKD_ERR_APP_LOAD', `the application module ${file} threw while loading: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    error.stack = (cause as Error)?.stack ?? error.stack;
    throw error;
  }
  const def = asObject(mod.default);
  const table = asObject(mod.handlers) ?? asObject(def?.handlers) ?? def;
  if (table === null) {
    throw new ForkdError('FORKD_ERR_APP_LOAD', `${file} exports no handlers: export a \`handlers\` object of functions, or a default export of one`);
  }
  const handlers = new Map<string, Handler>();
  // A default export that is the handlers itself may carry afterFork too:
  // that is the hook, not a handler a run could name.
  const hooks = table === def ? new Set(['afterFork']) : new Set<string>();
  for (const [name, fn] of Object.entries(table)) {
    if (typeof fn === 'function' && isValidHandlerName(name) && !hooks.has(name)) handlers.set(name, fn as Handler);
  }
  if (handlers.size === 0) throw new ForkdError('FORKD_ERR_APP_LOAD', `${file} exports a handlers object with no usable functions`);
  const afterFork = mod.afterFork ?? def?.afterFork;
  if (afterFork !== undefined && typeof afterFork !== 'function') {
    throw new ForkdError('FORKD_ERR_APP_LOAD', `${file} exports afterFork, but it is not a function`);
  }
  return {
    handlers,
    afterFork: (afterFork as LoadedApp['afterFork']) ?? null,
    version: createHash('sha256').update(source).digest('hex').slice(0, 12),
    loadMs: performance.now() - started,
  };
}
