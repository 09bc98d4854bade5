'use strict';
// Runs in the uvu process. ForkdClient.run(..., { wait: true }) resolves only
// once the run has ended, however many times the daemon restarts meanwhile:
// a restart answers every wait in progress with the run's current state (it
// cannot hold a request across its execve), and the client must wait again.
const { test } = require('uvu');
const assert = require('uvu/assert');
const { ForkdClient } = require('..');
const { within } = require('./helpers');
const { startDaemon } = require('./daemon');

const RESTARTS = 10;
const CLIENTS = 8;

test(`run({ wait: true }) from ${CLIENTS} clients through ${RESTARTS} restarts: every answer is a finished run`, async () => {
  const d = await startDaemon({ app: 'test/fixtures/http-app.js', args: ['--max-running', '200', '--retain', '100000'] });
  const clients = Array.from({ length: CLIENTS }, () => new ForkdClient({ url: d.url }));
  const problems = [];
  let waits = 0;
  let going = true;
  try {
    const loop = async (client, k) => {
      for (let n = 0; going; n++) {
        // Runs of 50 to 400 ms, so that waits are in flight at every restart.
        const ms = 50 + ((k * 37 + n * 53) % 350);
        try {
          const record = await client.run('sleep', { ms }, { wait: true });
          waits++;
          if (record.state !== 'exited' || record.exitCode !== 0) problems.push(`client ${k} run ${record.id}: ${record.state} (exit ${record.exitCode})`);
        } catch (error) {
          problems.push(`client ${k}: ${error.code ?? ''} ${error.message}`);
        }
      }
    };
    const loops = clients.map((c, k) => loop(c, k));
    for (let i = 0; i < RESTARTS; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      const before = d.logs.filter((r) => r.msg === 'forkd restarted').length;
      const res = await d.request({ method: 'POST', path: '/v1/restart' });
      assert.is(res.status, 200, res.text);
      await d.waitLog(() => d.logs.filter((r) => r.msg === 'forkd restarted').length > before, 20000, `restart ${i + 1}`);
    }
    going = false;
    await within(Promise.all(loops), 30000, 'the client loops to finish');
    console.log(`client waits: ${waits} through ${RESTARTS} restarts, ${problems.length} not finished`);
    assert.equal(problems.slice(0, 10), [], `${problems.length} of ${waits} waits answered before the run ended`);
    assert.ok(waits >= RESTARTS * CLIENTS, `only ${waits} waits were made`);
  } finally {
    going = false;
    for (const c of clients) c.close();
    await d.stop();
  }
});

test.run();
