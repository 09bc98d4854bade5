// Runs in the `forkd` CLI. The help text of every command.

const CONNECT = `Where the daemon is (every client command):
  --url URL        the daemon's HTTP address (default http://127.0.0.1:7070, or FORKD_URL)
  --socket PATH    talk over the daemon's unix socket instead (or FORKD_SOCKET)
  --token TOKEN    the daemon's bearer token (or FORKD_TOKEN)`;

export const usage: Record<string, string> = {
  forkd: `Usage: forkd COMMAND [options]

Run jobs of a preloaded Node.js app, each in a fork()ed child of a zygote.

Daemon:
  serve --app FILE      run the daemon (forkd serve --help for its options)

Client commands:
  run HANDLER           start a run (--wait: follow it and exit with its code)
  ps                    list runs
  status ID             show a run's record as JSON
  logs ID               print a run's output (-f follows it)
  kill ID               send a signal to a run (default SIGTERM)
  free ID               forget a finished run and delete its output
  restart               reload the app code in a new zygote
  stop                  stop the daemon gracefully (--leave-runs: runs go on)
  health                show the daemon's health (exit 1 when degraded)

${CONNECT}

  -h, --help       this text ('forkd COMMAND --help' for a command's options)
  -v, --version    print forkd's version`,

  serve: `Usage: forkd serve --app FILE [options]

Starts the daemon: a supervisor serving the HTTP API and a zygote that loads FILE once.

  --app FILE                 the application module (exports handlers): the app
                             contract is docs/APP.md (in the package:
                             node_modules/forkd/docs/APP.md); TypeScript types
                             App, Handler, HandlerContext from 'forkd'
  --host HOST                HTTP address (default 127.0.0.1; others require a token)
  --port N                   HTTP port (default 7070; 0 picks a free one)
  --socket PATH              also serve the HTTP API on a unix socket (mode 0600)
  --token-file PATH          require "Authorization: Bearer TOKEN", TOKEN read from PATH
                             (refused if its group or others may read it; /dev/stdin works)
  --token TOKEN              the same, TOKEN given here: every local user sees it in ps
                             until the daemon is up; prefer --token-file or FORKD_TOKEN
  --allow-env LIST           the variables a run request's env may set: names and PREFIX_*
                             patterns, comma-separated, repeatable (default: none). Never
                             allowed: LD_*, NODE_*, BASH_ENV, PYTHONPATH and their kind
                             (docs/PROTOCOL.md)
  --line-port N              serve the Phprocksyd line protocol on this port (off by default)
  --line-host HOST           its address (loopback only; default: --host)
  --state-dir DIR            run records and output (default ./.forkd); one daemon per DIR (DIR/lock)
  --max-running N            concurrent runs; more are refused (default 64)
  --retain N                 finished records kept (default 1000, at least 1)
  --max-output-bytes N       per run and stream (default 10 MiB)
  --max-result-bytes N       a run's result JSON; a larger one fails the run (default 16 MiB, at most 256 MiB)
  --kill-grace-ms N          SIGKILL to a run's process group this long after every
                             SIGTERM the daemon sends it: timeout, terminate, kill, stop
                             (default 5000)
  --spawn-timeout-ms N       a fork must report back within this (default 5000)
  --load-timeout-ms N        the app must load within this, else its zygote is killed (default 60000)
  --max-line N               longest line-protocol request (default 1 MiB)
  --line-idle-timeout-ms N   idle line-protocol connections are closed (default 300000)
  --max-connections N        open HTTP connections (default 1024)
  --stop-timeout N           ms running jobs get on stop before they are terminated (default 10000;
                             \`forkd stop --leave-runs\` leaves them to the next daemon instead)
  --prefork N                zygote prefork pool (default 0)
  --log-level LEVEL          trace, debug, info, warn, error (default info; logs go to stderr)

The token (16+ printable characters, from --token-file, --token or
FORKD_TOKEN) is read once: a restart keeps it and reads no file again. No
zygote or run gets it, nor FORKD_TOKEN in its environment.

Exits 1 at once, with one line on stderr, when an address cannot be listened
on (--port, --line-port, --socket busy) or another daemon holds --state-dir.
SIGTERM or SIGINT stops it gracefully at any stage, SIGHUP restarts it.`,

  run: `Usage: forkd run HANDLER [options]

Starts a run of HANDLER. Prints its id, or with --wait follows it: prints its
stdout and stderr as they come, then its result, and exits with its status
(below). While it follows, Ctrl-C (SIGINT), SIGTERM and SIGHUP are sent on to
the run; a second one stops waiting and leaves the run going.

  --args JSON          the handler's arguments (default: none)
  --id ID              the run's id (default: generated)
  --timeout-ms N       terminate the run after N ms
  --env K=V            an environment variable for the run (repeatable); the daemon
                       accepts only those its serve --allow-env names
  --wait               follow the run to its end
  --json               print the run's record as JSON instead of its id

Exit status with --wait, by how the run ended:
  exited               its exit code (a handler that throws: 1)
  killed               128 + N for signal N, as a shell reports it (SIGKILL: 137)
  timed_out            124, as timeout(1), whatever the run exited with after its SIGTERM
  failed_to_start      127, as a shell for a command it could not run (the handler never ran)
  lost                 255: it ended, but how could not be recovered
Without --wait: 0 once the run has started, 127 when it failed to start.
The line protocol's check reports the same numbers for the last two.
Either way: 1 when forkd itself failed (the daemon unreachable, the request
refused), 2 for a wrong command line, and 128 + N when a second signal N
stopped the waiting.

${CONNECT}`,

  ps: `Usage: forkd ps [--state STATE] [--json]

Lists runs: id, handler, state, pid, exit code or signal, start, duration.

  --state STATE   only runs in STATE: running, exited, killed, timed_out, lost, failed_to_start
  --json          print the records as JSON

${CONNECT}`,

  status: `Usage: forkd status ID [--wait-ms N]

Prints the run's record as JSON.

  --wait-ms N   wait up to N ms (at most 60000) for the run to end first

${CONNECT}`,

  logs: `Usage: forkd logs ID [-f] [--stderr]

Prints the run's captured output.

  -f, --follow   keep printing while the run runs; return when it has ended
  --stderr       the run's stderr instead of its stdout

${CONNECT}`,

  kill: `Usage: forkd kill ID [--signal SIGNAL]

Sends a signal to the run's process group.

  -s, --signal SIGNAL   a name (SIGTERM, TERM) or number (default SIGTERM)

${CONNECT}`,

  free: `Usage: forkd free ID

Forgets a finished run and deletes its output (a running run is refused).

${CONNECT}`,

  restart: `Usage: forkd restart

Loads the application code anew in a new zygote; runs going on finish on the
old code. When the new code fails to load, the daemon keeps the old and this
command fails with the load error.

${CONNECT}`,

  stop: `Usage: forkd stop [--leave-runs]

Stops the daemon gracefully: running jobs get --stop-timeout to finish, then
they are terminated (SIGTERM, SIGKILL after --kill-grace-ms).

  --leave-runs   stop at once and leave running jobs running: they stay
                 recorded, and the next \`forkd serve\` on the same
                 --state-dir follows them to their end and records how they
                 ended (a run's --timeout-ms still applies)

${CONNECT}`,

  health: `Usage: forkd health

Prints the daemon's health as JSON; exits 1 when it is degraded.

${CONNECT}`,
};
