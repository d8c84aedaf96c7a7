// Amplitude Experiment's Node SDK against Vexil: the remote client, a local client that polls
// and a local client that streams (both with cohort sync and exposure tracking), compared with
// the variants `vexil eval` computed; exposures counted by the server; a flag change seen
// through the stream.

import amplitude from '@amplitude/experiment-node-server';

import { api, compareResults, eventually, label, only, pool } from './lib.mjs';

const { Experiment, LogLevel } = amplitude;

/** How long the streaming client may take to see a change (sdk-protocol.md §A4: 1 s). */
const STREAM_BUDGET_MS = 1000;
/** The polling client's interval. */
const POLL_MS = 200;

/** A logger that keeps what the SDK reports, so that errors fail the run instead of scrolling by. */
function recorder() {
  const lines = [];
  // Debug lines carry whole flag sets and users: keep only their message.
  const keep = (level) => (message, ...rest) => {
    const details = level === 'debug' ? [] : rest.map((r) => (r instanceof Error ? r.message : typeof r === 'string' ? r : JSON.stringify(r)));
    lines.push({ level, text: [message, ...details].join(' ') });
  };
  return {
    lines,
    logger: {
      verbose() {},
      debug: keep('debug'),
      info: keep('info'),
      warn: keep('warn'),
      error: keep('error'),
    },
  };
}

/** Starts the three clients; resolves when both local clients have their flags and cohorts. */
export async function start(fx) {
  const cohortSyncConfig = {
    apiKey: fx.projectApiKey,
    secretKey: fx.projectSecretKey,
    cohortServerUrl: fx.sdkBase,
  };
  // The analytics client batches; a short interval delivers the exposures promptly.
  const exposureConfig = {
    apiKey: fx.projectApiKey,
    serverUrl: `${fx.sdkBase}/2/httpapi`,
    flushIntervalMillis: 100,
    flushQueueSize: 50,
  };
  const remote = Experiment.initializeRemote(fx.serverKey, {
    serverUrl: fx.sdkBase,
    fetchRetries: 0,
  });
  const pollingLog = recorder();
  const polling = Experiment.initializeLocal(fx.serverKey, {
    instanceName: 'polling',
    serverUrl: fx.sdkBase,
    flagConfigPollingIntervalMillis: POLL_MS,
    cohortSyncConfig,
    exposureConfig,
    logLevel: LogLevel.Warn,
    loggerProvider: pollingLog.logger,
  });
  // The streaming client polls only once a minute, so a change seen within a second came
  // through the stream; its debug log says whether it ever fell back to polling.
  const streamingLog = recorder();
  const streaming = Experiment.initializeLocal(fx.serverKey, {
    instanceName: 'streaming',
    serverUrl: fx.sdkBase,
    streamUpdates: true,
    streamServerUrl: fx.sdkBase,
    flagConfigPollingIntervalMillis: 60000,
    cohortSyncConfig,
    exposureConfig,
    logLevel: LogLevel.Debug,
    loggerProvider: streamingLog.logger,
  });
  await Promise.all([polling.start(), streaming.start()]);
  return {
    remote,
    polling,
    streaming,
    logs: { polling: pollingLog.lines, streaming: streamingLog.lines },
    stop() {
      polling.stop();
      streaming.stop();
    },
  };
}

/** The keys of the flags evaluated locally. */
export function localKeys(fx) {
  return new Set(fx.configs.filter((c) => c.metadata?.evaluationMode === 'local').map((c) => c.key));
}

/**
 * The keys of the flags remote evaluation returns: every served config but the groups, which
 * are evaluated for their members and never returned.
 */
export function returnedKeys(fx) {
  const groups = ['mutual-exclusion-group', 'holdout-group'];
  return new Set(fx.configs.filter((c) => !groups.includes(c.metadata?.flagType)).map((c) => c.key));
}

/** Every user, every flag: remote, polling and streaming against `vexil eval`. */
export async function compareAll(fx, clients, checks) {
  const local = localKeys(fx);
  const returned = returnedKeys(fx);
  await pool(fx.users, 8, async (user, i) => {
    const who = label(user);
    const remote = await clients.remote.fetchV2(structuredClone(user), { tracksAssignment: false });
    compareResults(checks, 'remote fetchV2 vs vexil eval', who, only(fx.expected[i], returned), remote);
    // The local clients write cohort_ids into the user they are given: hand them copies.
    const expected = only(fx.expected[i], local);
    const polled = clients.polling.evaluateV2(structuredClone(user));
    compareResults(checks, 'local (polling) evaluateV2 vs vexil eval', who, expected, polled);
    const streamed = clients.streaming.evaluateV2(structuredClone(user));
    compareResults(checks, 'local (streaming) evaluateV2 vs vexil eval', who, expected, streamed);
  });
}

/**
 * Exposes every fifth user through the polling client and every fifth or seventh user through
 * the streaming client, then waits until the server's exposure counts per flag and variant
 * equal what `vexil eval` says the union of those users got. The clients send the same insert
 * ids for the same user and results, so the server must store each of those exposures once;
 * the users only the streaming client exposes show that its events arrive too.
 */
export async function exposures(fx, clients, checks, report) {
  const local = localKeys(fx);
  const want = Object.fromEntries([...local].map((k) => [k, {}]));
  const viaPolling = (i) => i % 5 === 0;
  const viaStreaming = (i) => i % 5 === 0 || i % 7 === 0;
  let exposed = 0;
  fx.users.forEach((user, i) => {
    if (!viaPolling(i) && !viaStreaming(i)) {
      return;
    }
    exposed += 1;
    for (const [flag, result] of Object.entries(only(fx.expected[i], local))) {
      // The SDK exposes real variants only (sdk-protocol.md §A10, evaluation.md §7).
      if (result.metadata?.default === true || result.metadata?.trackExposure === false) {
        continue;
      }
      const slot = (want[flag][result.key] ??= { count: 0, users: 0 });
      slot.count += 1;
      slot.users += 1;
    }
    if (viaPolling(i)) {
      clients.polling.evaluateV2(structuredClone(user), undefined, { tracksExposure: true });
    }
    if (viaStreaming(i)) {
      clients.streaming.evaluateV2(structuredClone(user), undefined, { tracksExposure: true });
    }
  });
  const seen = {};
  const started = performance.now();
  try {
    await eventually(
      'the server to count every exposure once',
      async () => {
        for (const flag of local) {
          const r = await api(fx, 'GET', `/api/v1/flags/${flag}/exposures?days=2`);
          seen[flag] = r.status === 200 ? r.json.totals : `HTTP ${r.status}: ${JSON.stringify(r.json)}`;
        }
        return [...local].every((flag) => JSON.stringify(sorted(seen[flag])) === JSON.stringify(sorted(want[flag])));
      },
      // Two days: a run across midnight UTC still sees every exposure.
      { timeoutMs: 10000, intervalMs: 100 },
    );
  } catch (e) {
    checks.fail('exposures', e.message);
  }
  for (const flag of local) {
    checks.equal('exposures', `flag ${flag}: exposures per variant (count, distinct users)`, sorted(want[flag]), sorted(seen[flag]));
  }
  report.exposures = { users: exposed, perFlag: want, ms: Math.round(performance.now() - started) };
}

function sorted(object) {
  return typeof object === 'object' && object !== null
    ? Object.fromEntries(Object.entries(object).sort(([a], [b]) => (a < b ? -1 : 1)))
    : object;
}

/** The flag the change targets and the new rollout of its All Other Users. */
export const CHANGED_FLAG = 'premium-analytics';
const NEW_PERCENTAGE = 80;

/**
 * Raises the changed flag's rollout through the management API and measures how long each
 * local client takes to evaluate with the new version. Returns the new version and when the
 * PATCH was sent.
 */
export async function change(fx, clients, checks, report) {
  const probe = { user_id: 'latency-probe', user_properties: { premium: true } };
  const versionIn = (client) =>
    client.evaluateV2(structuredClone(probe), [CHANGED_FLAG])[CHANGED_FLAG]?.metadata?.flagVersion;
  const current = await api(fx, 'GET', `/api/v1/flags/${CHANGED_FLAG}`);
  const before = current.json.all_other_users;
  checks.ok('flag change', `${CHANGED_FLAG} starts below ${NEW_PERCENTAGE}%: ${JSON.stringify(before)}`, before.percentage < NEW_PERCENTAGE);
  const t0 = performance.now();
  const patched = await api(fx, 'PATCH', `/api/v1/flags/${CHANGED_FLAG}`, {
    all_other_users: { ...before, percentage: NEW_PERCENTAGE },
  }, current.version);
  const committed = performance.now();
  if (!checks.equal('flag change', `PATCH ${CHANGED_FLAG}: status`, 200, patched.status)) {
    throw new Error(`PATCH failed: ${JSON.stringify(patched.json)}`);
  }
  const version = patched.version;
  const latency = {};
  const watch = async (name, client, timeoutMs) => {
    await eventually(`the ${name} client to evaluate ${CHANGED_FLAG} v${version}`, () => versionIn(client) === version, {
      timeoutMs,
      intervalMs: 2,
      describe: () => `v${versionIn(client)}`,
    });
    latency[name] = Math.round(performance.now() - t0);
  };
  try {
    await Promise.all([watch('streaming', clients.streaming, 5000), watch('polling', clients.polling, 5000)]);
  } catch (e) {
    checks.fail('flag change', e.message);
  }
  report.change = {
    flag: CHANGED_FLAG,
    patch: { percentage: [before.percentage, NEW_PERCENTAGE], version },
    patchRequestMs: Math.round(committed - t0),
    latencyMsFromPatchStart: latency,
  };
  checks.ok(
    'flag change',
    `streaming client saw ${CHANGED_FLAG} v${version} ${latency.streaming} ms after the PATCH started (budget ${STREAM_BUDGET_MS} ms)`,
    latency.streaming !== undefined && latency.streaming <= STREAM_BUDGET_MS,
  );
  const fellBack = clients.logs.streaming.filter((l) => /fallback to poller/.test(l.text));
  checks.equal('flag change', 'streaming client fell back to polling', [], fellBack.map((l) => l.text));
  return { version, startedAt: t0 };
}

/**
 * After the change: both local clients agree with the server's own (remote) evaluation for
 * every user, the raise kept everyone who had the flag (expand-only), and it reached someone new.
 */
export async function compareAfterChange(fx, clients, checks, report) {
  const local = localKeys(fx);
  let gained = 0;
  await pool(fx.users, 8, async (user, i) => {
    const who = label(user);
    const remote = await clients.remote.fetchV2(structuredClone(user), { tracksAssignment: false });
    const expected = only(remote, local);
    compareResults(checks, 'after the change: streaming vs remote', who, expected, clients.streaming.evaluateV2(structuredClone(user)));
    compareResults(checks, 'after the change: polling vs remote', who, expected, clients.polling.evaluateV2(structuredClone(user)));
    const was = fx.expected[i][CHANGED_FLAG]?.key;
    const now = remote[CHANGED_FLAG]?.key;
    if (was === 'on') {
      checks.equal('after the change: expand-only rollout', `${who}, flag ${CHANGED_FLAG}`, 'on', now);
    } else if (now === 'on') {
      gained += 1;
    }
  });
  checks.ok('after the change: expand-only rollout', `raising ${CHANGED_FLAG} to ${NEW_PERCENTAGE}% reached no new user`, gained > 0);
  report.change.usersGained = gained;
}

/** SDK log lines at warn or error level are failures: they mean a request went wrong. */
export function checkLogs(clients, checks) {
  for (const [name, lines] of Object.entries(clients.logs)) {
    const bad = lines.filter((l) => l.level === 'warn' || l.level === 'error').map((l) => l.text);
    checks.equal('SDK logs', `${name} client warnings and errors`, [], bad);
  }
}
