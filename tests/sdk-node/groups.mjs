// Mutual-exclusion and holdout groups through Amplitude's own code, driven by the test
// node_sdks_agree_on_groups in crates/vexil/tests/sdk_node.rs. VEXIL_FIXTURE names a JSON file
// with the server's base URL and keys, the users, and the scenario as it was configured (which
// experiments share a mutual-exclusion group, each holdout's members and the ids it includes and
// excludes, the prerequisites); VEXIL_REPORT is where the counts go.
//
// For every user, and every deployed flag that is not itself a group:
// - Amplitude's JS evaluation engine (@amplitude/experiment-core, the one the Node SDK runs) on
//   the body of GET /sdk/v2/flags gives the same result as remote evaluation (/sdk/v2/vardata,
//   through the SDK's remote client);
// - the SDK's local evaluation client, polling and streaming, gives the same results too;
// - in every one of those answers the groups hold: no user gets a variant from two experiments
//   of one mutual-exclusion group, a user a holdout holds out gets `off` from all its members,
//   its included ids are held out and its excluded ids never are, and a flag is served only to
//   users its prerequisites let through.
// Then one more id is added to a holdout's inclusions through the management API: the streaming
// client must see it within 1 s, and everything above is checked again.
//
// Remote evaluation may or may not return results for the groups themselves, so group results
// are read from the JS engine and the local clients, and compared only where returned.

import { readFileSync, writeFileSync } from 'node:fs';

import { EvaluationEngine, topologicalSort } from '@amplitude/experiment-core';

import * as amplitude from './amplitude.mjs';
import { api, Checks, compareResults, eventually, label, only, pool, show } from './lib.mjs';

const GROUP_TYPES = new Set(['mutual-exclusion-group', 'holdout-group']);
/** How long the streaming client may take to see a change (sdk-protocol.md §A4: 1 s). */
const STREAM_BUDGET_MS = 1000;

const fx = JSON.parse(readFileSync(process.env.VEXIL_FIXTURE, 'utf8'));
const scenario = fx.scenario;
const checks = new Checks();
const report = { users: fx.users.length };
const step = (name) => console.log(`-- ${name} (${Math.round(performance.now())} ms)`);

/** GET /sdk/v2/flags as the local SDKs call it. */
async function servedConfigs() {
  const response = await fetch(`${fx.base}/sdk/v2/flags`, {
    headers: { Authorization: `Api-Key ${fx.serverKey}` },
  });
  if (response.status !== 200) {
    throw new Error(`GET /sdk/v2/flags: HTTP ${response.status}: ${await response.text()}`);
  }
  return response.json();
}

/** Who a holdout covers, by id: `included` or `excluded`, else undefined. */
function pinned(holdout, user) {
  const ids = [user.user_id, user.device_id].filter((id) => id !== undefined);
  if (ids.some((id) => holdout.included.includes(id))) {
    return 'included';
  }
  if (ids.some((id) => holdout.excluded.includes(id))) {
    return 'excluded';
  }
  return undefined;
}

const variantOf = (results, flag) => results[flag]?.key;
const serves = (results, flag) => {
  const key = variantOf(results, flag);
  return key !== undefined && key !== 'off';
};

/**
 * The groups' guarantees in one client's answer for one user. `heldOut` says which holdouts
 * hold the user out, by the JS engine's results for the holdouts.
 */
function checkInvariants(phase, who, client, results, heldOut) {
  for (const [group, spec] of Object.entries(scenario.mutexGroups)) {
    const served = Object.entries(spec.slots).flatMap(([slot, flags]) =>
      flags.filter((f) => serves(results, f)).map((f) => `${f}=${variantOf(results, f)} (slot ${slot})`),
    );
    checks.ok(
      `${phase}: one experiment per mutual-exclusion group`,
      `${who}: ${client} serves ${served.length} experiments of ${group}: ${served.join(', ')}`,
      served.length <= 1,
    );
  }
  for (const [holdout, spec] of Object.entries(scenario.holdouts)) {
    if (heldOut[holdout]) {
      checks.equal(
        `${phase}: held-out users get off from every member`,
        `${who}, held out by ${holdout}: ${client}'s variants of its members`,
        spec.members.map((f) => `${f}=off`),
        spec.members.map((f) => `${f}=${variantOf(results, f)}`),
      );
    }
  }
  for (const [flag, prerequisites] of Object.entries(scenario.prerequisites)) {
    if (!serves(results, flag)) {
      continue;
    }
    for (const [prerequisite, allowed] of Object.entries(prerequisites)) {
      checks.ok(
        `${phase}: prerequisites`,
        `${who}: ${client} serves ${flag}=${variantOf(results, flag)} but ${prerequisite}=${variantOf(results, prerequisite)}, not one of ${show(allowed)}`,
        allowed.includes(variantOf(results, prerequisite)),
      );
    }
  }
}

/**
 * The holdout results of the clients that return them agree with the JS engine's, and the ids
 * a holdout includes are held out and those it excludes are let through.
 */
function checkHoldoutResults(phase, user, who, js, answers) {
  for (const [holdout, spec] of Object.entries(scenario.holdouts)) {
    const want = variantOf(js, holdout);
    for (const [client, results] of Object.entries(answers)) {
      if (results[holdout] !== undefined) {
        checks.equal(`${phase}: holdout results`, `${who}, ${holdout}: ${client} vs the JS engine`, want, variantOf(results, holdout));
      }
    }
    const pin = pinned(spec, user);
    if (pin !== undefined) {
      const expected = pin === 'included' ? 'holdout' : 'on';
      for (const [client, results] of Object.entries({ 'JS engine': js, ...answers })) {
        if (results[holdout] !== undefined) {
          checks.equal(`${phase}: holdout inclusions and exclusions`, `${who} (${pin}), ${holdout}: ${client}`, expected, variantOf(results, holdout));
        }
      }
    }
  }
}

/**
 * Every user through the JS engine, remote evaluation and both local clients: the comparison
 * and the guarantees. Returns per user the JS engine's and the remote results.
 */
async function comparePhase(phase, clients) {
  const configs = await servedConfigs();
  const compared = new Set(
    configs
      .filter((c) => !GROUP_TYPES.has(c.metadata?.flagType) && c.metadata?.deployed !== false)
      .map((c) => c.key),
  );
  checks.equal(`${phase}: served flags`, 'deployed flags that are not groups', [...scenario.flags].sort(), [...compared].sort());
  const sorted = topologicalSort(Object.fromEntries(configs.map((c) => [c.key, c])));
  const engine = new EvaluationEngine();
  return pool(fx.users, 8, async (user) => {
    const who = label(user);
    const js = engine.evaluate({ user: structuredClone(user) }, sorted);
    const remote = await clients.remote.fetchV2(structuredClone(user), { tracksAssignment: false });
    // The local clients write cohort_ids into the user they are given: hand them copies.
    const answers = {
      remote,
      'local (polling)': clients.polling.evaluateV2(structuredClone(user)),
      'local (streaming)': clients.streaming.evaluateV2(structuredClone(user)),
    };
    const want = only(remote, compared);
    compareResults(checks, `${phase}: JS engine on /sdk/v2/flags vs remote`, who, want, only(js, compared));
    compareResults(checks, `${phase}: local (polling) vs remote`, who, want, only(answers['local (polling)'], compared));
    compareResults(checks, `${phase}: local (streaming) vs remote`, who, want, only(answers['local (streaming)'], compared));
    const heldOut = Object.fromEntries(Object.keys(scenario.holdouts).map((h) => [h, variantOf(js, h) === 'holdout']));
    for (const [client, results] of Object.entries({ 'JS engine': js, ...answers })) {
      checkInvariants(phase, who, client, results, heldOut);
    }
    checkHoldoutResults(phase, user, who, js, answers);
    return { user, js, remote };
  });
}

/**
 * The scenario reaches what it is about: every experiment serves someone, every holdout holds
 * out someone but not much more than its share, a group that leaves users unallocated does.
 */
function checkCoverage(answers) {
  const section = 'scenario coverage';
  const count = (predicate) => answers.filter(predicate).length;
  const coverage = { served: {}, heldOut: {}, unallocated: {} };
  for (const flag of scenario.flags) {
    coverage.served[flag] = count((a) => serves(a.remote, flag));
    checks.ok(section, `no user gets a variant of ${flag}`, coverage.served[flag] > 0);
  }
  for (const [holdout, spec] of Object.entries(scenario.holdouts)) {
    const n = count((a) => variantOf(a.js, holdout) === 'holdout');
    coverage.heldOut[holdout] = n;
    checks.ok(section, `${holdout} (${spec.percentage}%) holds out ${n} of ${answers.length} users`, n > 0 && n <= (answers.length * spec.percentage * 2) / 100);
  }
  for (const [group, spec] of Object.entries(scenario.mutexGroups)) {
    const n = count((a) => variantOf(a.js, group) === 'unallocated');
    coverage.unallocated[group] = n;
    checks.ok(section, `${group} leaves ${spec.unallocated}% unallocated, but ${n} users are`, spec.unallocated > 0 ? n > 0 : n === 0);
  }
  report.coverage = coverage;
}

/**
 * Includes one more user in the first holdout that has inclusions: one it lets through and that
 * gets a variant from one of its members. Waits until both local clients and remote evaluation
 * hold that user out; the streaming client must take at most STREAM_BUDGET_MS.
 */
async function includeOneMore(answers, clients) {
  const section = 'holdout change';
  const [holdout, spec] = Object.entries(scenario.holdouts).find(([, h]) => h.included.length > 0);
  const chosen = answers.find(
    (a) => a.user.user_id !== undefined && pinned(spec, a.user) === undefined && variantOf(a.js, holdout) === 'on' && spec.members.some((f) => serves(a.remote, f)),
  );
  if (!checks.ok(section, `a user ${holdout} lets through and one of its members serves`, chosen !== undefined)) {
    return;
  }
  const { user } = chosen;
  const path = `/api/v1/projects/${fx.project}/holdouts/${holdout}`;
  const current = await api(fx, 'GET', path);
  checks.equal(section, `GET ${path}: status`, 200, current.status);
  const ids = [...(current.json.inclusions?.ids ?? []), user.user_id];
  const t0 = performance.now();
  const patched = await api(fx, 'PATCH', path, { inclusions: { ...current.json.inclusions, ids } }, current.version);
  if (!checks.equal(section, `PATCH ${path}: status (${show(patched.json)})`, 200, patched.status)) {
    return;
  }
  spec.included.push(user.user_id);
  const latency = {};
  const watch = async (name, evaluate, timeoutMs) => {
    let last;
    await eventually(
      `the ${name} client to hold ${label(user)} out of ${holdout}`,
      async () => {
        const results = await evaluate();
        last = spec.members.map((f) => `${f}=${variantOf(results, f)}`);
        return spec.members.every((f) => !serves(results, f)) && (results[holdout] === undefined || variantOf(results, holdout) === 'holdout');
      },
      { timeoutMs, intervalMs: 2, describe: () => show(last) },
    );
    latency[name] = Math.round(performance.now() - t0);
  };
  try {
    await Promise.all([
      watch('streaming', () => clients.streaming.evaluateV2(structuredClone(user)), 5000),
      watch('polling', () => clients.polling.evaluateV2(structuredClone(user)), 5000),
      watch('remote', () => clients.remote.fetchV2(structuredClone(user), { tracksAssignment: false }), 5000),
    ]);
  } catch (e) {
    checks.fail(section, e.message);
  }
  report.change = { holdout, included: user.user_id, latencyMsFromPatchStart: latency };
  checks.ok(
    section,
    `the streaming client held ${label(user)} out ${latency.streaming} ms after the PATCH started (budget ${STREAM_BUDGET_MS} ms)`,
    latency.streaming !== undefined && latency.streaming <= STREAM_BUDGET_MS,
  );
  const fellBack = clients.logs.streaming.filter((l) => /fallback to poller/.test(l.text));
  checks.equal(section, 'streaming client fell back to polling', [], fellBack.map((l) => l.text));
}

let clients;
try {
  step('starting the Amplitude clients');
  clients = await amplitude.start(fx);
  step('comparing every user and flag');
  const answers = await comparePhase('groups', clients);
  checkCoverage(answers);
  step('including one more id in a holdout');
  await includeOneMore(answers, clients);
  step('comparing after the change');
  await comparePhase('after the change', clients);
  amplitude.checkLogs(clients, checks);
} catch (e) {
  checks.fail('run', e.stack ?? String(e));
} finally {
  clients?.stop();
}
step('done');
writeFileSync(process.env.VEXIL_REPORT, JSON.stringify(report, null, 2));
process.exit(checks.summary());
