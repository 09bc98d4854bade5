// Runs in the supervisor: what the daemon does with its zygotes' events
// (zygote-host/zygote-set.ts): structured log lines and the restart counter.
import type { Logger } from 'pino';
import type { ExitedMessage } from '../../zygote-host/zygote-handle';
import type { ZygoteSetHooks } from '../../zygote-host/zygote-set';
import type { Metrics } from '../metrics';

export function daemonZygoteHooks(logger: Logger, metrics: Metrics, onRunExited: (message: ExitedMessage) => void, isAdopted: (runId: string, pid: number) => boolean): ZygoteSetHooks {
  return {
    onRunExited,
    isAdopted,
    onRestart: () => metrics.zygoteRestarts.inc(),
    log: (level, fields, message) => logger[level](fields, message),
  };
}
