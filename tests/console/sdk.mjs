// What the tests ask of the SDK API and the binary, to compare the console with: the served flag
// configs, remote evaluation without tracking, exposure events as SDKs send them, and
// `vexil eval --explain` on the served configs.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** `GET /sdk/v2/flags?eval_mode=remote`: {status, configs}. */
export async function flags(base, key) {
  const r = await fetch(`${base}/sdk/v2/flags?eval_mode=remote`, {
    headers: { Authorization: `Api-Key ${key}` },
  });
  return { status: r.status, configs: r.status === 200 ? await r.json() : null };
}

/** `POST /sdk/v2/vardata` for `user` without recording anything: flag key -> variant. */
export async function vardata(base, key, user, flagKeys) {
  const headers = {
    Authorization: `Api-Key ${key}`,
    'Content-Type': 'application/json;charset=utf-8',
    'X-Amp-Exp-Track': 'no-track',
  };
  if (flagKeys) {
    headers['X-Amp-Exp-Flag-Keys'] = Buffer.from(JSON.stringify(flagKeys)).toString('base64url');
  }
  const r = await fetch(`${base}/sdk/v2/vardata`, { method: 'POST', headers, body: JSON.stringify(user) });
  if (r.status !== 200) throw new Error(`POST /sdk/v2/vardata: ${r.status} ${await r.text()}`);
  return r.json();
}

/** `POST /2/httpapi` with `$exposure` events (sdk-protocol.md §A10); returns the body. */
export async function exposures(base, apiKey, events) {
  const body = {
    api_key: apiKey,
    events: events.map((e, i) => ({
      event_type: '$exposure',
      user_id: e.user,
      time: Date.now(),
      insert_id: `console-test-${e.user}-${e.flag}-${i}`,
      event_properties: { flag_key: e.flag, variant: e.variant },
    })),
  };
  const r = await fetch(`${base}/2/httpapi`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await r.json();
  if (r.status !== 200) throw new Error(`POST /2/httpapi: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

/** `vexil eval --explain` of `configs` for each of `users`: [{results, explanations}]. */
export function explain(fx, dir, configs, users) {
  const stamp = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const file = join(dir, `flags-${stamp}.json`);
  writeFileSync(file, JSON.stringify(configs));
  const input = users.map((u) => `${JSON.stringify(u)}\n`).join('');
  const out = spawnSync(fx.vexil, ['eval', '--flags', file, '--users', '-', '--explain'], { input, encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`vexil eval failed (${out.status}): ${out.stderr}`);
  return out.stdout.trim().split('\n').map((l) => JSON.parse(l));
}
