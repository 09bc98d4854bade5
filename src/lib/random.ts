// Runs in any process that loads forkd. A forked child inherits every random
// generator that lives in memory: V8's Math.random state and its 64-number
// cache, and the caches behind crypto.randomUUID (128 UUIDs) and
// crypto.randomInt (6 KiB). Without this, every child of one parent draws the
// same "random" numbers. (crypto.randomBytes and getRandomValues are safe:
// OpenSSL 3 notices the fork and reseeds.)
//
// The wrappers are installed when forkd is loaded, so references an
// application takes afterwards (`const { randomUUID } = require('crypto')`)
// go through them too. In the parent they call the originals; in a forked
// child they draw fresh bytes from the kernel via OpenSSL.
import crypto = require('node:crypto');

let forked = false;

// Math.random in a child: 53 random bits from a pool of OpenSSL bytes,
// refilled 1024 numbers at a time (about 10 ns a call once refilled).
const pool = new Uint32Array(2048);
let poolIndex = pool.length;
function childRandom(): number {
  if (poolIndex >= pool.length) {
    crypto.getRandomValues(pool);
    poolIndex = 0;
  }
  const hi = pool[poolIndex++] >>> 5; // 27 bits
  const lo = pool[poolIndex++] >>> 6; // 26 bits
  return (hi * 67108864 + lo) / 9007199254740992;
}

const RAND_MAX = 0xffff_ffff_ffff;

function rangeError(message: string): RangeError {
  return Object.assign(new RangeError(message), { code: 'ERR_OUT_OF_RANGE' });
}

// crypto.randomInt without the shared cache: same contract and errors as Node's.
function childRandomInt(min: unknown, max?: unknown, callback?: unknown): number | undefined {
  if (typeof max === 'undefined' || typeof max === 'function') {
    callback = max;
    max = min;
    min = 0;
  }
  if (callback !== undefined && typeof callback !== 'function') {
    throw Object.assign(new TypeError('The "callback" argument must be of type function'), { code: 'ERR_INVALID_ARG_TYPE' });
  }
  if (!Number.isSafeInteger(min)) throw Object.assign(new TypeError(`The "min" argument must be a safe integer. Received ${String(min)}`), { code: 'ERR_INVALID_ARG_TYPE' });
  if (!Number.isSafeInteger(max)) throw Object.assign(new TypeError(`The "max" argument must be a safe integer. Received ${String(max)}`), { code: 'ERR_INVALID_ARG_TYPE' });
  const lo = min as number;
  const hi = max as number;
  if (hi <= lo) throw rangeError(`The value of "max" is out of range. It must be greater than the value of "min" (${lo}). Received ${hi}`);
  const range = hi - lo;
  if (!(range <= RAND_MAX)) throw rangeError(`The value of "max - min" is out of range. It must be <= ${RAND_MAX}. Received ${range}`);
  // Rejection sampling keeps the result uniform, as Node does.
  const limit = RAND_MAX - (RAND_MAX % range);
  let n: number;
  for (;;) {
    const x = crypto.randomBytes(6).readUIntBE(0, 6);
    if (x < limit) {
      n = lo + (x % range);
      break;
    }
  }
  if (typeof callback === 'function') {
    process.nextTick(callback as (err: null, n: number) => void, null, n);
    return undefined;
  }
  return n;
}

let installed = false;
export function installRandomWrappers(): void {
  if (installed) return;
  installed = true;
  const mathRandom = Math.random;
  Math.random = function random() {
    return forked ? childRandom() : mathRandom();
  };
  const randomUUID = crypto.randomUUID;
  const wrappedUUID = function randomUUID_(options?: crypto.RandomUUIDOptions) {
    return forked ? randomUUID({ ...options, disableEntropyCache: true }) : randomUUID(options);
  };
  Object.defineProperty(wrappedUUID, 'name', { value: 'randomUUID' });
  (crypto as { randomUUID: typeof randomUUID }).randomUUID = wrappedUUID;
  const randomInt = crypto.randomInt as unknown as (...args: unknown[]) => number | undefined;
  (crypto as unknown as Record<string, unknown>).randomInt = Object.defineProperty(
    function (...args: unknown[]) {
      return forked ? childRandomInt(args[0], args[1], args[2]) : randomInt(...args);
    },
    'name',
    { value: 'randomInt' },
  );
  // globalThis.crypto (webcrypto) has its own randomUUID that reads the same cache.
  const proto = Object.getPrototypeOf(crypto.webcrypto) as { randomUUID: () => string };
  const webUUID = proto.randomUUID;
  proto.randomUUID = function (this: unknown) {
    return forked ? randomUUID({ disableEntropyCache: true }) : webUUID.call(this);
  };
}

/** In a forked child: switch every wrapper to fresh randomness. */
export function reseedChild(): void {
  forked = true;
  poolIndex = pool.length;
}
