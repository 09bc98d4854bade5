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

// crypto.randomInt's values in a child: Node's algorithm (6 bytes a draw,
// rejection sampling for a uniform result) over a cache of the child's own.
const RAND_MAX = 0xffff_ffff_ffff;
const intCache = Buffer.alloc(6 * 1024);
let intOffset = intCache.length;
function freshInt(min: number, max: number): number {
  const range = max - min;
  const limit = RAND_MAX - (RAND_MAX % range);
  for (;;) {
    if (intOffset === intCache.length) {
      crypto.randomFillSync(intCache);
      intOffset = 0;
    }
    const x = intCache.readUIntBE(intOffset, 6);
    intOffset += 6;
    if (x < limit) return min + (x % range);
  }
}

const UNBUFFERED = Object.freeze({ disableEntropyCache: true });

// In a child, each wrapper first calls Node's own function with the caller's
// arguments (and `this`): Node validates them, so every error is Node's own,
// class, code and message, and a callback is called when and how Node calls
// it. Only the value, drawn from the parent's cache, is replaced by a fresh
// one. (Reseeding Node's caches instead is not possible from JS: they are
// module-private, and burning through them took 0.5 ms for randomUUID's and
// 3 ms for randomInt's in a child.)
let installed = false;
export function installRandomWrappers(): void {
  if (installed) return;
  installed = true;
  const mathRandom = Math.random;
  Math.random = function random() {
    return forked ? childRandom() : mathRandom();
  };
  const c = crypto as unknown as Record<string, unknown>;
  const randomUUID = crypto.randomUUID;
  c.randomUUID = named('randomUUID', randomUUID.length, function (this: unknown, ...args: unknown[]) {
    const uuid = Reflect.apply(randomUUID, this, args) as string;
    return forked ? randomUUID(UNBUFFERED) : uuid;
  });
  const randomInt = crypto.randomInt as unknown as (...args: unknown[]) => number | undefined;
  c.randomInt = named('randomInt', randomInt.length, function (this: unknown, ...args: unknown[]) {
    if (!forked) return Reflect.apply(randomInt, this, args);
    const minNotSpecified = args[1] === undefined || typeof args[1] === 'function';
    const at = minNotSpecified ? 1 : 2;
    const callback = args[at];
    let fresh = 0;
    if (typeof callback === 'function') {
      args = [...args];
      // Node calls back (undefined, n), or (err) if its refill failed.
      args[at] = (...result: unknown[]) => (result.length < 2 ? callback(...result) : callback(result[0], fresh));
    }
    Reflect.apply(randomInt, this, args);
    fresh = minNotSpecified ? freshInt(0, args[0] as number) : freshInt(args[0] as number, args[1] as number);
    return typeof callback === 'function' ? undefined : fresh;
  });
  // globalThis.crypto (webcrypto) has its own randomUUID that reads the same cache.
  const proto = Object.getPrototypeOf(crypto.webcrypto) as { randomUUID: (this: unknown) => string };
  const webUUID = proto.randomUUID;
  proto.randomUUID = named('randomUUID', webUUID.length, function (this: unknown) {
    const uuid = webUUID.call(this);
    return forked ? randomUUID(UNBUFFERED) : uuid;
  });
}

// The wrapper looks like Node's function to code that inspects it.
function named<F extends (...args: never[]) => unknown>(name: string, length: number, fn: F): F {
  Object.defineProperty(fn, 'name', { value: name });
  Object.defineProperty(fn, 'length', { value: length });
  return fn;
}

/** In a forked child: switch every wrapper to fresh randomness. */
export function reseedChild(): void {
  forked = true;
  poolIndex = pool.length;
  intOffset = intCache.length;
}
