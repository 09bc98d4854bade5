// Runs in the supervisor (and in the CLI, which parses `forkd serve`'s
// flags). The bearer token's rule, and --token-file: a way to give the token
// that puts it on no command line and in no environment.
import * as fs from 'node:fs';
import { ForkdError } from '../errors';

const MIN_TOKEN = 16;
const MAX_TOKEN_FILE = 4096;

/** The rule every token obeys, wherever it came from: what "Authorization: Bearer" can carry. */
export function checkToken(token: string, source: string): string {
  if (token.length < MIN_TOKEN || token.length > MAX_TOKEN_FILE || !/^[\x21-\x7e]+$/.test(token)) {
    throw new ForkdError('FORKD_ERR_INVALID_ARG', `${source} must be ${MIN_TOKEN} to ${MAX_TOKEN_FILE} printable ASCII characters without spaces, got ${token.length} characters`);
  }
  return token;
}

/**
 * The token in `file` (--token-file): refused when its group or others may
 * read or write it, judged on the file actually opened (a symlink such as
 * /dev/stdin or /dev/fd/3 is followed; a pipe is mode 0600). One trailing
 * newline is not part of it.
 */
export function readTokenFile(file: string): string {
  const where = `--token-file ${JSON.stringify(file)}`;
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOCTTY);
  } catch (error) {
    throw new ForkdError('FORKD_ERR_INVALID_ARG', `${where} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new ForkdError('FORKD_ERR_INVALID_ARG', `${where} is a directory`);
    const mode = st.mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new ForkdError('FORKD_ERR_INVALID_ARG', `${where} is accessible by its group or others (mode ${mode.toString(8).padStart(4, '0')}): chmod 600 it, or pass the token another way`);
    }
    const buf = Buffer.alloc(MAX_TOKEN_FILE + 3);
    let n = 0;
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = fs.readSync(fd, buf, n, buf.length - n, null);
    return checkToken(buf.subarray(0, n).toString('utf8').replace(/\r?\n$/, ''), `the token in ${where}`);
  } finally {
    fs.closeSync(fd);
  }
}
