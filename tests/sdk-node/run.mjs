// The Node SDK checks against a running Vexil, driven by crates/vexil/tests/sdk_node.rs.
// VEXIL_FIXTURE names a JSON file with the server's base URL (`base`, for the management API)
// and the URL the SDKs are pointed at (`sdkBase`: the server itself, or a `vexil edge` following
// it), the keys, the served flag configs,
// the users and, per user, the result map `vexil eval` computed; VEXIL_REPORT is where the
// measurements go. Exits 0 when every check passed, 1 otherwise (the failures are printed).

import { readFileSync, writeFileSync } from 'node:fs';

import * as amplitude from './amplitude.mjs';
import { Checks } from './lib.mjs';
import * as ofrep from './ofrep.mjs';

const fx = JSON.parse(readFileSync(process.env.VEXIL_FIXTURE, 'utf8'));
const checks = new Checks();
const report = { users: fx.users.length, flags: fx.configs.map((c) => c.key) };
const step = (name) => console.log(`-- ${name} (${Math.round(performance.now())} ms)`);

let clients;
try {
  step('starting the Amplitude clients');
  clients = await amplitude.start(fx);
  step('comparing every user and flag');
  await amplitude.compareAll(fx, clients, checks);
  step('exposures');
  await amplitude.exposures(fx, clients, checks, report);
  step('OFREP single-flag evaluation');
  await ofrep.singleFlag(fx, checks, report);
  step('OFREP bulk evaluation');
  const web = await ofrep.startWeb(fx, checks, report);
  step('changing a flag');
  const change = await amplitude.change(fx, clients, checks, report);
  step('comparing after the change');
  await amplitude.compareAfterChange(fx, clients, checks, report);
  await ofrep.afterChange(fx, web, clients.remote, change, checks, report);
  amplitude.checkLogs(clients, checks);
} catch (e) {
  checks.fail('run', e.stack ?? String(e));
} finally {
  clients?.stop();
}
step('done');
writeFileSync(process.env.VEXIL_REPORT, JSON.stringify(report, null, 2));
// The analytics clients keep timers; every exposure was already counted by the server.
process.exit(checks.summary());
