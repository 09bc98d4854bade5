// Runs in the `forkd` CLI, before any other of its modules loads: a
// `--token` on the command line leaves /proc/PID/cmdline (which every local
// user can read) as early as this process can make it. Setting the title
// does it: libuv writes the title over the whole of the original argv and
// zeroes the rest. `forkd serve` is titled "forkd supervisor" whether or not
// it got a token; a client command only when it got one.

/** The command word: the first argument that is neither an option nor a global option's value. */
function commandOf(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (/^--(url|socket|token)$/.test(arg)) i++;
    else if (!arg.startsWith('-')) return arg;
  }
  return undefined;
}

const argv = process.argv.slice(2);
if (commandOf(argv) === 'serve') process.title = 'forkd supervisor';
else if (argv.some((a) => a === '--token' || a.startsWith('--token='))) process.title = 'forkd';

export {};
