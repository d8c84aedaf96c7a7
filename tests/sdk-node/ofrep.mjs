// OpenFeature against Vexil's OFREP endpoints: the server SDK with the OFREP provider for
// single-flag evaluation (typed values, variants, reasons, metadata, errors, code defaults), and
// the web SDK with the OFREP web provider for the bulk endpoint, its ETag and 304, and a change.

import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';
import { OpenFeature as WebOpenFeature, ProviderEvents as WebEvents } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';

import { CODE_DEFAULTS, eventually, expectedReason, label, pool, valueType } from './lib.mjs';
import { CHANGED_FLAG } from './amplitude.mjs';

const SINGLE = 'OFREP single flag (server provider)';
const BULK = 'OFREP bulk (web provider)';
const BULK_HTTP = 'OFREP bulk (HTTP)';

/** An OFREP context for a fixture user (sdk-protocol.md §B2), with properties nested or loose. */
export function toContext(user, style) {
  const context = {};
  if (user.user_id) {
    context.targetingKey = user.user_id;
  }
  for (const field of ['device_id', 'country', 'platform', 'version']) {
    if (user[field] !== undefined) {
      context[field] = user[field];
    }
  }
  if (style === 'nested') {
    context.user_properties = { ...user.user_properties };
  } else {
    Object.assign(context, user.user_properties);
  }
  return context;
}

/** What OFREP metadata carries for a result (§B5): primitives of the merged metadata, payload as JSON text. */
function expectedMetadata(result) {
  const metadata = Object.fromEntries(
    Object.entries(result.metadata ?? {}).filter(([, v]) => ['boolean', 'string', 'number'].includes(typeof v)),
  );
  if (result.payload !== undefined) {
    metadata.payload = JSON.stringify(result.payload);
  }
  return metadata;
}

function details(client, type, key, fallback, context) {
  switch (type) {
    case 'boolean':
      return client.getBooleanDetails(key, fallback, context);
    case 'number':
      return client.getNumberDetails(key, fallback, context);
    case 'object':
      return client.getObjectDetails(key, fallback, context);
    default:
      return client.getStringDetails(key, fallback, context);
  }
}

const deployedConfigs = (fx) => fx.configs.filter((c) => c.metadata?.deployed === true);
const bearer = (fx) => [['Authorization', `Bearer ${fx.serverKey}`]];

/**
 * Checks what an OpenFeature client resolved for `config` against the expected result.
 * `codeDefaultForm` says how the provider reports a result without value: 'full' (variant and
 * reason, value = code default) or 'value-only' (only the value is the code default).
 */
function checkResolution(checks, section, who, config, result, hasKey, got, codeDefaultForm) {
  const fallback = CODE_DEFAULTS[valueType(config)];
  const reason = expectedReason(config, result, hasKey);
  const what = `${who}, flag ${config.key}`;
  if (reason === 'TARGETING_KEY_MISSING') {
    checks.equal(section, `${what}: error code`, reason, got.errorCode);
    checks.equal(section, `${what}: value`, fallback, got.value);
    return reason;
  }
  if (result.value === undefined) {
    checks.equal(section, `${what} (variant ${result.key}, no value): code default`, fallback, got.value);
    if (codeDefaultForm === 'full') {
      checks.equal(section, `${what}: variant`, result.key, got.variant);
      checks.equal(section, `${what}: reason`, reason, got.reason);
      checks.equal(section, `${what}: error code`, undefined, got.errorCode);
    }
    return reason;
  }
  checks.equal(section, `${what}: variant`, result.key, got.variant);
  checks.equal(section, `${what}, variant ${result.key}: value`, result.value, got.value);
  checks.equal(section, `${what}, variant ${result.key}: reason`, reason, got.reason);
  checks.equal(section, `${what}: error code`, undefined, got.errorCode);
  checks.equal(section, `${what}: metadata`, expectedMetadata(result), { ...got.flagMetadata });
  return reason;
}

/**
 * Every sixth user and every user without a user_id, every deployed flag, through the server
 * SDK's typed getters; then the errors.
 */
export async function singleFlag(fx, checks, report) {
  await OpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl: fx.sdkBase, headers: bearer(fx) }));
  const client = OpenFeature.getClient();
  const reasons = {};
  const codeDefaults = {};
  const picked = fx.users.map((u, i) => [u, i]).filter(([u, i]) => i % 6 === 0 || !u.user_id);
  await pool(picked, 8, async ([user, i], n) => {
    const context = toContext(user, n % 2 === 0 ? 'nested' : 'loose');
    for (const config of deployedConfigs(fx)) {
      const fallback = CODE_DEFAULTS[valueType(config)];
      const got = await details(client, valueType(config), config.key, fallback, context);
      const result = fx.expected[i][config.key];
      const reason = checkResolution(checks, SINGLE, label(user), config, result, Boolean(user.user_id), got, 'value-only');
      reasons[reason] = (reasons[reason] ?? 0) + 1;
      if (result.value === undefined && reason !== 'TARGETING_KEY_MISSING') {
        // How this provider version reports the code default, for the report.
        const as = got.errorCode ? `error ${got.errorCode}: ${got.errorMessage}` : `reason ${got.reason}, variant ${got.variant}`;
        codeDefaults[as] = (codeDefaults[as] ?? 0) + 1;
      }
    }
  });
  for (const r of ['SPLIT', 'TARGETING_MATCH', 'STATIC', 'DEFAULT', 'DISABLED', 'TARGETING_KEY_MISSING']) {
    checks.ok(SINGLE, `no evaluation was expected to give reason ${r}: the flags no longer cover it`, reasons[r] > 0);
  }
  await singleFlagErrors(fx, client, checks);
  report.ofrepSingle = { users: picked.length, expectedReasons: reasons, codeDefaultsReportedAs: codeDefaults };
  await OpenFeature.close();
}

async function singleFlagErrors(fx, client, checks) {
  const i = fx.users.findIndex((u, j) => u.user_id && fx.expected[j]['checkout-redesign'].value !== undefined);
  const context = toContext(fx.users[i], 'nested');
  const missing = await client.getStringDetails('no-such-flag', 'fallback', context);
  checks.equal(SINGLE, 'unknown flag: error code', 'FLAG_NOT_FOUND', missing.errorCode);
  checks.equal(SINGLE, 'unknown flag: value', 'fallback', missing.value);
  const hidden = fx.configs.filter((c) => c.metadata?.deployed === false);
  for (const config of hidden) {
    const got = await client.getStringDetails(config.key, 'fallback', context);
    checks.equal(SINGLE, `flag ${config.key}, served with deployed: false: error code`, 'FLAG_NOT_FOUND', got.errorCode);
    checks.equal(SINGLE, `flag ${config.key}, served with deployed: false: value`, 'fallback', got.value);
  }
  // Groups and imported configs that say deployed: false are among them, served to the
  // deployment (attached, for the imported one) yet unknown to OFREP.
  checks.equal(
    SINGLE,
    'the configs served with deployed: false include the holdout, the mutual-exclusion group and the imported flag',
    fx.notFound,
    fx.notFound.filter((key) => hidden.some((c) => c.key === key)),
  );
  const mismatch = await client.getNumberDetails('checkout-redesign', -1, context);
  checks.equal(SINGLE, 'string flag read as a number: error code', 'TYPE_MISMATCH', mismatch.errorCode);
  checks.equal(SINGLE, 'string flag read as a number: value', -1, mismatch.value);
  const invalid = await fetch(`${fx.sdkBase}/ofrep/v1/evaluate/flags/checkout-redesign`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${fx.serverKey}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ context: 'not an object' }),
  });
  checks.equal(SINGLE, 'context that is not an object: status and error code', [400, 'INVALID_CONTEXT'], [invalid.status, (await invalid.json()).errorCode]);
}

/** POST /ofrep/v1/evaluate/flags with plain fetch: { status, etag, body }. */
async function bulk(fx, context, ifNoneMatch) {
  const headers = { Authorization: `Bearer ${fx.serverKey}`, 'Content-Type': 'application/json' };
  if (ifNoneMatch) {
    headers['If-None-Match'] = ifNoneMatch;
  }
  const response = await fetch(`${fx.sdkBase}/ofrep/v1/evaluate/flags`, { method: 'POST', headers, body: JSON.stringify({ context }) });
  const text = await response.text();
  return { status: response.status, etag: response.headers.get('etag'), body: text ? JSON.parse(text) : undefined };
}

/**
 * Starts the web provider for one premium user, polling every 100 ms, with every exchange
 * recorded; checks the bulk items and that an unchanged poll gets 304.
 */
export async function startWeb(fx, checks, report) {
  const index = fx.users.findIndex((u) => u.user_id && u.user_properties.premium === true);
  const user = fx.users[index];
  const context = toContext(user, 'nested');
  const exchanges = [];
  const fetchImplementation = async (request) => {
    const ifNoneMatch = request.headers.get('If-None-Match');
    const response = await fetch(request);
    const entry = { at: performance.now(), status: response.status, ifNoneMatch, etag: response.headers.get('ETag') };
    if (response.status === 200) {
      entry.body = await response.clone().json();
    }
    exchanges.push(entry);
    return response;
  };
  const changes = [];
  WebOpenFeature.addHandler(WebEvents.ConfigurationChanged, (event) => changes.push(event?.flagsChanged ?? []));
  const provider = new OFREPWebProvider({
    baseUrl: fx.sdkBase,
    headers: bearer(fx),
    fetchImplementation,
    pollInterval: 100,
    changeDetection: 'polling',
    cacheMode: 'disabled',
  });
  await WebOpenFeature.setContext(context);
  await WebOpenFeature.setProviderAndWait(provider);
  const client = WebOpenFeature.getClient();
  const first = exchanges[0];
  checks.equal(BULK, 'first bulk request: status, If-None-Match', [200, null], [first?.status, first?.ifNoneMatch]);
  checks.ok(BULK, `first bulk response has a weak ETag: ${first?.etag}`, /^W\/"[0-9a-f]{32}"$/.test(first?.etag ?? ''));
  const keys = deployedConfigs(fx).map((c) => c.key).sort();
  checks.equal(BULK, 'bulk flags: every deployed flag, ascending', keys, (first?.body?.flags ?? []).map((f) => f.key));
  for (const config of deployedConfigs(fx)) {
    const type = valueType(config);
    const got = details(client, type, config.key, CODE_DEFAULTS[type]);
    checkResolution(checks, BULK, label(user), config, fx.expected[index][config.key], true, got, 'full');
  }
  try {
    await eventually('an unchanged poll to get 304', () => exchanges.some((e) => e.ifNoneMatch === first.etag && e.status === 304), {
      timeoutMs: 3000,
      describe: () => JSON.stringify(exchanges.slice(-3).map(({ body, ...e }) => e)),
    });
    checks.ok(BULK, 'an unchanged poll with If-None-Match got 304', true);
  } catch (e) {
    checks.fail(BULK, e.message);
  }
  await bulkOverHttp(fx, context, first.etag, checks);
  report.ofrepBulk = { via: '@openfeature/ofrep-web-provider with @openfeature/web-sdk', user: user.user_id };
  return { user, index, client, exchanges, changes, etag: first.etag };
}

/** What the provider cannot show: other contexts against the same tag, and per-flag errors. */
async function bulkOverHttp(fx, context, etag, checks) {
  const reordered = Object.fromEntries(Object.entries(context).reverse());
  const same = await bulk(fx, reordered, etag);
  checks.equal(BULK_HTTP, 'the same context with its members reordered: status and ETag', [304, etag], [same.status, same.etag]);
  const other = fx.users.findIndex((u) => u.user_id && u.user_id !== context.targetingKey);
  const different = await bulk(fx, toContext(fx.users[other], 'nested'), etag);
  checks.ok(BULK_HTTP, `another user's context with the first user's ETag: got ${different.status} ${different.etag}`, different.status === 200 && different.etag !== etag);
  const i = fx.users.findIndex((u) => !u.user_id);
  const anonymous = await bulk(fx, toContext(fx.users[i], 'loose'));
  checks.equal(BULK_HTTP, 'a context without targetingKey: status', 200, anonymous.status);
  const items = Object.fromEntries((anonymous.body?.flags ?? []).map((f) => [f.key, f]));
  for (const config of deployedConfigs(fx)) {
    const result = fx.expected[i][config.key];
    const reason = expectedReason(config, result, false);
    const item = items[config.key] ?? {};
    const who = `${label(fx.users[i])}, flag ${config.key}`;
    if (reason === 'TARGETING_KEY_MISSING') {
      checks.equal(BULK_HTTP, `${who}: error code`, reason, item.errorCode);
    } else {
      checks.equal(BULK_HTTP, `${who}: variant, reason, value`, [result.key, reason, result.value], [item.variant, item.reason, item.value]);
    }
  }
}

/**
 * After the change: a poll with the old tag gets 200 and a new tag, the provider announces the
 * changed flag, resolves it as the server now evaluates it, and unchanged polls get 304 again.
 */
export async function afterChange(fx, web, remote, change, checks, report) {
  const { version, startedAt } = change;
  let fresh;
  try {
    fresh = await eventually(
      'a poll after the change to get 200 with a new ETag',
      () => web.exchanges.find((e) => e.ifNoneMatch === web.etag && e.status === 200),
      { timeoutMs: 3000 },
    );
    checks.ok(BULK, `after the change: a poll with the old ETag got 200 and a new ETag (${fresh.etag})`, fresh.etag && fresh.etag !== web.etag);
    await eventually('ConfigurationChanged naming the changed flag', () => web.changes.some((c) => c.includes(CHANGED_FLAG)), { timeoutMs: 3000 });
    await eventually('an unchanged poll with the new ETag to get 304', () => web.exchanges.some((e) => e.ifNoneMatch === fresh.etag && e.status === 304), {
      timeoutMs: 3000,
    });
    checks.ok(BULK, 'after the change: ConfigurationChanged, then 304 with the new ETag', true);
  } catch (e) {
    checks.fail(BULK, e.message);
  }
  const now = await remote.fetchV2(structuredClone(web.user), { tracksAssignment: false });
  const got = web.client.getStringDetails(CHANGED_FLAG, 'code-default');
  checks.equal(BULK, `after the change: ${label(web.user)}, flag ${CHANGED_FLAG}: variant and version`, [now[CHANGED_FLAG]?.key, version], [got.variant, got.flagMetadata?.flagVersion]);
  report.ofrepBulk.newEtagMsFromPatchStart = fresh ? Math.round(fresh.at - startedAt) : null;
  await WebOpenFeature.close();
}
