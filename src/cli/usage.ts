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

Queue commands (talk to a BullMQ queue's Redis, not to a daemon):
  enqueue HANDLER       add a job (--wait: follow it and exit like run --wait)
  cancel JOB-ID         cancel a job: removed while it waits, its run terminated once it runs
  schedule ...          recurring jobs: schedule add ID HANDLER --cron EXPR | --every MS, list, remove ID

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

Queue mode (docs/QUEUE.md): the daemon becomes a BullMQ worker of each --queue.
  --redis URL                the queue's Redis (redis://host:port/db, rediss://..., unix:///path)
  --queue NAME               a queue to take jobs from (repeatable); a job's name is the handler,
                             its data the args, its timeoutMs option the run's timeout
  --lock-duration-ms N       BullMQ's job lock, renewed every N/2 while the run runs (default 30000)
  --stalled-interval-ms N    how often to look for other hosts' stalled jobs (default 30000)
  --max-stalled-count N      stalls a job may have before it fails (default 1)
  --queue-prefix PREFIX      BullMQ's key prefix (default bull)
A host takes a job only into a free --max-running slot. A handler's error
named UnrecoverableError fails the job for good (no retry). Delivery is at
least once: a dead host's jobs run again elsewhere after the stalled check.
forkd stop gives the jobs of runs it has to terminate back to the queue;
forkd restart keeps them (none re-delivered).

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
  enqueue: `Usage: forkd enqueue HANDLER --queue NAME --redis URL [options]

Adds a job to a BullMQ queue: any host running forkd serve --queue NAME runs
HANDLER with the job's data as its args. Prints the job's id, or with --wait
follows the job to its end, prints its return value and exits as forkd run
--wait does for the job's last run (0; its exit code; 128 + N for signal N;
124 timed out; 127 failed to start; 255 lost; 1 when no run took place, as
for a handler no host has). While it waits, Ctrl-C cancels the job; a second
one stops waiting and leaves the job going.

  --args JSON            the job's data, the handler's args (default null)
  --job-id ID            BullMQ's jobId (default: the queue's counter)
  --delay MS             not before MS from now
  --attempts N           tries in all when runs fail (default 1)
  --backoff MS           delay before a retry ...
  --backoff-type TYPE    ... fixed, or exponential (the default: MS, 2 MS, 4 MS, ...)
  --priority N           BullMQ's priority (1 is the highest)
  --timeout-ms N         terminate each run after N ms (the job option timeoutMs)
  --wait                 follow the job to its end
  --json                 print the job (with --wait: its outcome and last run) as JSON
  --redis URL            the queue's Redis (or FORKD_REDIS_URL)
  --queue NAME           the queue
  --queue-prefix PREFIX  BullMQ's key prefix (default bull)`,

  cancel: `Usage: forkd cancel JOB-ID --queue NAME --redis URL [--reason TEXT]

Cancels a job. One that waits (or is delayed) is removed. One that runs: the
host that holds it terminates its run (SIGTERM, SIGKILL after its
--kill-grace-ms) and fails the job for good, with "cancelled: TEXT" as the
reason. Fails when the job has already finished or does not exist.

  --reason TEXT          why (default: cancelled by forkd cancel)
  --redis URL            the queue's Redis (or FORKD_REDIS_URL)
  --queue NAME           the queue
  --queue-prefix PREFIX  BullMQ's key prefix (default bull)`,

  schedule: `Usage: forkd schedule add ID HANDLER (--cron EXPR | --every MS) --queue NAME --redis URL [options]
       forkd schedule list --queue NAME --redis URL [--json]
       forkd schedule remove ID --queue NAME --redis URL

Recurring jobs through BullMQ's job schedulers: each time comes due, one job
of HANDLER is added to the queue, and one free host runs it. add creates the
scheduler ID or replaces it.

  --cron EXPR            a cron expression (with seconds as an optional first field)
  --tz ZONE              the cron expression's time zone (default: the host's)
  --every MS             every MS milliseconds instead
  --args JSON            each job's data
  --attempts N           each job's attempts
  --timeout-ms N         each run's timeout
  --json                 list as JSON
  --redis URL            the queue's Redis (or FORKD_REDIS_URL)
  --queue NAME           the queue
  --queue-prefix PREFIX  BullMQ's key prefix (default bull)`,
};
