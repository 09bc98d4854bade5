// Runs in the supervisor and the zygote: newline-delimited JSON over a
// stream socket, with a length limit. A line that is too long or not JSON is
// a protocol error, reported as such (FORKD_ERR_PROTOCOL), never thrown into
// the event loop.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { ForkdError } from '../errors';

export class JsonLineChannel<In, Out> extends EventEmitter {
  private buffer = '';
  constructor(
    readonly socket: Socket,
    private readonly accept: (value: unknown) => value is In,
    private readonly maxLine = 64 * 1024 * 1024,
    buffered = '',
  ) {
    super();
    // Bytes a previous owner of this socket read but did not parse (a
    // supervisor restart hands them over with the fd).
    this.buffer = buffered;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (error) => this.emit('error', error));
    socket.on('close', () => this.emit('close'));
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline);
      this.buffer = this.buffer.slice(newline + 1);
      this.onLine(line);
    }
    if (this.buffer.length > this.maxLine) {
      this.buffer = '';
      this.emit('error', new ForkdError('FORKD_ERR_PROTOCOL', `channel message longer than ${this.maxLine} bytes`));
      this.socket.destroy();
    }
  }

  private onLine(line: string): void {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      this.emit('error', new ForkdError('FORKD_ERR_PROTOCOL', `channel message is not JSON: ${line.slice(0, 80)}`));
      return;
    }
    if (!this.accept(value)) {
      this.emit('error', new ForkdError('FORKD_ERR_PROTOCOL', `unexpected channel message: ${line.slice(0, 80)}`));
      return;
    }
    this.emit('message', value);
  }

  /** The partial message read so far. */
  buffered(): string {
    return this.buffer;
  }

  send(message: Out): boolean {
    if (this.socket.destroyed || !this.socket.writable) return false;
    return this.socket.write(`${JSON.stringify(message)}\n`);
  }

  close(): void {
    this.socket.end();
  }
}
