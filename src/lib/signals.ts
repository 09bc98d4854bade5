// Runs in any forkd process. Signal names and numbers, validated once here.
import { constants } from 'node:os';
import { invalidArg } from '../errors';

const byName = constants.signals as Record<string, number>;
const byNumber = new Map<number, NodeJS.Signals>(Object.entries(byName).map(([name, n]) => [n, name as NodeJS.Signals]));

/** Accepts 'SIGTERM', 'TERM' or 15; throws FORKD_ERR_INVALID_ARG otherwise. */
export function signalNumber(signal: NodeJS.Signals | string | number, what = 'signal'): number {
  if (typeof signal === 'number') {
    if (Number.isInteger(signal) && (signal === 0 || byNumber.has(signal))) return signal;
    throw invalidArg(what, 'a known signal number', signal);
  }
  if (typeof signal === 'string') {
    const name = signal.startsWith('SIG') ? signal : `SIG${signal}`;
    const n = byName[name];
    if (n !== undefined) return n;
  }
  throw invalidArg(what, "a signal name such as 'SIGTERM' or a signal number", signal);
}

export function signalName(signo: number | null): NodeJS.Signals | null {
  return signo === null ? null : byNumber.get(signo) ?? null;
}
