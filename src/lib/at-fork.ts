// Runs in any process that forks. The atFork registry, with the ordering of
// pthread_atfork(3) and Python's os.register_at_fork: `prepare` hooks run in
// reverse order of registration, `parent` and `child` hooks in order.
import { invalidArg } from '../errors';

export interface AtForkHooks {
  prepare?(): void;
  parent?(pid: number): void;
  child?(): void;
}

const registry: AtForkHooks[] = [];

export function atFork(hooks: AtForkHooks): () => void {
  if (hooks === null || typeof hooks !== 'object') throw invalidArg('atFork hooks', 'an object', hooks);
  for (const key of ['prepare', 'parent', 'child'] as const) {
    if (hooks[key] !== undefined && typeof hooks[key] !== 'function') throw invalidArg(`atFork hooks.${key}`, 'a function', hooks[key]);
  }
  const entry = { ...hooks };
  registry.push(entry);
  return () => {
    const i = registry.indexOf(entry);
    if (i >= 0) registry.splice(i, 1);
  };
}

export function runPrepare(): void {
  for (let i = registry.length - 1; i >= 0; i--) registry[i].prepare?.();
}

export function runParent(pid: number): void {
  for (const hooks of [...registry]) hooks.parent?.(pid);
}

export function runChild(): void {
  for (const hooks of [...registry]) hooks.child?.();
}
