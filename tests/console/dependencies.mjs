// The Dependencies card and the workflow protections: which flags may be prerequisites (same
// project, compatible mode, no cycle), adding and removing one with its variants (`off`
// offered), activation refused while a prerequisite is inactive (with a link to it), archiving
// and deleting a variant refused while a dependent uses it, QA across prerequisites, and QA's
// bucketing checked against `vexil eval --explain` and remote evaluation once active.

import { qa } from './allocation.mjs';
import { actions, createFlag, flagState } from './flags.mjs';
import {
  at,
  absent,
  blockingLinks,
  eq,
  errorText,
  fill,
  flagPath,
  lastConfirm,
  need,
  noError,
  ok,
  scratch,
  setField,
  submit,
  until,
  where,
} from './lib.mjs';
import * as sdk from './sdk.mjs';

const ADD = 'section#dependencies form#add-prerequisite';

/** The flag keys the prerequisite select offers. */
async function eligible(page) {
  // With no eligible flag the card may leave the form out.
  await need(page, 'section#dependencies', 'the dependencies card');
  if ((await page.locator(ADD).count()) === 0) return [];
  const select = await need(page, `${ADD} select[name=flag]`, 'the prerequisite flag select');
  return select.evaluate((s) => [...s.options].map((o) => o.value).filter((v) => v));
}

/** Adds `flag` as a prerequisite of the open flag page, allowing `variants`. */
async function addPrerequisite(page, flag, variants) {
  await setField(page, ADD, 'flag', flag);
  const fieldset = page.locator(`${ADD} fieldset[data-for="${flag}"]`);
  try {
    await fieldset.waitFor({ state: 'visible' });
  } catch {
    ok(false, `${where(page)}: selecting ${flag} did not show \`fieldset[data-for="${flag}"]\``);
  }
  const others = await page.locator(`${ADD} fieldset[data-for]:not([data-for="${flag}"])`).evaluateAll((fs) =>
    fs.filter((f) => f.checkVisibility()).map((f) => f.dataset.for),
  );
  eq([], others, `${where(page)}: with ${flag} selected, the other fieldsets visible`);
  const offered = await fieldset.locator('input[name=variants]').evaluateAll((is) => is.map((i) => i.value));
  for (const v of variants) await fieldset.locator(`input[name=variants][value="${v}"]`).check();
  await submit(page, ADD);
  await noError(page, `adding prerequisite ${flag}`);
  return offered;
}

export async function steps(runner, state) {
  const { page } = state;
  const path = (k) => flagPath(state, k);

  await runner.step('more-flags', ['create-flag', 'deployments'], async () => {
    state.flags.dependent = await createFlag(page, {
      project: state.project,
      name: 'Express shipping',
      key: 'express-ship',
      description: 'Ships the same day',
    });
    // Served in Production, everyone gets on (the prerequisite decides who is eligible).
    await at(page, path(state.flags.dependent));
    await page.locator(`form#settings input[name=deployments][value="${state.deployments.server.key}"]`).check();
    await submit(page, 'section#configure form#settings');
    await noError(page, 'saving the settings of express-ship');
    await at(page, path(state.flags.dependent));
    const form = 'section#allocation form#allocation-form';
    await fill(page, form, { 'aou.percentage': 100, 'aou.weights.on': 1 });
    await submit(page, form, {
      button:
        ':is(button[type=submit], button:not([type]), input[type=submit]):not(#add-segment, .remove-segment, .add-condition, .remove-condition)',
    });
    await noError(page, 'saving the allocation of express-ship');
    state.flags.local = await createFlag(page, { project: state.project, name: 'Local banner', mode: 'local' });
    state.flags.promo = await createFlag(page, { project: state.otherProject, name: 'Promo banner', kind: 'experiment' });
  });

  await runner.step('eligible-prerequisites', ['more-flags'], async () => {
    const { main, dependent, local, promo } = state.flags;
    await at(page, path(dependent));
    let offered = await eligible(page);
    for (const k of [main, local]) ok(offered.includes(k), `${where(page)}: a remote flag must be offered ${k} as a prerequisite (offered: ${JSON.stringify(offered)})`);
    ok(!offered.includes(dependent), `${where(page)}: a flag is offered itself as a prerequisite`);
    ok(!offered.includes(promo), `${where(page)}: a flag of another project (${promo}) is offered (${JSON.stringify(offered)})`);
    await at(page, path(local));
    offered = await eligible(page);
    const remote = [main, dependent].filter((k) => offered.includes(k));
    eq([], remote, `${where(page)}: remote flags offered to a local flag`);
    // beta-program (cohorts step) is local: a local flag may depend on it.
    if (state.flags.beta) {
      ok(offered.includes(state.flags.beta), `${where(page)}: the local flag ${state.flags.beta} must be offered to a local flag (offered: ${JSON.stringify(offered)})`);
    }
  });

  await runner.step('add-prerequisite', ['eligible-prerequisites'], async () => {
    const { main, dependent, local } = state.flags;
    await at(page, path(dependent));
    const variants = await addPrerequisite(page, main, ['on']);
    const want = ['on', state.variants?.blue, state.variants?.green, 'off'].filter((v) => v);
    for (const v of want) ok(variants.includes(v), `${where(page)}: the variants of ${main} offered lack ${v} (offered: ${JSON.stringify(variants)})`);
    await at(page, path(dependent));
    const li = `section#dependencies #prerequisites li[data-prerequisite="${main}"]`;
    const shown = (await (await need(page, li, 'the new prerequisite')).innerText()).replace(/\s+/g, ' ');
    ok(/\bon\b/.test(shown), `${where(page)}: the prerequisite must show its allowed variant on: ${JSON.stringify(shown)}`);

    // A second prerequisite, removed again.
    await addPrerequisite(page, local, ['off']);
    await at(page, path(dependent));
    await need(page, `#prerequisites li[data-prerequisite="${local}"]`, 'the second prerequisite');
    await submit(page, `#prerequisites li[data-prerequisite="${local}"] form.remove-prerequisite`);
    await noError(page, 'removing a prerequisite');
    await at(page, path(dependent));
    await absent(page, `#prerequisites li[data-prerequisite="${local}"]`, 'the removed prerequisite');
    await need(page, li, 'the remaining prerequisite');

    // The prerequisite lists its dependent, and is not offered the dependent (a cycle).
    await at(page, path(main));
    const dependents = await page.locator('section#dependencies #dependents li a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    ok(dependents.some((h) => h?.startsWith(`/flags/${dependent}`)), `${where(page)}: \`#dependents li\` must link to ${dependent}, got ${JSON.stringify(dependents)}`);
    const offered = await eligible(page);
    ok(!offered.includes(dependent), `${where(page)}: ${dependent} is offered as a prerequisite of its own prerequisite (a cycle)`);
    ok(!offered.includes(main), `${where(page)}: a flag is offered itself as a prerequisite`);
  });

  await runner.step('activation', ['add-prerequisite'], async () => {
    const { main, dependent } = state.flags;
    await at(page, path(dependent));
    await submit(page, 'form#activate');
    const error = await errorText(page, 'activating a flag whose prerequisite is inactive is refused');
    ok(error.includes(main) || error.includes('New checkout'), `the refusal must name the inactive prerequisite: ${JSON.stringify(error)}`);
    const links = await blockingLinks(page);
    const link = links.find((h) => h?.startsWith(`/flags/${main}`));
    ok(link, `${where(page)}: \`.blocking a\` must link to /flags/${main}…, got ${JSON.stringify(links)}`);
    await at(page, path(dependent));
    eq('inactive', await flagState(page), 'the refused flag');

    // Follow the link, activate the prerequisite, then the dependent.
    await at(page, link);
    ok((await page.locator('h1').innerText()).includes('New checkout'), `${where(page)}: the blocking link leads elsewhere`);
    await submit(page, 'form#activate');
    await noError(page, `activating ${main}`);
    await at(page, path(main));
    eq('active', await flagState(page), `${main} after activating`);
    eq(['deactivate', 'archive'], await actions(page), `the actions of active ${main}`);
    await at(page, path(dependent));
    await submit(page, 'form#activate');
    await noError(page, `activating ${dependent}`);
    await at(page, path(dependent));
    eq('active', await flagState(page), `${dependent} after activating`);
  });

  await runner.step('archive-protection', ['activation'], async () => {
    const { main, dependent } = state.flags;
    await at(page, path(main));
    // Deactivating a prerequisite says first which flags it turns off.
    const question = await page.locator('form#deactivate').getAttribute('data-confirm');
    ok(question?.includes(dependent), `${where(page)}: deactivating ${main} must name ${dependent} it turns off, asks ${JSON.stringify(question)}`);
    await submit(page, 'form#archive');
    ok(lastConfirm()?.includes('Archive'), `archiving must ask first, asked ${JSON.stringify(lastConfirm())}`);
    const error = await errorText(page, 'archiving a prerequisite is refused');
    ok(error.includes(dependent) || error.includes('Express shipping'), `the refusal must name the dependent: ${JSON.stringify(error)}`);
    const links = await blockingLinks(page);
    ok(links.some((h) => h?.startsWith(`/flags/${dependent}`)), `${where(page)}: \`.blocking a\` must link to ${dependent}, got ${JSON.stringify(links)}`);
    await at(page, path(main));
    eq('active', await flagState(page), `${main} after the refused archive`);
    // The variant the dependent relies on cannot be deleted either.
    await submit(page, 'section#variants tr[data-variant="on"] form.delete-variant');
    const refusal = await errorText(page, 'deleting a variant a dependent relies on is refused');
    ok(refusal.includes(dependent) || refusal.includes('Express shipping'), `the refusal must name the dependent: ${JSON.stringify(refusal)}`);
    await at(page, path(main));
    await need(page, 'section#variants tr[data-variant="on"]', 'the variant whose deletion was refused');
    // Nor can its key change.
    const edit = 'section#variants tr[data-variant="on"] form.edit-variant';
    await fill(page, edit, { key: 'on-renamed' });
    await submit(page, edit);
    const renamed = await errorText(page, 'changing the key of a variant a dependent relies on is refused');
    ok(renamed.includes(dependent) || renamed.includes('Express shipping'), `the refusal must name the dependent: ${JSON.stringify(renamed)}`);
    await at(page, path(main));
    await need(page, 'section#variants tr[data-variant="on"]', 'the variant whose key change was refused');
  });

  await runner.step('qa-prerequisites', ['activation', 'allocation'], async () => {
    const { main, dependent } = state.flags;
    const cases = [
      { user: { user_id: 'qa-on-user' }, want: { [main]: 'on', [dependent]: 'on' } },
      { user: { user_id: 'u-de-1', user_properties: { country: 'DE', plan: 'pro' } }, want: { [main]: 'off', [dependent]: 'off' } },
    ];
    for (const { user, want } of cases) {
      const r = await qa(page, path(dependent), user);
      eq(want[dependent], r.variant, `QA of ${dependent} for ${user.user_id}: variant`);
      eq(want, r.flags, `QA of ${dependent} for ${user.user_id}: the rows per evaluated flag`);
      // What SDKs get agrees.
      const got = await until(async () => {
        const v = await sdk.vardata(state.fx.base, state.deployments.server.sdkKey, user, [dependent]);
        const keys = { [main]: v[main]?.key ?? 'off', [dependent]: v[dependent]?.key ?? 'off' };
        return JSON.stringify(keys) === JSON.stringify(want) ? keys : null;
      });
      ok(got, `remote evaluation of ${dependent} for ${user.user_id} does not give ${JSON.stringify(want)}`);
    }
  });

  await runner.step('qa-bucketing', ['activation', 'qa'], async () => {
    const { main } = state.flags;
    const dir = scratch();
    // Wait for the snapshot with the flag active (an inclusion is then served).
    const active = await until(async () => {
      const v = await sdk.vardata(state.fx.base, state.deployments.server.sdkKey, { user_id: 'qa-on-user' }, [main]);
      return v[main]?.key === 'on';
    });
    ok(active, `Production does not serve ${main} as active`);
    const served = await until(async () => {
      const { configs } = await sdk.flags(state.fx.base, state.deployments.server.sdkKey);
      const c = configs?.find((f) => f.key === main);
      return c && c.segments.some((s) => s.metadata?.segmentName === 'North America pro') && c.metadata?.flagVersion ? configs : null;
    });
    ok(served, `Production does not serve ${main} with its segments`);
    const seen = new Set();
    const users = [1, 2, 3, 4, 5, 6].map((i) => ({
      user_id: `u-us-${i}`,
      user_properties: { country: i % 2 ? 'US' : 'CA', plan: 'pro' },
    }));
    const expected = sdk.explain(state.fx, dir, served, users);
    for (const [i, user] of users.entries()) {
      const flag = expected[i].explanations.find((e) => e.flag_key === main);
      const variant = expected[i].results[main]?.key ?? 'off';
      const segment = flag.segments.find((s) => s.name === 'North America pro');
      const r = await qa(page, path(main), user);
      eq(variant, r.variant, `QA of ${main} for ${user.user_id} against vexil eval on the served config`);
      const remote = await sdk.vardata(state.fx.base, state.deployments.server.sdkKey, user, [main]);
      eq(variant, remote[main]?.key ?? 'off', `remote evaluation of ${main} for ${user.user_id}`);
      ok(r.explanation.includes('North America pro'), `QA of ${user.user_id}: the explanation must name the matched segment: ${r.explanation}`);
      const hash = segment?.bucket?.hash;
      ok(hash !== undefined && r.trace.includes(String(hash)), `QA of ${user.user_id}: the trace must show the bucketing hash ${hash}: ${r.trace}`);
      const at = segment?.bucket?.allocation_value;
      ok(at === undefined || r.explanation.includes(`lands at ${at} of 100`), `QA of ${user.user_id}: the explanation in words must say where the user lands (${at}): ${r.explanation}`);
      seen.add(variant);
    }
    console.log(`     qa-bucketing: variants seen ${JSON.stringify([...seen])}`);
  });
}
