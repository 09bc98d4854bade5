// Files the parent holds open, in a forked child: a better-sqlite3 (12)
// database in WAL mode, and an fs.promises FileHandle. Neither is a socket
// forkd can neutralise: each test shows the hazard (so the recipe stays
// needed) and proves the recipe of docs/LIBRARIES.md.
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const Database = require('better-sqlite3');
const forkd = require('..');
const { exitOf, tmpDir } = require('./helpers');

let dir;
test.before(() => {
  dir = tmpDir();
});
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

function freshDb(name) {
  const file = path.join(dir, name);
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec('create table t (who text)');
  return { db, file, rows: () => new Database(file, { readonly: true }).prepare('select who from t order by rowid').all().map((r) => r.who) };
}

test("better-sqlite3: the parent holds BEGIN IMMEDIATE at the fork; a child using the inherited connection commits the parent's uncommitted row", async () => {
  const { db, rows } = freshDb('hazard.sqlite');
  db.prepare('BEGIN IMMEDIATE').run();
  db.prepare("insert into t values ('parent, uncommitted')").run();
  const child = await forkd.forkRun(() => {
    const inTransaction = db.inTransaction;
    db.prepare("insert into t values ('child')").run();
    db.prepare('COMMIT').run();
    return inTransaction;
  });
  const info = await exitOf(child);
  db.prepare('ROLLBACK').run();
  assert.equal([info.code, info.result], [0, true], 'the child inherited the transaction, without its lock');
  assert.equal(rows(), ['parent, uncommitted', 'child'], 'the parent rolled back, yet its row is committed');
  db.close();
});

test("better-sqlite3: the recipe: no fork inside a transaction (an atFork prepare hook refuses), and the child's own connection, opened in a child hook, writes beside the parent's", async () => {
  const { db, file, rows } = freshDb('recipe.sqlite');
  let mine = null;
  const off = forkd.atFork({
    prepare() {
      if (db.inTransaction) throw new Error('refusing to fork inside a SQLite transaction');
    },
    child() {
      mine = new Database(file, { timeout: 5000 });
    },
  });
  try {
    db.prepare('BEGIN IMMEDIATE').run();
    db.prepare("insert into t values ('parent, rolled back')").run();
    const refused = await forkd.forkRun(() => 'forked').then(
      () => null,
      (e) => e.message,
    );
    assert.is(refused, 'refusing to fork inside a SQLite transaction');
    db.prepare('ROLLBACK').run();
    const child = await forkd.forkRun(() => {
      mine.prepare("insert into t values ('child')").run();
      mine.close();
      return 'written';
    });
    // The parent's own transaction meanwhile: the child's write waits for it
    // or goes first, never both at once.
    db.prepare('BEGIN IMMEDIATE').run();
    db.prepare("insert into t values ('parent')").run();
    db.prepare('COMMIT').run();
    const info = await exitOf(child);
    assert.equal([info.code, info.result], [0, 'written'], JSON.stringify(info.error));
    assert.equal(rows().sort(), ['child', 'parent']);
    assert.is(new Database(file, { readonly: true }).pragma('integrity_check', { simple: true }), 'ok');
  } finally {
    off();
    db.close();
  }
});

// Ten 8-byte records, read in sequence (position null: the file offset).
async function recordsFile(name) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, Array.from({ length: 10 }, (_, i) => `rec-${String(i).padStart(4, '0')}`).join(''));
  return { file, fh: await fs.promises.open(file, 'r') };
}

async function readNext(fh, position = null) {
  const { buffer, bytesRead } = await fh.read(Buffer.alloc(8), 0, 8, position);
  return buffer.subarray(0, bytesRead).toString();
}

test("fs.promises FileHandle: sequential reads in a child move the parent's offset; positional reads in the child leave it", async () => {
  const shared = await recordsFile('shared.dat');
  try {
    assert.is(await readNext(shared.fh), 'rec-0000');
    const child = await forkd.forkRun(async () => [await readNext(shared.fh), await readNext(shared.fh)]);
    assert.equal((await exitOf(child)).result, ['rec-0001', 'rec-0002']);
    assert.is(await readNext(shared.fh), 'rec-0003', 'the parent skipped the records the child read');
  } finally {
    await shared.fh.close();
  }
  const own = await recordsFile('positional.dat');
  try {
    assert.is(await readNext(own.fh), 'rec-0000');
    const child = await forkd.forkRun(async () => [await readNext(own.fh, 8), await readNext(own.fh, 16)]);
    assert.equal((await exitOf(child)).result, ['rec-0001', 'rec-0002']);
    assert.is(await readNext(own.fh), 'rec-0001', "the parent's offset did not move");
  } finally {
    await own.fh.close();
  }
});

test.run();
