// The benchmark application, loaded by every scenario that needs "the app":
// the forkd zygote, the child_process.fork child, the Worker and the V8
// startup snapshot all build the same preload with buildApp(mb).
//
// The preload is live JS heap, the kind a real service holds after start-up:
// many small objects with string, number, array and nested-object fields,
// indexes over them (a Map and a plain-object dictionary), and some longer
// unique strings (templates, messages). Not one big Buffer: a Buffer lives
// outside the V8 heap and would say nothing about what fork() does with it.
//
// It uses built-in modules only, so that bench/lib/snapshot.js can inline it
// into a --build-snapshot entry (which cannot require user modules).
'use strict';
const v8 = require('node:v8');

const CITIES = ['Lisbon', 'Oslo', 'Kyoto', 'Quito', 'Dakar', 'Perth', 'Riga', 'Lima', 'Turin', 'Hanoi', 'Accra', 'Bergen'];
const TAGS = ['new', 'vip', 'trial', 'churned', 'beta', 'staff', 'partner', 'eu', 'us', 'apac', 'mobile', 'web'];
const WORDS = ['order', 'invoice', 'refund', 'shipment', 'account', 'payment', 'notice', 'update', 'reminder', 'welcome'];

function heapUsed() {
  return v8.getHeapStatistics().used_heap_size;
}

function makeRecord(i) {
  // Each record owns unique strings (name, email, note) and small arrays, so
  // the heap holds ~60-80 distinct objects per KB, like parsed JSON would.
  const name = `user-${i.toString(36)}-${(i * 2654435761 >>> 0).toString(16)}`;
  return {
    id: i,
    name,
    email: `${name}@example.test`,
    city: CITIES[i % CITIES.length],
    score: (i % 1000) / 7,
    active: i % 3 !== 0,
    tags: [TAGS[i % TAGS.length], TAGS[(i >>> 3) % TAGS.length]],
    history: [i & 255, (i >>> 8) & 255, (i >>> 16) & 255, i % 97, i % 89, i % 83],
    address: { street: `${(i % 400) + 1} ${WORDS[i % WORDS.length]} street`, zip: 10000 + (i % 89999) },
    note: `${WORDS[i % WORDS.length]} #${i} for ${name}: ${'x'.repeat(24 + (i % 40))}`,
  };
}

function makeTemplate(i) {
  // Longer unique strings: message templates of 0.5-2 KB.
  const parts = [];
  for (let k = 0; k < 16 + (i % 48); k++) parts.push(WORDS[(i + k) % WORDS.length]);
  return `${i}:${parts.join(' ')} {{name}} {{amount}} ${i.toString(36).repeat(4)}`;
}

/**
 * Builds the preload. `{ mb }`: about `mb` MiB of live JS heap, measured after
 * a full GC when gc() is exposed (the zygote sizes it this way). `{ records }`:
 * exactly that many records, the same data without needing a GC (the
 * baselines rebuild what the zygote measured). Keep a reference to the result.
 */
function buildApp(size) {
  const app = { records: [], byId: new Map(), byEmail: Object.create(null), templates: [], heapMb: 0 };
  const base = heapUsed();
  let i = 0;
  const add = (count) => {
    for (const end = i + count; i < end; i++) {
      const r = makeRecord(i);
      app.records.push(r);
      app.byId.set(r.id, r);
      // One in 8 records is in the e-mail dictionary (a second index).
      if ((i & 7) === 0) app.byEmail[r.email] = r;
      if (i % 64 === 0) app.templates.push(makeTemplate(i));
    }
  };
  if (size.records !== undefined) {
    add(size.records);
  } else if (size.mb > 0) {
    const target = Math.max(0, size.mb) * 1048576;
    const grow = () => {
      while (heapUsed() - base < target) add(4000);
    };
    grow();
    // Building leaves garbage behind (resized arrays, the Map's old tables):
    // after a full GC the live heap is less than what was counted. Top it up.
    if (typeof globalThis.gc === 'function') {
      for (let round = 0; round < 4; round++) {
        globalThis.gc();
        if (heapUsed() - base >= target * 0.97) break;
        grow();
      }
    }
  }
  app.heapMb = Math.round((heapUsed() - base) / 1048576);
  return app;
}

/** The trivial job: a few lookups in the preload and a small JSON answer. */
function trivialJob(app, seed = 1) {
  const n = app.records.length;
  if (n === 0) return { n: 0 };
  let score = 0;
  const names = [];
  for (let k = 0; k < 8; k++) {
    const r = app.byId.get((seed * 7919 + k * 104729) % n);
    score += r.score;
    if (k < 2) names.push(r.name);
  }
  return { n, score: Math.round(score), names };
}

module.exports = { buildApp, trivialJob, heapUsed };
