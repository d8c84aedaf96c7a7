// Shared helpers of the SDK checks: a collector of failures that names user, flag, expected
// and got; polling with a deadline; the management API; and the OFREP reason a result must
// carry (sdk-protocol.md §B5), derived from the served config.

import { isDeepStrictEqual } from 'node:util';

/** Collects failures per section, so that one run reports every mismatch, not only the first. */
export class Checks {
  constructor() {
    this.failures = [];
    this.passed = {};
  }

  /** Records that `got` must equal `expected` (deep, key order ignored). */
  equal(section, what, expected, got) {
    if (isDeepStrictEqual(expected, got)) {
      this.passed[section] = (this.passed[section] ?? 0) + 1;
      return true;
    }
    this.fail(section, `${what}: expected ${show(expected)}, got ${show(got)}`);
    return false;
  }

  /** Records that `condition` must hold. */
  ok(section, what, condition) {
    if (condition) {
      this.passed[section] = (this.passed[section] ?? 0) + 1;
      return true;
    }
    this.fail(section, what);
    return false;
  }

  fail(section, message) {
    this.failures.push({ section, message });
  }

  /** Prints the counts and the failures (at most 25 per section); returns the exit code. */
  summary() {
    for (const [section, n] of Object.entries(this.passed)) {
      console.log(`ok   ${section}: ${n} checks passed`);
    }
    const bySection = {};
    for (const f of this.failures) {
      (bySection[f.section] ??= []).push(f.message);
    }
    for (const [section, messages] of Object.entries(bySection)) {
      console.log(`FAIL ${section}: ${messages.length} failed checks`);
      for (const m of messages.slice(0, 25)) {
        console.log(`     ${m}`);
      }
      if (messages.length > 25) {
        console.log(`     ... and ${messages.length - 25} more`);
      }
    }
    const passed = Object.values(this.passed).reduce((a, b) => a + b, 0);
    console.log(`${passed} passed, ${this.failures.length} failed`);
    return this.failures.length === 0 ? 0 : 1;
  }
}

/** Compact JSON for messages; `undefined` spelled out. */
export function show(value) {
  return value === undefined ? 'undefined' : JSON.stringify(value);
}

/** How a user is named in messages. */
export function label(user) {
  return user.user_id ? `user ${user.user_id}` : `device ${user.device_id} (no user_id)`;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Calls `probe` every `intervalMs` until it returns something other than undefined or false;
 * throws naming `what` (and the last value seen through `describe`) after `timeoutMs`.
 */
export async function eventually(what, probe, { timeoutMs = 5000, intervalMs = 20, describe } = {}) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) {
      return value;
    }
    if (performance.now() > deadline) {
      const last = describe ? `; last seen: ${describe()}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last}`);
    }
    await sleep(intervalMs);
  }
}

/** Runs `task(item, index)` over `items` with at most `width` in flight. */
export async function pool(items, width, task) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return results;
}

/** The management API as the admin: returns { status, version (from the ETag), json }. */
export async function api(fx, method, path, body, ifMatch) {
  const headers = { Authorization: `Bearer ${fx.adminKey}` };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
  }
  if (ifMatch !== undefined) {
    headers['If-Match'] = `"${ifMatch}"`;
  }
  const response = await fetch(`${fx.base}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const etag = response.headers.get('etag');
  return {
    status: response.status,
    version: etag ? Number(etag.replaceAll('"', '')) : undefined,
    json: text ? JSON.parse(text) : undefined,
  };
}

/**
 * The variant as Amplitude's Node SDK returns it: a non-string value becomes its JSON text
 * (sdk-protocol.md §A8), absent fields stay absent.
 */
export function sdkVariant(result) {
  const variant = { ...result };
  if (variant.value !== undefined && typeof variant.value !== 'string') {
    variant.value = JSON.stringify(variant.value);
  }
  for (const k of Object.keys(variant)) {
    if (variant[k] === undefined) {
      delete variant[k];
    }
  }
  return variant;
}

/**
 * Compares an SDK's result map with the expected one (both in SDK form): the same flags, and
 * per flag the same variant key, value, payload and metadata.
 */
export function compareResults(checks, section, who, expected, got) {
  const want = Object.keys(expected).sort();
  const have = Object.keys(got ?? {}).sort();
  if (!checks.equal(section, `${who}: flags returned`, want, have)) {
    return;
  }
  for (const flag of want) {
    const e = sdkVariant(expected[flag]);
    const g = sdkVariant(got[flag]);
    if (!checks.equal(section, `${who}, flag ${flag}: variant`, e.key, g.key)) {
      continue;
    }
    checks.equal(section, `${who}, flag ${flag}, variant ${e.key}: value`, e.value, g.value);
    checks.equal(section, `${who}, flag ${flag}, variant ${e.key}: payload`, e.payload, g.payload);
    checks.equal(section, `${who}, flag ${flag}, variant ${e.key}: metadata`, e.metadata, g.metadata);
  }
}

/** Keeps the entries of `results` whose flag is in `keys`. */
export function only(results, keys) {
  return Object.fromEntries(Object.entries(results).filter(([k]) => keys.has(k)));
}

/**
 * The OFREP reason (or error code) a result must carry, by sdk-protocol.md §B5, read from the
 * served config: which segment decided (the result's segmentName), whether it buckets, on what,
 * and whether it has conditions.
 */
export function expectedReason(config, result, hasTargetingKey) {
  const segments = config.segments;
  if (segments.length === 1 && segments[0].metadata?.segmentName === 'default') {
    return 'DISABLED';
  }
  const name = result.metadata?.segmentName;
  const segment = segments.find((s) => s.metadata?.segmentName === name);
  if (!segment) {
    throw new Error(`flag ${config.key} has no segment named ${show(name)}`);
  }
  const unit = segment.bucket?.selector?.join('.');
  if (unit === 'context.user.user_id' && !hasTargetingKey) {
    return 'TARGETING_KEY_MISSING';
  }
  if (result.metadata?.default === true) {
    return 'DEFAULT';
  }
  if (segment.bucket) {
    return 'SPLIT';
  }
  if (segment.conditions) {
    return 'TARGETING_MATCH';
  }
  return segments.length === 1 ? 'STATIC' : 'DEFAULT';
}

/** The type of a flag's values, which decides the OpenFeature getter. */
export function valueType(config) {
  const values = Object.values(config.variants)
    .map((v) => v.value)
    .filter((v) => v !== undefined && v !== null);
  const types = new Set(values.map((v) => typeof v));
  if (types.size !== 1) {
    throw new Error(`flag ${config.key} mixes value types ${[...types]}`);
  }
  return [...types][0];
}

/** A code default of each type, distinct from every value the flags serve. */
export const CODE_DEFAULTS = {
  string: 'code-default',
  boolean: false,
  number: -1,
  object: { source: 'code-default' },
};
