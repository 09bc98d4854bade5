// Runs in the supervisor. The keys a request's JSON may not hold, whichever
// front end it came through (the HTTP body parser, the line protocol's
// params): "__proto__", and "constructor" holding an object with its own
// "prototype". JSON.parse makes them plain own properties, harmless where
// they are; but a handler that merges its arguments into another object
// (Object.assign, a deep merge, lodash's merge) would set that object's
// prototype, or every object's.

/** True for a key/value pair refused in request JSON. */
export function isPoisonKey(key: string, value: unknown): boolean {
  return key === '__proto__' || (key === 'constructor' && typeof value === 'object' && value !== null && Object.hasOwn(value, 'prototype'));
}

/** The first refused key anywhere in a parsed JSON value, or null. Iterative: the value may be deep. */
export function findPoisonKey(value: unknown): string | null {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object') continue;
    for (const [key, child] of Object.entries(v)) {
      if (isPoisonKey(key, child)) return key;
      stack.push(child);
    }
  }
  return null;
}
