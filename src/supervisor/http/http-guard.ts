// Runs in the supervisor. Who may talk to the HTTP API. First the request
// line must be plain: a path as target, one Host. A daemon on loopback
// is still reachable from every web page a local browser opens: a page can
// POST to http://127.0.0.1:7070 (CSRF) or resolve its own name to 127.0.0.1
// (DNS rebinding). Both are stopped by accepting only our own address in
// `Host` and no foreign `Origin`. Off loopback a bearer token is required
// too (config.ts refuses to start without one).
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { ForkdError } from '../../errors';

const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]'];

function hostForm(address: string): string {
  const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  return isIP(plain) === 6 ? `[${plain}]` : plain.toLowerCase();
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

export class RequestGuard {
  private allowed = new Set<string>();
  private port = 0;
  private readonly tokenDigest: Buffer | null;

  constructor(
    private readonly boundHost: string,
    token: string | null,
  ) {
    this.tokenDigest = token === null ? null : digest(token);
  }

  /** Called once the TCP port is bound (config.port may be 0). */
  setPort(port: number): void {
    this.port = port;
    this.allowed = new Set([...LOOPBACK_NAMES, hostForm(this.boundHost)].flatMap((h) => this.withPort(h)));
  }

  /** The address clients should use, for logs and the CLI. */
  ownHost(): string {
    const h = hostForm(this.boundHost);
    return `${h === '0.0.0.0' || h === '[::]' ? '127.0.0.1' : h}:${this.port}`;
  }

  private withPort(host: string): string[] {
    return this.port === 80 ? [`${host}:80`, host] : [`${host}:${this.port}`];
  }

  private isOwnHost(host: string, req: IncomingMessage): boolean {
    if (this.allowed.has(host)) return true;
    // Bound to a wildcard address, the daemon's own address is the one this
    // connection reached (never a name: names are what DNS rebinding forges).
    const local = req.socket.localAddress;
    return local !== undefined && this.withPort(hostForm(local)).includes(host);
  }

  /**
   * The request line and Host, before anything reads them: a ForkdError
   * (400) for a target that is not a path (absolute-form
   * "http://evil.example/v1/runs", RFC 9112 3.2.2, names an authority that
   * would take precedence over the Host checked below) and for more than one
   * Host (Node keeps the first, a proxy in front may have judged another;
   * RFC 9112 3.2 requires 400).
   */
  checkRequestLine(req: IncomingMessage): ForkdError | null {
    const target = req.url ?? '';
    if (!target.startsWith('/')) {
      return badRequest(`the request target ${JSON.stringify(target.slice(0, 200))} is not a path: absolute-form and other targets are refused; send "${req.method ?? 'GET'} /v1/..." with a Host header`);
    }
    let hosts = 0;
    for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i].toLowerCase() === 'host') hosts++;
    if (hosts > 1) return badRequest(`the request has more than one Host header (${hosts}); send exactly one`);
    return null;
  }

  /** Host and Origin: a ForkdError (403) when the request may come from a web page, else null. */
  checkOrigin(req: IncomingMessage, viaUnixSocket: boolean): ForkdError | null {
    const origin = req.headers.origin;
    if (viaUnixSocket) {
      // No browser speaks HTTP over a unix socket; any Origin here is forwarded from one.
      return origin === undefined ? null : forbidden(`Origin ${JSON.stringify(origin)} is not allowed on the unix socket: requests from web pages are refused`);
    }
    if (req.headers.host === undefined) return forbidden(`the request has no Host header; send "Host: ${this.ownHost()}"`);
    if (!this.isOwnHost(req.headers.host.toLowerCase(), req)) {
      return forbidden(`Host ${JSON.stringify(req.headers.host)} is not this daemon's address (${this.ownHost()}): requests through other names are refused`);
    }
    if (origin !== undefined) {
      const m = /^http:\/\/([^/]+)$/i.exec(origin);
      if (m === null || !this.isOwnHost(m[1].toLowerCase(), req)) {
        return forbidden(`Origin ${JSON.stringify(origin)} is not this daemon's own: requests from web pages are refused`);
      }
    }
    return null;
  }

  /** The bearer token, compared in constant time: a ForkdError (401) when it is required and wrong. */
  checkToken(req: IncomingMessage): ForkdError | null {
    if (this.tokenDigest === null) return null;
    const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    if (m !== null && timingSafeEqual(digest(m[1]), this.tokenDigest)) return null;
    return new ForkdError(
      'FORKD_ERR_UNAUTHORIZED',
      m === null ? 'this daemon requires a token: send "Authorization: Bearer <token>"' : 'the bearer token is wrong',
    );
  }
}

function badRequest(message: string): ForkdError {
  return new ForkdError('FORKD_ERR_BAD_REQUEST', message);
}

function forbidden(message: string): ForkdError {
  return new ForkdError('FORKD_ERR_FORBIDDEN', message);
}
