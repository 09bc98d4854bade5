// Runs in the supervisor and the zygote: newline-delimited JSON over a
// stream socket, with a length limit each way. A line that is too long or not
// JSON is a protocol error, reported as such (FORKD_ERR_PROTOCOL), never
// thrown into the event loop.
//
// Reading costs time linear in the bytes read, whatever their size and
// however they are split: each chunk is searched for a newline once, from its
// start, and a partial message is kept as the chunks it came in, joined only
// when its newline arrives. (Appending every chunk to one string and
// searching it from the start again made a 50 MB message cost the supervisor
// 6 s of CPU, quadratic in its size.) A message is bounded: past `maxIn`
// bytes without a newline the channel is given up.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { ForkdError } from '../errors';

const NEWLINE = 0x0a;

export interface JsonLineLimits {
  /** The longest message read, in bytes; a longer one breaks the channel. */
  maxIn: number;
  /** The longest message sent; send() refuses a longer one (MessageTooLongError). */
  maxOut: number;
}

/** send() of a message longer than the channel's maxOut: nothing was sent. */
export class MessageTooLongError extends ForkdError {
  constructor(
    readonly bytes: number,
    readonly limit: number,
  ) {
    super('FORKD_ERR_PROTOCOL', `channel message of ${bytes} bytes is longer than the ${limit} the other side reads`);
  }
}

export class JsonLineChannel<In, Out> extends EventEmitter {
  /** The message being read, in the pieces it came in: never searched again. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private broken = false;

  constructor(
    readonly socket: Socket,
    private readonly accept: (value: unknown) => value is In,
    private readonly limits: JsonLineLimits,
    /**
     * The start of a message a previous owner of this socket read (a
     * supervisor restart hands it over with the fd): what came after its
     * last newline, so it holds none.
     */
    buffered: Buffer = Buffer.alloc(0),
  ) {
    super();
    if (buffered.length > 0) {
      this.pending.push(buffered);
      this.pendingBytes = buffered.length;
    }
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.emit('error', error));
    socket.on('close', () => this.emit('close'));
  }

  private onData(chunk: Buffer): void {
    let start = 0;
    while (!this.broken) {
      const newline = chunk.indexOf(NEWLINE, start);
      const piece = chunk.subarray(start, newline < 0 ? chunk.length : newline);
      if (this.pendingBytes + piece.length > this.limits.maxIn) {
        this.fail(new ForkdError('FORKD_ERR_PROTOCOL', `channel message longer than ${this.limits.maxIn} bytes`));
        return;
      }
      if (newline < 0) {
        if (piece.length > 0) {
          this.pending.push(piece);
          this.pendingBytes += piece.length;
        }
        return;
      }
      const line = this.pending.length === 0 ? piece : Buffer.concat([...this.pending, piece], this.pendingBytes + piece.length);
      this.pending = [];
      this.pendingBytes = 0;
      start = newline + 1;
      this.onLine(line);
    }
  }

  private fail(error: ForkdError): void {
    this.broken = true;
    this.pending = [];
    this.pendingBytes = 0;
    this.socket.destroy();
    this.emit('error', error);
  }

  private onLine(line: Buffer): void {
    let value: unknown;
    try {
      value = JSON.parse(line.toString('utf8'));
    } catch {
      this.emit('error', new ForkdError('FORKD_ERR_PROTOCOL', `channel message is not JSON: ${line.subarray(0, 80).toString('utf8')}`));
      return;
    }
    if (!this.accept(value)) {
      this.emit('error', new ForkdError('FORKD_ERR_PROTOCOL', `unexpected channel message: ${line.subarray(0, 80).toString('utf8')}`));
      return;
    }
    this.emit('message', value);
  }

  /** The partial message read so far. */
  buffered(): Buffer {
    return this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
  }

  /** Sends one message; false if the socket is closed. Throws MessageTooLongError past maxOut (nothing sent). */
  send(message: Out): boolean {
    if (this.socket.destroyed || !this.socket.writable) return false;
    const line = Buffer.from(`${JSON.stringify(message)}\n`, 'utf8');
    if (line.length - 1 > this.limits.maxOut) throw new MessageTooLongError(line.length - 1, this.limits.maxOut);
    return this.socket.write(line);
  }

  close(): void {
    this.socket.end();
  }
}
