'use strict';
// ForkdClient refuses bad options up front, naming the option.
const { test } = require('uvu');
const assert = require('uvu/assert');
const { ForkdClient } = require('..');

test('bad ForkdClient options are refused with FORKD_ERR_INVALID_ARG', () => {
  const cases = [
    [null, /options must be an object/],
    [{ timeoutMs: -1 }, /options\.timeoutMs/],
    [{ timeoutMs: 1.5 }, /options\.timeoutMs/],
    [{ socketPath: 5 }, /options\.socketPath/],
    [{ token: '' }, /options\.token/],
    [{ url: 'ftp://host' }, /url must be an http:\/\/ URL/],
    [{ url: 'not a url' }, /url must be an http:\/\/ URL/],
  ];
  for (const [options, message] of cases) {
    assert.throws(() => new ForkdClient(options), (e) => e.code === 'FORKD_ERR_INVALID_ARG' && message.test(e.message), JSON.stringify(options));
  }
  assert.ok(new ForkdClient({ url: 'http://127.0.0.1:1', timeoutMs: 10, token: 'x'.repeat(16) }));
});

test.run();
