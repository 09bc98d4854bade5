// docs/errors.md and src/errors.ts list the same error codes, each once,
// every row says what the code means and what to do about it, and every code
// is produced somewhere in src/.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('uvu');
const assert = require('uvu/assert');
const { codes, ForkdError } = require('..');

const doc = fs.readFileSync(path.join(__dirname, '..', 'docs', 'errors.md'), 'utf8');

// Table rows: | `CODE` | meaning | what to do |
const rows = doc
  .split('\n')
  .filter((line) => /^\|\s*`FORKD_[A-Z_]+`/.test(line))
  .map((line) => line.split('|').slice(1, -1).map((cell) => cell.trim()));

test('errors: every code in src/errors.ts is in docs/errors.md, and no other', () => {
  const documented = rows.map((cells) => cells[0].replace(/`/g, ''));
  const defined = Object.keys(codes);
  assert.equal(defined.filter((c) => !documented.includes(c)), [], 'codes missing from docs/errors.md');
  assert.equal(documented.filter((c) => !defined.includes(c)), [], 'codes in docs/errors.md that src/errors.ts does not define');
  assert.is(new Set(documented).size, documented.length, 'a code is listed twice');
});

/** The TypeScript sources under src/, comments stripped: { file, text }. */
function sources(dir = path.join(__dirname, '..', 'src')) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sources(file));
    else if (entry.name.endsWith('.ts')) {
      const text = fs
        .readFileSync(file, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/(^|\s)\/\/.*$/gm, '$1');
      out.push({ file: path.relative(path.join(__dirname, '..'), file), text });
    }
  }
  return out;
}

test('errors: every documented code is produced somewhere in src/ (not only compared against or declared)', () => {
  const files = sources().filter((f) => f.file !== path.join('src', 'errors.ts'));
  const unproduced = [];
  for (const cells of rows) {
    const code = cells[0].replace(/`/g, '');
    // A quoted literal that is not the right side of a comparison or a case label.
    const literal = new RegExp(`(===|!==|case)?\\s*(['"\`])${code}\\2`, 'g');
    const produced = files.some(({ text }) => [...text.matchAll(literal)].some((m) => m[1] === undefined));
    if (!produced) unproduced.push(code);
  }
  assert.equal(unproduced, [], 'documented codes that nothing in src/ creates');
});

test('errors: each row says what the code means and what to do', () => {
  for (const cells of rows) {
    assert.is(cells.length, 3, `row ${cells[0]} must have 3 cells: code, meaning, what to do`);
    assert.ok(cells[1].length > 10, `${cells[0]}: no meaning`);
    assert.ok(cells[2].length > 10, `${cells[0]}: no advice`);
  }
});

test('errors: ForkdError carries its code and name', () => {
  const error = new ForkdError('FORKD_ERR_INVALID_ARG', 'x must be y');
  assert.instance(error, Error);
  assert.is(error.name, 'ForkdError');
  assert.is(error.code, 'FORKD_ERR_INVALID_ARG');
  assert.is(error.message, 'x must be y');
});

test.run();
