// Runs in the supervisor. The framing of the Phprocksyd line protocol: a byte
// stream cut into lines ended by "\n" (a "\r" before it is tolerated), each
// at most --max-line bytes. Bytes stay here until a line is taken, so what a
// connection has read but not handled can be handed over across a restart.
import { ForkdError } from '../../errors';

const NL = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);

/** A line (or the unfinished start of one) is longer than the limit. */
export class LineTooLongError extends ForkdError {
  readonly limit: number;
  constructor(limit: number) {
    super('FORKD_ERR_LINE_TOO_LONG', `request line longer than ${limit} bytes`);
    this.name = 'LineTooLongError';
    this.limit = limit;
  }
}

export class LineFramer {
  /** Bytes received and not yet taken by next(). */
  private buf: Buffer = EMPTY;
  /** How many bytes at the start of buf are known to hold no "\n". */
  private scanned = 0;

  /** maxLine: the longest line accepted, without its "\n" or "\r\n". */
  constructor(readonly maxLine: number) {}

  /** Appends bytes read from the connection. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  /**
   * The next complete line without its terminator, or null while none is
   * complete. Throws LineTooLongError as soon as the first line is known to
   * be too long, even before its "\n" arrived; the bytes are then kept as
   * they were (the connection is closed anyway).
   */
  next(): Buffer | null {
    const nl = this.buf.indexOf(NL, this.scanned);
    if (nl === -1) {
      this.scanned = this.buf.length;
      // One byte of slack: the line may yet end in "\r\n".
      if (this.buf.length > this.maxLine + 1) throw new LineTooLongError(this.maxLine);
      return null;
    }
    const end = nl > 0 && this.buf[nl - 1] === CR ? nl - 1 : nl;
    if (end > this.maxLine) throw new LineTooLongError(this.maxLine);
    const line = this.buf.subarray(0, end);
    this.buf = nl + 1 === this.buf.length ? EMPTY : this.buf.subarray(nl + 1);
    this.scanned = 0;
    return line;
  }

  /** Bytes received but not yet taken: complete lines still queued and the partial last one. */
  pending(): Buffer {
    return this.buf;
  }

  get pendingBytes(): number {
    return this.buf.length;
  }

  /** True when a complete line is waiting (or the first line is already too long). */
  hasLine(): boolean {
    return this.buf.indexOf(NL, this.scanned) !== -1 || this.buf.length > this.maxLine + 1;
  }
}
