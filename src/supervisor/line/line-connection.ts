// Runs in the supervisor. One line-protocol connection: its framing, its
// requests answered strictly in order, its bounded buffers both ways, and its
// state (fd, bytes read but not handled, replies not written) exported for an
// execve of the supervisor and taken back by the next one.
import * as net from 'node:net';
import type { Logger } from 'pino';
import type { SupervisorConfig } from '../config';
import { fdOf, unsentBytes } from '../../node-internals';
import { LineFramer, LineTooLongError } from './line-framing';
import { encodeReply, handleLine, lineTooLong, replies, restartFailed, type LineReply } from './line-protocol';
import type { RunService } from '../runs/run-service';

/** Past this many unwritten reply bytes a connection takes no new request until the client reads. */
const OUTPUT_HIGH_WATER = 64 * 1024;
/** Bytes buffered beyond the current line before reading pauses (while a request or the client is slow). */
const INPUT_HIGH_WATER = 64 * 1024;
/** How long a closing connection waits for the client's FIN before it is destroyed. */
export const LINGER_MS = 5000;

/** One connection as handed across an execve of the supervisor. */
export interface LineConnectionState {
  /** The socket's fd: must be inherited (no CLOEXEC) by the new process. */
  fd: number;
  /** Bytes read but not yet handled: whole lines still queued, then the partial last one (base64). */
  unread: string;
  /** Reply bytes not yet written to the socket, in order (base64). */
  unwritten: string;
  /** A `restart` from this connection awaits its answer: the new process answers it first. */
  awaitingRestart: boolean;
  /** After `unwritten` is written the connection is to be closed (bye, a too-long line). */
  closing: boolean;
}

export interface Owner {
  service: RunService;
  config: SupervisorConfig;
  logger: Logger;
  connections: Set<LineConnection>;
  suspended: boolean;
  /** close() was called. */
  closing: boolean;
  /** Called whenever a connection finishes a request or closes. */
  changed(): void;
}

type Phase = 'open' | 'stopped' | 'closing' | 'closed';

let nextConnectionId = 1;

export class LineConnection {
  readonly id = nextConnectionId++;
  readonly logger: Logger;
  private readonly framer: LineFramer;
  /** Replies queued and not yet passed to the socket. */
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  /** The one chunk passed to socket.write() and not yet called back. */
  private inflight: Buffer | null = null;
  /** A request is being handled (its reply is not known yet). */
  busy = false;
  awaitingRestart = false;
  phase: Phase = 'open';
  private readEnded = false;
  private lingerTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly socket: net.Socket,
    private readonly owner: Owner,
  ) {
    this.logger = owner.logger.child({ conn: this.id });
    this.framer = new LineFramer(owner.config.maxLine);
    socket.setNoDelay(true);
    socket.setTimeout(owner.config.lineIdleTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('timeout', () => this.onTimeout());
    socket.on('error', (error) => this.logger.debug({ err: error }, 'line connection error'));
    socket.on('close', () => this.onClose());
  }

  /** Puts back what the previous supervisor handed over for this connection. */
  adopt(state: LineConnectionState, restartReply: LineReply): void {
    const unwritten = Buffer.from(state.unwritten, 'base64');
    if (unwritten.length > 0) this.enqueueBytes(unwritten);
    if (state.awaitingRestart) this.enqueueBytes(encodeReply(restartReply));
    this.framer.push(Buffer.from(state.unread, 'base64'));
    if (state.closing) this.beginClose();
  }

  private onData(chunk: Buffer): void {
    if (this.phase !== 'open') return; // Closing: read and discard until the client's FIN.
    this.framer.push(chunk);
    try {
      this.pump();
    } catch (error) {
      // A bug of ours must cost this connection, never the daemon.
      this.logger.error({ err: error }, 'line connection failed');
      this.socket.destroy();
    }
  }

  private onEnd(): void {
    this.readEnded = true;
    if (this.phase === 'open') this.pump();
    else if (this.phase === 'closing') this.maybeFinish();
  }

  private onTimeout(): void {
    if (this.busy) {
      // A request in flight is activity too; its own timeouts bound it.
      this.socket.setTimeout(this.owner.config.lineIdleTimeoutMs);
      return;
    }
    this.logger.debug({ unwritten: this.unwrittenBytes() }, 'line connection idle: closing');
    // Replies the client has not read in all that time will not be read.
    if (this.unwrittenBytes() > 0) this.socket.destroy();
    else this.beginClose();
  }

  private onClose(): void {
    this.phase = 'closed';
    if (this.lingerTimer !== null) clearTimeout(this.lingerTimer);
    this.queue = [];
    this.queuedBytes = 0;
    this.owner.connections.delete(this);
    this.owner.changed();
  }

  /** Handles every complete line it may: one at a time, in order. */
  pump(): void {
    while (this.phase === 'open' && !this.busy && !this.owner.suspended && this.unwrittenBytes() <= OUTPUT_HIGH_WATER) {
      let line: Buffer | null;
      try {
        line = this.framer.next();
      } catch (error) {
        if (!(error instanceof LineTooLongError)) throw error;
        this.logger.info({ limit: error.limit }, 'line too long: closing the connection');
        this.enqueue(lineTooLong(error.limit));
        this.beginClose();
        return;
      }
      if (line === null) {
        // The original ignored an unterminated last line at EOF too.
        if (this.readEnded) this.beginClose();
        break;
      }
      this.dispatch(line);
    }
    this.updateReading();
  }

  private dispatch(line: Buffer): void {
    const outcome = handleLine(line, { service: this.owner.service, logger: this.logger });
    switch (outcome.kind) {
      case 'reply':
        this.enqueue(outcome.reply);
        return;
      case 'bye':
        this.beginClose();
        return;
      case 'stop':
        // The daemon is going away; close() ends this connection with the rest.
        if (this.phase === 'open') this.phase = 'stopped';
        return;
      case 'pending':
        this.busy = true;
        this.awaitingRestart = outcome.command === 'restart';
        outcome.reply
          .catch((error: unknown) => {
            this.logger.error({ err: error }, 'line-protocol request failed');
            return outcome.command === 'run' ? replies.cannotFork : restartFailed(String(error));
          })
          .then((reply) => {
            this.busy = false;
            this.awaitingRestart = false;
            if (this.phase === 'closed') return;
            this.enqueue(reply);
            this.owner.changed();
            if (this.phase === 'open') this.pump();
            else this.maybeFinish();
          });
    }
  }

  private enqueue(reply: LineReply): void {
    this.enqueueBytes(encodeReply(reply));
  }

  private enqueueBytes(bytes: Buffer): void {
    if (this.phase === 'closed') return;
    this.queue.push(bytes);
    this.queuedBytes += bytes.length;
    this.flush();
  }

  /** Keeps at most one write in flight, so what is unwritten is always known exactly. */
  private flush(): void {
    if (this.inflight !== null || this.queuedBytes === 0 || this.phase === 'closed') return;
    const chunk = this.queue.length === 1 ? this.queue[0] : Buffer.concat(this.queue);
    this.queue = [];
    this.queuedBytes = 0;
    this.inflight = chunk;
    this.socket.write(chunk, (error) => {
      this.inflight = null;
      if (error) return; // 'error' and 'close' follow.
      this.flush();
      if (this.phase === 'open') this.pump();
      else this.maybeFinish();
    });
  }

  /** Reply bytes not yet in the kernel: the unsent tail of the write in flight, then the queue. */
  unwrittenBytes(): number {
    return this.inflightTail().length + this.queuedBytes;
  }

  private inflightTail(): Buffer {
    if (this.inflight === null) return Buffer.alloc(0);
    // libuv's count of bytes it still holds for this handle; with one write
    // in flight they are exactly the end of that write.
    const left = Math.min(unsentBytes(this.socket, this.inflight.length), this.inflight.length);
    return this.inflight.subarray(this.inflight.length - left);
  }

  /** Pauses reading while lines pile up behind a slow request or a client that does not read. */
  private updateReading(): void {
    if (this.phase === 'closed' || this.socket.destroyed) return;
    const backlog = this.owner.suspended || this.phase === 'stopped' || this.busy || this.unwrittenBytes() > OUTPUT_HIGH_WATER;
    if (this.phase === 'closing') this.socket.resume();
    else if (this.owner.suspended || this.phase === 'stopped' || (backlog && this.framer.pendingBytes > INPUT_HIGH_WATER)) this.socket.pause();
    else this.socket.resume();
  }

  /** Stops taking requests; closes once the replies are written (and the client's FIN came, or LINGER_MS passed). */
  beginClose(): void {
    if (this.phase === 'closing' || this.phase === 'closed') return;
    this.phase = 'closing';
    // Keep reading (and discarding) so unread input does not turn our FIN
    // into a RST that could destroy the replies before the client reads them.
    this.socket.resume();
    this.lingerTimer = setTimeout(() => this.socket.destroy(), LINGER_MS);
    this.lingerTimer.unref();
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (this.phase !== 'closing' || this.busy || this.inflight !== null || this.queuedBytes > 0) return;
    // Both ways done, or the daemon is going away: destroy once our FIN is
    // out. Else wait (up to LINGER_MS) for the client's FIN.
    if (this.readEnded || this.owner.closing) this.socket.destroySoon();
    else if (!this.socket.writableEnded) this.socket.end();
  }

  /** Takes into the framer what Node already read but did not emit (a paused socket). */
  private drainReadable(): void {
    // read() on a paused socket emits 'data' for what it returns: onData
    // pushes it into the framer, and pump() takes nothing while suspended.
    while (this.socket.read() !== null);
  }

  state(): LineConnectionState {
    this.drainReadable();
    const fd = fdOf(this.socket);
    const queued = this.queue.length === 0 ? Buffer.alloc(0) : Buffer.concat(this.queue);
    return {
      fd,
      unread: this.phase === 'closing' ? '' : Buffer.from(this.framer.pending()).toString('base64'),
      unwritten: Buffer.concat([this.inflightTail(), queued]).toString('base64'),
      awaitingRestart: this.awaitingRestart,
      closing: this.phase === 'closing',
    };
  }

  /** Quiescent for a handover: nothing in flight but a restart. */
  quiet(): boolean {
    return !this.busy || this.awaitingRestart;
  }

  resume(): void {
    this.flush();
    if (this.phase === 'open') this.pump();
    else this.updateReading();
  }
}
