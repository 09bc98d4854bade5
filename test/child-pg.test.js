// pg (node-postgres) clients of the parent in a forked child, against a real
// PostgreSQL server of the file's own (test/pg-server.js; skipped, saying
// why, where PostgreSQL is not installed). The child's query fails with
// FORKD_ERR_INHERITED_CONNECTION instead of EBADF plus an unhandled 'error'
// that killed the child; a query in flight at the fork runs once, its
// callback in the parent only; the recipe (a pool of the child's own, made
// in an atFork child hook) works. docs/LIBRARIES.md, pg.
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const { Client, Pool } = require('pg');
const forkd = require('..');
const { exitOf, tmpDir, until } = require('./helpers');
const { startPostgres, unavailable } = require('./pg-server');

const why = unavailable();
if (why !== null) {
  console.log(`child-pg: skipped: ${why}`);
} else {
  let pg;
  let dir;
  test.before(async () => {
    pg = await startPostgres();
    dir = tmpDir();
  });
  test.after(async () => {
    await pg?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const query = (db, sql) => async () => {
    try {
      return { rows: (await db.query(sql)).rows };
    } catch (error) {
      return { code: error.code };
    }
  };

  test("pg: a Client connected in the parent: the child's query fails with FORKD_ERR_INHERITED_CONNECTION and the child ends normally; the parent's client still works", async () => {
    const client = new Client(pg.config);
    await client.connect();
    const stderr = path.join(dir, 'client.stderr');
    try {
      const info = await exitOf(await forkd.forkRun(query(client, 'select 1 as x'), { stderr }));
      assert.equal([info.code, info.signal, info.result], [0, null, { code: 'FORKD_ERR_INHERITED_CONNECTION' }], JSON.stringify(info.error));
      assert.is(fs.readFileSync(stderr, 'utf8'), '');
      assert.equal((await client.query('select 2 as x')).rows, [{ x: 2 }]);
    } finally {
      await client.end();
    }
  });

  // The child's query waits in pg's own queue behind the parent's, which
  // never completes in the child: nothing is written, and the job can never
  // settle (exit code 13, forkd's report for a job whose loop ran dry).
  test('pg: an INSERT in flight at the fork runs once, its callback in the parent only; a query of the child queued behind it never settles (code 13)', async () => {
    const client = new Client(pg.config);
    await client.connect();
    const log = path.join(dir, 'inflight.log');
    fs.writeFileSync(log, '');
    try {
      await client.query('create table if not exists hits (n int)');
      await client.query('truncate hits');
      client.query('insert into hits select 1 from pg_sleep(0.2)').then(
        () => fs.appendFileSync(log, `done ${process.pid}\n`),
        () => fs.appendFileSync(log, `failed ${process.pid}\n`),
      );
      const child = await forkd.forkRun(async () => {
        // Alive until the parent's INSERT has completed, in the parent.
        await until(() => fs.readFileSync(log, 'utf8').length > 0, 10000, "the parent's INSERT");
        return query(client, 'select count(*)::int as n from hits')();
      });
      const info = await exitOf(child);
      assert.is(info.code, 13, JSON.stringify(info));
      assert.match(info.error.message, /never settled/);
      assert.is(fs.readFileSync(log, 'utf8'), `done ${process.pid}\n`);
      assert.equal((await client.query('select count(*)::int as n from hits')).rows, [{ n: 1 }]);
    } finally {
      await client.end();
    }
  });

  test('pg: a Pool of the parent fails the same way in the child; a Pool made in an atFork child hook works (5 children)', async () => {
    let pool = new Pool({ ...pg.config, max: 2 });
    const parentPool = pool;
    let off = () => {};
    try {
      await pool.query('select 1');
      const bare = await exitOf(await forkd.forkRun(query(pool, 'select 1 as x')));
      assert.equal([bare.code, bare.result], [0, { code: 'FORKD_ERR_INHERITED_CONNECTION' }], JSON.stringify(bare.error));
      off = forkd.atFork({ child: () => (pool = new Pool({ ...pg.config, max: 1 })) });
      for (let i = 0; i < 5; i++) {
        const info = await exitOf(
          await forkd.forkRun(async () => {
            const { rows } = await pool.query('select $1::int as x', [i]);
            await pool.end();
            return rows;
          }),
        );
        assert.equal([info.code, info.result], [0, [{ x: i }]], JSON.stringify(info.error));
      }
      assert.equal((await parentPool.query('select 3 as x')).rows, [{ x: 3 }]);
    } finally {
      off();
      await parentPool.end();
    }
  });
}

test.run();
