// An experiment analysed end to end from what Amplitude's own Node clients send, driven by
// crates/vexil/tests/sdk_node.rs (`node_sdks_feed_the_analysis`). VEXIL_FIXTURE names a JSON
// file with the server's base URL and keys, the phase, the experiment flag and its metrics;
// VEXIL_REPORT is where the figures go. Exits 0 when every check passed, 1 otherwise.
//
// Phase "seed": `@amplitude/analytics-node` sends one event of each type the metrics count, since
// a metric can only be defined on an event type the server has received.
//
// Phase "run" (the experiment is active): `@amplitude/experiment-node-server` evaluates the flag
// locally for every user and tracks the exposures to /2/httpapi; once the server counts them all,
// the analytics SDK sends the users' product events to /batch, with a treatment effect built in,
// and events that must not count (a purchase inside the window but before the user's exposure,
// purchases of visitors never exposed). Then GET /api/v1/flags/{key}/results must agree with
// the statistics recomputed here from the events this script sent: units, conversions and means
// per variant, the relative and absolute effects, Welch's p-values (the t distribution of
// `@stdlib/stats-base-dists-t-cdf`, not Vexil's), the intervals, the Bonferroni correction, the
// verdicts, and the summary's direction.

import { readFileSync, writeFileSync } from 'node:fs';

import analytics from '@amplitude/analytics-node';
import experiment from '@amplitude/experiment-node-server';
import tcdf from '@stdlib/stats-base-dists-t-cdf';

import { api, Checks, eventually, show } from './lib.mjs';

const fx = JSON.parse(readFileSync(process.env.VEXIL_FIXTURE, 'utf8'));
const checks = new Checks();
const report = { phase: fx.phase };
const step = (name) => console.log(`-- ${name} (${Math.round(performance.now())} ms)`);

/** The event types the metrics count (the Rust test defines the metrics on them). */
const PURCHASE = 'Purchase';
const ERROR = 'App Error';
/** Exposed users, and visitors who buy without ever being exposed. */
const USERS = 400;
const VISITORS = 40;
/** Relative tolerance of every recomputed figure. */
const TOLERANCE = 1e-9;

/**
 * The analytics SDK as an application uses it, pointed at Vexil's /batch with the project API
 * key. Every tracked event's result (the event as sent, with its time and insert id, and the
 * server's code) is kept.
 */
async function analyticsClient() {
  const client = analytics.createInstance();
  await client.init(fx.projectApiKey, {
    serverUrl: `${fx.base}/batch`,
    useBatch: true,
    // The script flushes when it is done; no timer sends a partial batch meanwhile.
    flushQueueSize: 1000,
    flushIntervalMillis: 60000,
    flushMaxRetries: 1,
  }).promise;
  const pending = [];
  return {
    track(eventType, userId, properties, time) {
      const options = time === undefined ? { user_id: userId } : { user_id: userId, time };
      pending.push(client.track(eventType, properties, options).promise);
    },
    /** Flushes; resolves to every tracked event's result once the server answered. */
    async flush() {
      await client.flush().promise;
      const results = await Promise.all(pending);
      for (const r of results) {
        checks.equal('analytics SDK', `${r.event.event_type} of ${r.event.user_id}: code (${r.message})`, 200, r.code);
      }
      return results.map((r) => r.event);
    },
  };
}

/** mulberry32: a fixed sequence, so every run sends the same events. */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function seed() {
  const client = await analyticsClient();
  client.track(PURCHASE, 'seed-user', { amount: 1.5 });
  client.track(ERROR, 'seed-user', { code: 'E_SEED' });
  report.seeded = (await client.flush()).length;
}

/**
 * Evaluates the experiment for every user with exposure tracking; returns, per user, the variant
 * the SDK returned and the time just before the evaluation (the exposure cannot be earlier).
 */
async function expose(start) {
  const client = experiment.Experiment.initializeLocal(fx.serverKey, {
    serverUrl: fx.base,
    flagConfigPollingIntervalMillis: 60000,
    exposureConfig: {
      apiKey: fx.serverKey,
      serverUrl: `${fx.base}/2/httpapi`,
      flushIntervalMillis: 100,
      flushQueueSize: 100,
    },
  });
  await client.start();
  const users = [];
  for (let i = 0; i < USERS; i++) {
    const userId = `buyer-${i}`;
    const before = Date.now();
    const result = client.evaluateV2({ user_id: userId }, [fx.flag], { tracksExposure: true })[fx.flag];
    checks.ok('exposures', `${userId}: a real variant, got ${show(result)}`, ['control', 'treatment'].includes(result?.key));
    users.push({ userId, variant: result?.key, before });
  }
  checks.ok('exposures', `every exposure is after the experiment's start ${start}`, users.every((u) => u.before > start));
  const want = ['control', 'treatment'].map((v) => users.filter((u) => u.variant === v).length);
  // The SDK sends the exposures in the background: wait until the results count every unit.
  let seen;
  try {
    await eventually(
      'the results to count every exposed unit',
      async () => {
        seen = await api(fx, 'GET', `/api/v1/flags/${fx.flag}/results`);
        return show(seen.json?.variants?.map((v) => v.units)) === show(want);
      },
      { timeoutMs: 10000, intervalMs: 100, describe: () => show(seen?.json?.variants ?? seen?.json) },
    );
  } catch (e) {
    checks.fail('exposures', e.message);
  }
  client.stop();
  return { users, exposedBy: Date.now() };
}

/**
 * The product events, with a treatment effect: treatment users buy more often (45% against 20%),
 * some twice, and raise fewer errors. Every tenth user also bought at the experiment's start,
 * before being exposed, and the visitors buy without being exposed: none of that may count.
 */
async function sendEvents(users, start) {
  const next = random(20261207);
  const client = await analyticsClient();
  for (const [i, user] of users.entries()) {
    const treated = user.variant === 'treatment';
    if (next() < (treated ? 0.45 : 0.2)) {
      const purchases = next() < 0.3 ? 2 : 1;
      for (let k = 0; k < purchases; k++) {
        client.track(PURCHASE, user.userId, { amount: Math.round(1000 + next() * 9000) / 100 });
      }
    }
    const errors = Math.floor(next() * (treated ? 3 : 4));
    for (let k = 0; k < errors; k++) {
      client.track(ERROR, user.userId, { code: `E${k}` });
    }
    if (i % 10 === 0) {
      client.track(PURCHASE, user.userId, { amount: 500 }, start);
    }
  }
  for (let i = 0; i < VISITORS; i++) {
    client.track(PURCHASE, `visitor-${i}`, { amount: 250 });
  }
  return client.flush();
}

/**
 * Per variant, each unit's values from the events sent: an event counts when it is not before
 * the unit's exposure. The script knows the exposure only between `before` (its evaluation) and
 * `exposedBy` (when the server had them all), so every event must be outside that span.
 */
function unitValues(users, events, exposedBy) {
  const byUser = new Map(users.map((u) => [u.userId, { ...u, purchases: 0, revenue: 0, errors: 0 }]));
  let ignored = 0;
  for (const e of events) {
    const unit = byUser.get(e.user_id);
    if (!unit || e.time < unit.before) {
      ignored += 1;
      continue;
    }
    if (!checks.ok('recomputation', `${e.event_type} of ${e.user_id} at ${e.time}: after ${exposedBy}`, e.time >= exposedBy)) {
      continue;
    }
    if (e.event_type === PURCHASE) {
      unit.purchases += 1;
      unit.revenue += e.event_properties.amount;
    } else if (e.event_type === ERROR) {
      unit.errors += 1;
    }
  }
  const arms = ['control', 'treatment'].map((v) => [...byUser.values()].filter((u) => u.variant === v));
  return { arms, ignored };
}

/** n, mean and per-unit variance (population form for 0/1 values, `analysis.md` §3). */
function summary(values, binary) {
  const n = values.length;
  const mean = values.reduce((a, x) => a + x, 0) / n;
  const variance = binary ? mean * (1 - mean) : values.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1);
  return { n, mean, variance };
}

/**
 * Welch's test of the relative effect (`analysis.md` §4): the delta-method standard error,
 * Welch–Satterthwaite degrees of freedom on the arms' variances of the mean, and the p-value of
 * `alternative` ("two-sided", or "greater" for a guardrail whose harm is an increase).
 */
function welch(a, b, alternative) {
  const relative = (b.mean - a.mean) / Math.abs(a.mean);
  const se = Math.sqrt(b.variance / (b.n * a.mean ** 2) + (a.variance * b.mean ** 2) / (a.n * a.mean ** 4));
  const [wa, wb] = [a.variance / a.n, b.variance / b.n];
  const dof = (wa + wb) ** 2 / (wa ** 2 / (a.n - 1) + wb ** 2 / (b.n - 1));
  const t = relative / se;
  const p = alternative === 'two-sided' ? 2 * tcdf(-Math.abs(t), dof) : tcdf(-t, dof);
  return { relative, absolute: b.mean - a.mean, se, dof, t, p };
}

function close(section, what, expected, got) {
  const ok = typeof got === 'number' && Math.abs(expected - got) <= TOLERANCE * Math.max(Math.abs(expected), Math.abs(got));
  if (ok) {
    return checks.ok(section, what, true);
  }
  checks.fail(section, `${what}: expected ${expected}, got ${show(got)}`);
  return false;
}

/**
 * The interval's bounds, checked through the t distribution itself: each bound lies the
 * quantile `1 − α/2` (two-sided) or `1 − α` (one-sided) of standard errors from the estimate.
 */
function checkInterval(section, interval, test, alternative, alpha) {
  const level = alternative === 'two-sided' ? 1 - alpha / 2 : 1 - alpha;
  for (const [side, bound, sign] of [['lower', interval?.lower, 1], ['upper', interval?.upper, -1]]) {
    if (alternative === 'greater' && side === 'upper') {
      checks.equal(section, 'one-sided interval: open upper bound', null, bound ?? null);
      continue;
    }
    const q = (sign * (test.relative - bound)) / test.se;
    const got = typeof bound === 'number' ? tcdf(q, test.dof) : NaN;
    checks.ok(section, `${side} bound ${bound}: T(${q}) = ${got}, expected ${level}`, Math.abs(got - level) < 1e-9);
  }
}

/** The server's results for one metric against the recomputation. */
function checkMetric(results, key, role, values, alternative, kind) {
  const section = `metric ${key} (${role})`;
  const metric = results.metrics?.find((m) => m.metric === key);
  if (!checks.ok(section, `in the results: ${show(results.metrics?.map((m) => m.metric))}`, metric !== undefined)) {
    return undefined;
  }
  checks.equal(section, 'role', role, metric.role);
  const binary = kind === 'conversion';
  const arms = values.map((vs) => summary(vs, binary));
  arms.forEach((arm, v) => {
    const got = metric.variants[v];
    checks.equal(section, `variant ${v}: name`, ['control', 'treatment'][v], got.variant);
    checks.equal(section, `${got.variant}: units`, arm.n, got.units);
    close(section, `${got.variant}: value (rate or mean per unit)`, arm.mean, got.value);
    if (binary) {
      checks.equal(section, `${got.variant}: conversions`, values[v].filter((x) => x === 1).length, got.conversions);
    }
  });
  const test = welch(arms[0], arms[1], alternative);
  const c = metric.comparisons[0];
  checks.equal(section, 'treatment', 'treatment', c.treatment);
  close(section, 'relative effect (μB − μA)/|μA|', test.relative, c.relative?.estimate);
  close(section, 'absolute effect μB − μA', test.absolute, c.absolute?.estimate);
  close(section, `Welch p-value (${alternative}, t = ${test.t}, dof = ${test.dof})`, test.p, c.p_value);
  checkInterval(section, c.relative, test, alternative, 1 - fx.confidence);
  return { metric, arms, test, comparison: c };
}

/** The verdict the recomputed p-value gives (`alternative` harm for guardrails). */
function verdict(p, estimate, direction, alpha) {
  if (p >= alpha) {
    return 'inconclusive';
  }
  return (estimate > 0) === (direction === 'increase') ? 'better' : 'worse';
}

async function run() {
  const flag = await api(fx, 'GET', `/api/v1/flags/${fx.flag}`);
  const start = flag.json?.experiment?.start;
  checks.ok('setup', `the experiment has started: ${show(flag.json?.experiment)}`, Number.isInteger(start));
  step('the Experiment SDK evaluates and tracks exposures');
  const { users, exposedBy } = await expose(start);
  step('the analytics SDK sends the product events');
  const events = await sendEvents(users, start);
  step('results');
  const response = await api(fx, 'GET', `/api/v1/flags/${fx.flag}/results`);
  if (!checks.equal('results', 'GET results: status', 200, response.status)) {
    throw new Error(`GET results: ${show(response.json)}`);
  }
  const r = response.json;
  const { arms, ignored } = unitValues(users, events, exposedBy);
  const units = arms.map((a) => a.length);
  checks.equal('results', 'units per variant', [
    { variant: 'control', units: units[0], expected_share: 0.5 },
    { variant: 'treatment', units: units[1], expected_share: 0.5 },
  ], r.variants);
  checks.equal('results', 'units in several variants', 0, r.multiple_variants);
  checks.equal('results', 'sample ratio mismatch', false, r.srm?.mismatch);

  const alpha = 1 - fx.confidence;
  const { primary, secondary, guardrail } = fx.metrics;
  const purchase = checkMetric(r, primary, 'primary', arms.map((a) => a.map((u) => (u.purchases > 0 ? 1 : 0))), 'two-sided', 'conversion');
  const revenue = checkMetric(r, secondary, 'secondary', arms.map((a) => a.map((u) => u.revenue)), 'two-sided', 'sum');
  const errors = checkMetric(r, guardrail, 'guardrail', arms.map((a) => a.map((u) => u.errors)), 'greater', 'count');
  if (!purchase || !revenue || !errors) {
    return;
  }
  // Bonferroni over the primary and secondary metric; guardrails are not corrected.
  for (const m of [purchase, revenue]) {
    const corrected = Math.min(1, 2 * m.test.p);
    close(`metric ${m.metric.metric}`, 'p-value corrected (Bonferroni over 2)', corrected, m.comparison.p_value_corrected);
    checks.equal(`metric ${m.metric.metric}`, 'verdict', verdict(corrected, m.test.relative, m.metric.direction, alpha), m.comparison.verdict);
  }
  checks.equal(`metric ${guardrail}`, 'p-value corrected', null, errors.comparison.p_value_corrected ?? null);
  checks.equal(`metric ${guardrail}`, 'verdict', verdict(errors.test.p, errors.test.relative, errors.metric.direction, alpha), errors.comparison.verdict);
  // The effect built into the events must be found, and the guardrail must not cry harm.
  checks.equal('scenario', 'Purchase verdict', 'better', purchase.comparison.verdict);
  checks.equal('scenario', 'Errors guardrail verdict', 'inconclusive', errors.comparison.verdict);
  const moved = /^treatment increases Purchase by (\d+\.\d)%/.exec(r.summary ?? '');
  checks.ok('summary', `says Purchase increased by ${(purchase.test.relative * 100).toFixed(1)}%: ${show(r.summary)}`,
    moved !== null && Math.abs(Number(moved[1]) - purchase.test.relative * 100) <= 0.05 + 1e-9);
  checks.ok('summary', `says to roll out: ${show(r.summary)}`, /Roll out treatment/.test(r.summary ?? ''));

  report.events = { sent: events.length, notCounted: ignored };
  report.units = units;
  report.recomputed = Object.fromEntries([purchase, revenue, errors].map((m) => [m.metric.metric, {
    means: m.arms.map((a) => a.mean),
    relative: m.test.relative,
    dof: m.test.dof,
    p: m.test.p,
    server: { relative: m.comparison.relative, p: m.comparison.p_value, verdict: m.comparison.verdict },
  }]));
  report.summary = r.summary;
}

try {
  if (fx.phase === 'seed') {
    step('the analytics SDK seeds the event types');
    await seed();
  } else {
    await run();
  }
} catch (e) {
  checks.fail('run', e.stack ?? String(e));
}
step('done');
writeFileSync(process.env.VEXIL_REPORT, JSON.stringify(report, null, 2));
// The SDKs keep timers; everything they sent was answered.
process.exit(checks.summary());
