// Runs in the uvu process. A raw client for the line protocol: writes bytes
// exactly as given, collects reply lines in order (as text, and as the bytes
// received, for byte-exact checks), sees EOF and resets. Not a test file (the
// runner only loads *.test.js).
'use strict';
const net = require('node:net');
const { within } = require('./helpers');

class LineClient {
  static connect(port, host = '127.0.0.1') {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host, allowHalfOpen: true });
      socket.once('connect', () => resolve(new LineClient(socket)));
      socket.once('error', reject);
    });
  }

  constructor(socket) {
    this.socket = socket;
    this.bytes = Buffer.alloc(0);
    this.lines = [];
    /** The same lines as the bytes that came, without "\n". */
    this.rawLines = [];
    this.waiters = [];
    this.ended = false;
    this.error = null;
    socket.on('data', (chunk) => {
      this.bytes = Buffer.concat([this.bytes, chunk]);
      let nl;
      while ((nl = this.bytes.indexOf(10)) !== -1) {
        const raw = Buffer.from(this.bytes.subarray(0, nl));
        this.rawLines.push(raw);
        this.lines.push(raw.toString('utf8'));
        this.bytes = this.bytes.subarray(nl + 1);
      }
      this.wake();
    });
    socket.on('end', () => {
      // As most clients do: the server closed, so close too.
      socket.end();
      this.ended = true;
      this.wake();
    });
    socket.on('error', (error) => {
      this.error = error;
      this.wake();
    });
    this.closed = new Promise((resolve) => socket.on('close', resolve));
  }

  wake() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  until(predicate, ms, what) {
    return within(
      new Promise((resolve) => {
        const check = () => (predicate() ? resolve() : this.waiters.push(check));
        check();
      }),
      ms,
      what,
    );
  }

  write(data) {
    this.socket.write(data);
    return this;
  }

  /** The next reply line (raw text, without "\n"). */
  async next(ms = 5000) {
    return (await this.nextRaw(ms)).toString('utf8');
  }

  /** The next reply line as the bytes received (without "\n"). */
  async nextRaw(ms = 5000) {
    await this.until(() => this.lines.length > 0 || this.ended || this.error !== null, ms, 'a reply line');
    if (this.lines.length === 0) throw new Error(`connection ${this.error ? `failed (${this.error.code})` : 'ended'} before a reply line`);
    this.lines.shift();
    return this.rawLines.shift();
  }

  /** Writes one request line and returns its reply line. */
  async request(line, ms) {
    this.write(`${line}\n`);
    return this.next(ms);
  }

  /** Writes one request line (a string is sent as UTF-8, a Buffer as is) and returns its reply's bytes. */
  async requestRaw(line, ms) {
    this.write(Buffer.concat([Buffer.isBuffer(line) ? line : Buffer.from(line, 'utf8'), Buffer.from('\n')]));
    return this.nextRaw(ms);
  }

  async replies(n, ms = 5000) {
    const out = [];
    for (let i = 0; i < n; i++) out.push(await this.next(ms));
    return out;
  }

  /** Resolves once the server closed its side (EOF or reset). */
  async eof(ms = 5000) {
    await this.until(() => this.ended || this.error !== null, ms, 'the server to close the connection');
  }

  destroy() {
    this.socket.destroy();
  }
}

module.exports = { LineClient };
