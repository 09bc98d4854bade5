'use strict';
// An example forkd application: a product catalogue and a price index built
// at load time (about 70 MB of live heap, some 300 ms of work), which
// every run then uses without paying for it again.
//
//   npm start                      # forkd serve --app examples/app.js
//   forkd run quote --args '{"sku":"SKU-000042","qty":3}' --wait
const crypto = require('node:crypto');
const zlib = require('node:zlib');

const started = process.hrtime.bigint();

// --- one-time initialisation: the part forkd saves on every run -------------
const categories = ['tools', 'garden', 'kitchen', 'toys', 'books', 'audio', 'sports', 'office'];
const catalogue = new Map();
for (let i = 0; i < 150_000; i++) {
  const sku = `SKU-${String(i).padStart(6, '0')}`;
  catalogue.set(sku, {
    sku,
    title: `Product ${i} ${categories[i % categories.length]}`,
    category: categories[i % categories.length],
    priceCents: 100 + ((i * 7919) % 50_000),
    tags: [`t${i % 97}`, `t${i % 89}`, `t${i % 83}`],
  });
}
const byCategory = new Map(categories.map((c) => [c, []]));
for (const item of catalogue.values()) byCategory.get(item.category).push(item);
for (const list of byCategory.values()) list.sort((a, b) => a.priceCents - b.priceCents);
const loadMs = Number(process.hrtime.bigint() - started) / 1e6;

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });

// Runs in each child before its handler: the place to reconnect a database
// or open per-process resources (sockets never survive a fork safely).
exports.afterFork = async (ctx) => {
  process.env.FORKD_RUN_ID = ctx.runId;
};

exports.handlers = {
  /** Quick: look up one product and price a quantity. */
  async quote({ sku, qty = 1 } = {}) {
    const item = catalogue.get(sku);
    if (!item) throw new Error(`no such product: ${sku}`);
    return { sku, title: item.title, totalCents: item.priceCents * qty, loadMsSaved: Math.round(loadMs) };
  },

  /** Slow: a batch that takes a while and stops cleanly when terminated. */
  async reindex({ seconds = 5 } = {}, ctx) {
    const until = Date.now() + seconds * 1000;
    let batches = 0;
    while (Date.now() < until) {
      if (ctx.signal.aborted) return { batches, stopped: true };
      await sleep(100, ctx.signal).catch(() => {});
      batches++;
      console.log(`batch ${batches} done`);
    }
    return { batches, stopped: false };
  },

  /** Failing: a job that throws (exit code 1, the error in the record). */
  async importFeed({ url } = {}) {
    throw new Error(`feed ${url ?? '(none)'} is unreachable`);
  },

  /** CPU-heavy: hash and compress the cheapest items of a category. */
  async digest({ category = 'tools', count = 20_000 } = {}) {
    const items = (byCategory.get(category) ?? []).slice(0, count);
    const json = JSON.stringify(items);
    const gz = zlib.gzipSync(json);
    return { category, items: items.length, sha256: crypto.createHash('sha256').update(json).digest('hex'), gzipBytes: gz.length };
  },

  /** Printing: writes a report to stdout, and a warning to stderr. */
  async report({ category = 'books', top = 10 } = {}) {
    const items = (byCategory.get(category) ?? []).slice(0, top);
    for (const item of items) console.log(`${item.sku}\t${(item.priceCents / 100).toFixed(2)}\t${item.title}`);
    console.error(`report: ${items.length} of ${byCategory.get(category)?.length ?? 0} items`);
    return items.length;
  },
};
