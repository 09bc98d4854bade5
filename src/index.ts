// The package root: the library API. Loading it installs, once, what forking
// needs from the start: the madvise filter (native), timer, Worker and fs
// write tracking, and the random-stream wrappers; and forkd's own code is compiled
// eagerly, so that children inherit it compiled (lib/warm-child-path.ts).
import { endEagerCompile } from './lib/warm-child-path';
import { installRandomWrappers } from './lib/random';
import { installTracking } from './lib/tracking';
import { installWriteTracking } from './lib/write-tracking';

installTracking();
installWriteTracking();
installRandomWrappers();

export { fork } from './lib/fork';
export { exit, isForkedChild } from './child/exit';
export { forkRun } from './lib/fork-run';
export type { ForkRunOptions, ForkedChild, ExitInfo, RunContext, OutputTarget } from './lib/fork-run';
export { PreforkPool } from './lib/prefork-pool';
export type { PreforkPoolOptions, PoolRunOptions, PoolCloseOptions } from './lib/prefork-pool';
export { atFork } from './lib/at-fork';
export type { AtForkHooks } from './lib/at-fork';
export { ExitWatch } from './lib/exit-watch';
export { kill, killpg, setsid, setpgid, getpgid, setProcessTitle, setDeathSignal, setChildSubreaper, redirectStdio, closeFdsExcept, openFds } from './lib/process-control';
export { ForkdError, codes } from './errors';
export type { ErrorCode } from './errors';
// Neither the client nor a service's zygote is used on a child's way to its job.
endEagerCompile();
export * from './client/client';
export { startZygote } from './lib/start-zygote';
export type { StartZygoteOptions, Zygote, ZygoteRunOptions, ZygoteCloseOptions, ZygoteInfo, RunOutcome, RunError } from './lib/start-zygote';
// The app contract (docs/APP.md), for a TypeScript app: `const app: App = { handlers: { ... } }`.
export type { App, Handler, HandlerContext } from './zygote/app-contract';
