// Runs in the bench driver. Builds a V8 startup snapshot of the bench app:
// `node --snapshot-blob x.blob --build-snapshot entry.js` runs the entry,
// which loads the app, and serializes the resulting heap; then
// `node --snapshot-blob x.blob` starts a fresh process whose heap already
// holds the app, and runs the deserialized main function. A snapshot entry
// can only require built-in modules, so bench/app.js is inlined into it.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

function entrySource(records) {
  const appSource = fs.readFileSync(path.join(__dirname, '..', 'app.js'), 'utf8');
  return `'use strict';
const appModule = { exports: {} };
(function (module, exports, require) {
${appSource}
})(appModule, appModule.exports, require);
const app = appModule.exports.buildApp({ records: ${Number(records)} });
require('node:v8').startupSnapshot.setDeserializeMainFunction(() => {
  // The first line of the started process, with the app already in its heap.
  const t = String(process.hrtime.bigint());
  process.stdout.write(JSON.stringify({ t, records: app.records.length }) + '\\n');
});
`;
}

/** Builds the blob in `dir`; returns { blob, buildMs, bytes }. */
function buildSnapshot(records, dir) {
  fs.mkdirSync(dir, { recursive: true });
  const entry = path.join(dir, 'snapshot-entry.js');
  const blob = path.join(dir, 'app.blob');
  fs.writeFileSync(entry, entrySource(records));
  const t0 = Date.now();
  execFileSync(process.execPath, ['--snapshot-blob', blob, '--build-snapshot', entry], { stdio: ['ignore', 'ignore', 'pipe'] });
  return { blob, buildMs: Date.now() - t0, bytes: fs.statSync(blob).size };
}

module.exports = { buildSnapshot };
