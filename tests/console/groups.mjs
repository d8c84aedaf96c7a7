// Mutual-exclusion and holdout groups: the project's Groups page (a refused creation keeps
// what was typed; the slot editor's add and remove buttons; keys generated with the kind's
// prefix), two experiments put into a two-slot group (one per slot) and a holdout from their
// Dependencies cards (a held slot refused until shared, the reach the groups leave), both
// activated, the group's page (members, slots, fields locked with the reason, archiving
// confirmed and refused while a member is active, history), then QA of one experiment for a
// user the holdout holds out and a user in the other slot: both `off`, with the group in the
// explanation, as remote evaluation serves them.

import { qa } from './allocation.mjs';
import { createFlag, flagState } from './flags.mjs';
import {
  at,
  absent,
  blockingLinks,
  eq,
  errorText,
  fieldValue,
  fill,
  flagPath,
  need,
  noError,
  ok,
  submit,
  text,
  type,
  until,
  where,
} from './lib.mjs';
import * as sdk from './sdk.mjs';

const JOIN_MUTEX = 'section#dependencies form#join-mutex';
const JOIN_HOLDOUT = 'section#dependencies form#join-holdout';

/** The percentages of the slot editor of `form`, in order. */
async function slotValues(page, form) {
  return page.locator(`${form} fieldset#slots .slot-row input[name=slots]`).evaluateAll((is) => is.map((i) => i.value));
}

/** The numbers the slot editor's rows show. */
async function slotNumbers(page, form) {
  return page.locator(`${form} fieldset#slots .slot-row .slot-number`).evaluateAll((ns) => ns.map((n) => n.textContent.trim()));
}

/** Sets the slot editor of `form` to `percentages`, with its add and remove buttons. */
async function setSlots(page, form, percentages) {
  const rows = `${form} fieldset#slots .slot-row`;
  while ((await page.locator(rows).count()) < percentages.length) {
    await (await need(page, `${form} button#add-slot`, 'the add-slot button')).click();
  }
  while ((await page.locator(rows).count()) > percentages.length) {
    await page.locator(`${rows} button.remove-slot`).last().click();
  }
  const inputs = page.locator(`${rows} input[name=slots]`);
  for (const [i, p] of percentages.entries()) await inputs.nth(i).fill(String(p));
}

/** QA through the JSON API (the search for users of a given kind; the page is checked apart). */
async function evaluate(fx, project, key, user) {
  const r = await fetch(`${fx.base}/api/v1/flags/${key}/evaluate?project=${project}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${fx.adminKey}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ user }),
  });
  if (r.status !== 200) throw new Error(`POST /api/v1/flags/${key}/evaluate: ${r.status} ${await r.text()}`);
  return r.json();
}

/** Makes an experiment served in Production to everyone (control and treatment 1:1). */
async function experiment(page, state, name) {
  const key = await createFlag(page, { project: state.project, name, kind: 'experiment', mode: 'local' });
  const path = flagPath(state, key);
  await at(page, path);
  await page.locator(`form#settings input[name=deployments][value="${state.deployments.server.key}"]`).check();
  await submit(page, 'section#configure form#settings');
  await noError(page, `saving the settings of ${key}`);
  await at(page, path);
  const form = 'section#allocation form#allocation-form';
  await fill(page, form, { 'aou.percentage': 100, 'aou.weights.control': 1, 'aou.weights.treatment': 1 });
  await submit(page, form, {
    button:
      ':is(button[type=submit], button:not([type]), input[type=submit]):not(#add-segment, .remove-segment, .add-condition, .remove-condition)',
  });
  await noError(page, `saving the allocation of ${key}`);
  return key;
}

/** Chooses slot `index` of `group` in the open flag page's join form and submits it. */
async function joinSlot(page, group, index, { shared = false } = {}) {
  await need(page, JOIN_MUTEX, 'the form that joins a mutual-exclusion group');
  await page.locator(`${JOIN_MUTEX} input[name=slot][value="${group}/${index}"]`).check();
  await page.locator(`${JOIN_MUTEX} input[name=shared]`).setChecked(shared);
  await submit(page, JOIN_MUTEX);
}

export async function steps(runner, state) {
  const { page } = state;
  const groups = () => `/projects/${state.project}/groups`;

  await runner.step('groups-create', ['deployments'], async () => {
    await at(page, `/projects/${state.project}`);
    await (await need(page, 'a#groups-link', 'the link to the groups')).click();
    await page.waitForURL((u) => u.pathname === groups());
    await need(page, 'table#groups', 'the groups table');

    // A refused creation keeps what was typed, and says why.
    const mutex = 'form#new-mutex';
    await type(page, `${mutex} [name=name]`, 'Hero tests');
    eq('mutex-hero-tests', await fieldValue(page, mutex, 'key'), 'the key generated from the name, with its prefix');
    await fill(page, mutex, { description: 'Tests of the hero banner' });
    eq(['1', '2'], await slotNumbers(page, mutex), 'the slot rows of a new group');
    await setSlots(page, mutex, [60, 30, 20]);
    eq(['1', '2', '3'], await slotNumbers(page, mutex), 'the slot rows after adding one');
    const total = await text(page, `${mutex} .slot-total`, 'the running total of the slots');
    ok(total.includes('110%'), `${where(page)}: the slot total must read 110%: ${JSON.stringify(total)}`);
    await page.locator(`${mutex} .slot-row button.remove-slot`).nth(1).click();
    eq(['1', '2'], await slotNumbers(page, mutex), 'the rows renumbered after removing the second');
    eq(['60', '20'], await slotValues(page, mutex), 'the slots left after removing the second');
    await setSlots(page, mutex, [60, 50]);
    await submit(page, mutex);
    const error = await errorText(page, 'slots over 100% are refused');
    ok(error.includes('110'), `the refusal must give the total: ${JSON.stringify(error)}`);
    eq('Hero tests', await fieldValue(page, mutex, 'name'), 'the name after the refusal');
    eq('Tests of the hero banner', await fieldValue(page, mutex, 'description'), 'the description after the refusal');
    eq(['60', '50'], await slotValues(page, mutex), 'the slots after the refusal');

    await setSlots(page, mutex, [50, 50]);
    await submit(page, mutex);
    await noError(page, 'creating the mutual-exclusion group');
    eq(`/projects/${state.project}/mutex-groups/mutex-hero-tests`, new URL(page.url()).pathname, 'the page after creating the group');
    eq('mutex-hero-tests', await text(page, '#group-key', 'the group key'), 'the new group');
    state.mutex = 'mutex-hero-tests';

    await at(page, groups());
    const holdout = 'form#new-holdout';
    await type(page, `${holdout} [name=name]`, 'Holdout Q4');
    eq('holdout-q4', await fieldValue(page, holdout, 'key'), 'a name that starts with the prefix keeps it once');
    await fill(page, holdout, { percentage: 5, inclusions_ids: 'always-held-out' });
    await submit(page, holdout);
    await noError(page, 'creating the holdout group');
    state.holdout = 'holdout-q4';
    await at(page, groups());
    for (const [key, type] of [[state.mutex, 'mutual_exclusion'], [state.holdout, 'holdout']]) {
      await need(page, `table#groups tr[data-group="${key}"][data-type="${type}"]`, `the row of ${key}`);
    }
  });

  await runner.step('groups-join', ['groups-create', 'create-flag'], async () => {
    const a = await experiment(page, state, 'Hero test A');
    const b = await experiment(page, state, 'Hero test B');
    state.heroes = { a, b };
    const { mutex, holdout } = state;

    // A takes slot 1 and the holdout.
    await at(page, flagPath(state, a));
    const free = await page.locator(`${JOIN_MUTEX} fieldset[data-group="${mutex}"] .free`).count();
    eq(2, free, `${where(page)}: the free slots of ${mutex} offered to ${a}`);
    await joinSlot(page, mutex, 1);
    await noError(page, `${a} joining slot 1`);
    await at(page, flagPath(state, a));
    await fill(page, JOIN_HOLDOUT, { holdout });
    await submit(page, JOIN_HOLDOUT);
    await noError(page, `${a} joining ${holdout}`);
    await at(page, flagPath(state, a));
    eq('slot-1', await text(page, `#mutex-group p[data-group="${mutex}"] .slot`, 'the slot of A'), `the slot ${a} runs in`);
    await need(page, `#holdouts li[data-holdout="${holdout}"] a[href="/projects/${state.project}/holdouts/${holdout}"]`, 'the holdout, linked');
    await absent(page, JOIN_HOLDOUT, 'the join form when no other holdout is left');
    const reach = await text(page, '#max-reach', 'the largest reach');
    ok(reach.includes('at most 47.5% of users'), `${where(page)}: holdout 5% and slot 50% leave at most 47.5%: ${JSON.stringify(reach)}`);

    // B: slot 1 is held by A, refused until shared; the choice survives the refusal.
    await at(page, flagPath(state, b));
    const held = await text(page, `${JOIN_MUTEX} fieldset[data-group="${mutex}"] label[data-slot="1"]`, 'slot 1 offered to B');
    ok(held.includes(a), `${where(page)}: slot 1 must say ${a} holds it: ${JSON.stringify(held)}`);
    await joinSlot(page, mutex, 1);
    const refusal = await errorText(page, 'joining a held slot without sharing it');
    ok(refusal.includes(a), `the refusal must name ${a}: ${JSON.stringify(refusal)}`);
    const links = await blockingLinks(page);
    ok(links.some((h) => h?.startsWith(`/flags/${a}`)), `${where(page)}: \`.blocking a\` must link to ${a}, got ${JSON.stringify(links)}`);
    ok(await page.locator(`${JOIN_MUTEX} input[name=slot][value="${mutex}/1"]`).isChecked(), `${where(page)}: the slot chosen is no longer chosen after the refusal`);
    await joinSlot(page, mutex, 2);
    await noError(page, `${b} joining slot 2`);
    await at(page, flagPath(state, b));
    await fill(page, JOIN_HOLDOUT, { holdout });
    await submit(page, JOIN_HOLDOUT);
    await noError(page, `${b} joining ${holdout}`);

    for (const key of [a, b]) {
      await at(page, flagPath(state, key));
      await submit(page, 'form#activate');
      await noError(page, `activating ${key}`);
      await at(page, flagPath(state, key));
      eq('active', await flagState(page), `${key} after activating`);
    }
  });

  await runner.step('group-page', ['groups-join'], async () => {
    const { a, b } = state.heroes;
    const path = `/projects/${state.project}/mutex-groups/${state.mutex}`;
    await at(page, path);
    for (const [slot, key] of [[1, a], [2, b]]) {
      await need(page, `table#slot-table tr[data-slot="${slot}"] a[href^="/flags/${key}"]`, `${key} in slot ${slot}`);
      await need(page, `table#members tr[data-member="${key}"] .badge.state-active`, `${key} listed as an active member`);
    }
    const reason = await text(page, '#locked-reason', 'why the slots are fixed');
    ok(reason.includes(a) && reason.includes(b), `the reason must name the active members: ${JSON.stringify(reason)}`);
    ok(await page.locator('form#group-settings fieldset#slots input[name=slots]').first().isDisabled(), `${where(page)}: the slots must be disabled while members are active`);
    ok(await page.locator('form#group-settings [name=bucketing_salt]').isDisabled(), `${where(page)}: the salt must be disabled while members are active`);

    // Archiving asks first, then is refused while members are active.
    let asked = null;
    page.once('dialog', (d) => {
      asked = d.message();
      d.accept();
    });
    await submit(page, 'form#archive-group');
    ok(asked?.includes(state.mutex), `archiving must ask first, naming the group (asked ${JSON.stringify(asked)})`);
    const refusal = await errorText(page, 'archiving a group with active members');
    ok(refusal.includes(a) || refusal.includes(b), `the refusal must name an active member: ${JSON.stringify(refusal)}`);

    // A change that moves no user is free; it shows in the history.
    await at(page, path);
    await fill(page, 'form#group-settings', { name: 'Hero banner tests' });
    await submit(page, 'form#group-settings');
    await noError(page, 'renaming the group');
    await at(page, path);
    ok((await text(page, 'h1', 'the group name')).includes('Hero banner tests'), `${where(page)}: the new name`);
    await (await need(page, 'a#history-link', 'the history link')).click();
    await need(page, 'table#versions tr[data-version="2"] .summary', 'version 2 in the history');
    const summary = await text(page, 'table#versions tr[data-version="2"] .summary', 'what version 2 changed');
    ok(summary.includes('name'), `${where(page)}: version 2 must say the name changed: ${JSON.stringify(summary)}`);
    await need(page, 'table#versions tr[data-version="1"] form.restore', 'the restore button of version 1');
  });

  await runner.step('groups-qa', ['groups-join'], async () => {
    const { a } = state.heroes;
    const { mutex, holdout } = state;
    // Users found by evaluating candidates: one the holdout holds out (its variant `holdout`;
    // `on` lets users through), one in the other slot.
    // And one A serves, to know that Production serves A active.
    let heldOut = null;
    let otherSlot = null;
    let served = null;
    for (let i = 0; i < 1000 && !(heldOut && otherSlot && served); i++) {
      const user = { user_id: `hero-${i}` };
      const r = (await evaluate(state.fx, state.project, a, user)).results;
      const inHoldout = r[holdout]?.key === 'holdout';
      if (inHoldout) heldOut ??= user;
      else if (r[mutex]?.key === 'slot-2') otherSlot ??= user;
      else if (r[mutex]?.key === 'slot-1' && r[a] && r[a].key !== 'off') served ??= user;
    }
    ok(heldOut && otherSlot && served, `no user found held out (${JSON.stringify(heldOut)}), in slot-2 (${JSON.stringify(otherSlot)}) or served (${JSON.stringify(served)})`);
    const active = await until(async () => {
      const v = await sdk.vardata(state.fx.base, state.deployments.server.sdkKey, served, [a]);
      return v[a]?.key;
    });
    ok(active, `Production does not serve ${a} to ${served.user_id}, who is in slot-1 and not held out`);
    for (const [user, group, variant] of [[heldOut, holdout, 'holdout'], [otherSlot, mutex, 'slot-2']]) {
      const r = await qa(page, flagPath(state, a), user);
      eq('off', r.variant, `QA of ${a} for ${user.user_id} (${group} gives ${variant})`);
      eq(variant, r.flags[group], `QA of ${a} for ${user.user_id}: the row of ${group}`);
      ok(r.explanation.includes(group), `QA of ${user.user_id}: the explanation must name ${group}: ${r.explanation}`);
      const v = await sdk.vardata(state.fx.base, state.deployments.server.sdkKey, user, [a]);
      eq('off', v[a]?.key ?? 'off', `remote evaluation of ${a} for ${user.user_id}`);
    }
    console.log(`     groups-qa: held out ${heldOut.user_id}, in slot-2 ${otherSlot.user_id}`);
  });
}
