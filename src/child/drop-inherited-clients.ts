// Runs in a forked child, from its reset. Connection pools of Node itself
// whose pooled connections are the parent's: a request in the child must open
// a connection of its own instead of writing into one of them (its fd was
// neutralised natively: the write failed with EBADF, and 9 of 20 children's
// fetch() calls failed that way). node:http agents are emptied by
// child-reset.ts; this file does the same for Node's built-in fetch.

// Where undici (Node's bundled copy, and the npm package, which share it)
// keeps the dispatcher fetch() uses when it is given none.
const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

type Dispatcher = { constructor: new (options: Record<string, unknown>) => unknown } & Record<symbol, unknown>;

function ownSymbol(object: object, description: string): symbol | undefined {
  return Object.getOwnPropertySymbols(object).find((s) => s.description === description);
}

// A new Agent with the options the inherited one was made with: undici's
// Agent keeps them (its `options`, `factory` and, in the copy Node 20 bundles,
// `maxRedirections`), and its constructor takes them back. undici's own
// classes are reached through the inherited instance, so nothing is loaded.
function freshAgent(old: Dispatcher): unknown {
  if (old.constructor?.name !== 'Agent') return null;
  const options = ownSymbol(old, 'options');
  const factory = ownSymbol(old, 'factory');
  if (options === undefined || factory === undefined) return null;
  const redirections = ownSymbol(old, 'maxRedirections');
  return new old.constructor({
    ...(old[options] as Record<string, unknown>),
    factory: old[factory],
    ...(redirections !== undefined && old[redirections] !== undefined ? { maxRedirections: old[redirections] } : {}),
  });
}

/**
 * Replaces fetch()'s global dispatcher, if the parent had made one (its first
 * fetch() does), by a new one of the child's own. The inherited one is left
 * untouched: the parent's requests in flight in it never complete in the
 * child, so none of their callbacks runs here. A dispatcher that is not
 * undici's Agent (a ProxyAgent, an application's own) cannot be rebuilt from
 * outside: it stays, and a request through it fails on the first write to
 * an inherited connection with FORKD_ERR_INHERITED_CONNECTION
 * (inherited-sockets.ts); docs/LIBRARIES.md has the atFork recipe.
 */
export function replaceFetchDispatcher(): void {
  const slot = globalThis as unknown as Record<symbol, unknown>;
  const old = slot[GLOBAL_DISPATCHER];
  if (old === undefined || old === null || typeof old !== 'object') return;
  const fresh = freshAgent(old as Dispatcher);
  if (fresh !== null) slot[GLOBAL_DISPATCHER] = fresh;
}
