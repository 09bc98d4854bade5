// Runs in the uvu process. A private PostgreSQL server (Debian's postgresql
// package) for one test file: a cluster made by initdb in a temp dir, on its
// own port on 127.0.0.1 and a unix socket in that dir, trust auth, fsync off,
// stopped and removed by stop(). PostgreSQL refuses to run as root, so when
// the tests run as root the cluster belongs to the `postgres` user and the
// commands run through runuser. Optional: unavailable() says why a server
// cannot be started here (the package is missing: npm test does not install
// it; `apt-get install -y postgresql` does), and the pg tests skip saying so.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { freePort } = require('./helpers');

function binDir() {
  const root = '/usr/lib/postgresql';
  let versions = [];
  try {
    versions = fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, 'bin', 'initdb')));
  } catch {}
  versions.sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? path.join(root, versions[0], 'bin') : null;
}

/** Why no server can be started here, or null when one can. */
function unavailable() {
  if (binDir() === null) return 'PostgreSQL is not installed (apt-get install -y postgresql)';
  if (process.getuid() === 0 && spawnSync('id', ['postgres'], { stdio: 'ignore' }).status !== 0) return 'running as root and there is no postgres user to run the server as';
  return null;
}

async function startPostgres() {
  const why = unavailable();
  if (why !== null) throw new Error(`cannot start PostgreSQL: ${why}`);
  const bin = binDir();
  const asRoot = process.getuid() === 0;
  const run = (cmd, args) => {
    const file = path.join(bin, cmd);
    return asRoot ? execFileSync('runuser', ['-u', 'postgres', '--', file, ...args], { stdio: 'pipe' }) : execFileSync(file, args, { stdio: 'pipe' });
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forkd-pg-'));
  const data = path.join(dir, 'data');
  if (asRoot) execFileSync('chown', ['postgres', dir]);
  const port = await freePort();
  try {
    run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '--no-instructions']);
    run('pg_ctl', ['-D', data, '-w', '-t', '20', '-l', path.join(dir, 'log'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`, 'start']);
  } catch (error) {
    const log = fs.existsSync(path.join(dir, 'log')) ? fs.readFileSync(path.join(dir, 'log'), 'utf8') : '';
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`PostgreSQL did not start: ${error.stderr ?? error.message}\n${log}`);
  }
  return {
    port,
    host: '127.0.0.1',
    config: { host: '127.0.0.1', port, user: 'postgres', database: 'postgres' },
    async stop() {
      try {
        run('pg_ctl', ['-D', data, '-w', '-m', 'immediate', 'stop']);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

module.exports = { startPostgres, unavailable };
