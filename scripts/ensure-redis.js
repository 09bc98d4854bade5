// `npm test` needs Debian's redis-server for the tests that use a real Redis
// (the queue mode and the library recipes). Each test starts its own server on
// a private port (test/redis-server.js); this only makes sure the binary is
// there: installed with apt-get when we are root on a Debian-like system, or
// else a stop with the exact command to run.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');

const found = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

if (!found('redis-server')) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && found('apt-get')) {
    console.log('redis-server is missing: installing Debian\'s redis-server package (apt-get)');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'redis-server'], { stdio: 'inherit', env });
  } else {
    console.error('The tests need redis-server (Debian\'s package), which is not installed. Run:\n\n  sudo apt-get update && sudo apt-get install -y redis-server\n\nthen npm test again.');
    process.exit(1);
  }
}
