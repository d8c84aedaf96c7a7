// The Allocation card and QA: two rule-based segments built with the add/remove buttons (one
// with two conditions, one on a user field), rollout percentages, weights 1:4 whose shares read
// 20% / 80%, All Other Users at 0%, individual inclusions; then "Test a user" for users whose
// variant the rules alone decide (included, not matching, a 100% segment), with the
// explanation naming the segment.

import {
  at,
  eq,
  fail,
  fieldValue,
  fill,
  flagPath,
  need,
  noError,
  number,
  ok,
  setField,
  submit,
  where,
} from './lib.mjs';

/** Every operator of the engine, as the condition's `op` select must offer them. */
export const OPERATORS = [
  'is',
  'is not',
  'contains',
  'does not contain',
  'less',
  'less or equal',
  'greater',
  'greater or equal',
  'version less',
  'version less or equal',
  'version greater',
  'version greater or equal',
  'set is',
  'set is not',
  'set contains',
  'set does not contain',
  'set contains any',
  'set does not contain any',
  'regex match',
  'regex does not match',
];

export const TARGETS = ['user_field', 'user_property', 'cohort', 'group_name', 'group_property', 'group_cohort'];

const FORM = 'section#allocation form#allocation-form';
/** The save button: a submit button that is not one of the editing buttons. */
const SAVE =
  ':is(button[type=submit], button:not([type]), input[type=submit]):not(#add-segment, .remove-segment, .add-condition, .remove-condition)';

/** The text of the `.share` next to the input `name` (the nearest one after it). */
export async function share(page, name) {
  const input = await need(page, `${FORM} [name="${name}"]`, `weight ${name}`);
  const got = await input.evaluate((el) => {
    for (let node = el.parentElement; node; node = node.parentElement) {
      const shares = [...node.querySelectorAll('.share')];
      if (shares.length === 0) continue;
      const after = shares.find((s) => el.compareDocumentPosition(s) & Node.DOCUMENT_POSITION_FOLLOWING);
      return (after ?? shares[shares.length - 1]).textContent.trim();
    }
    return null;
  });
  ok(got !== null, `${where(page)}: no \`.share\` next to \`[name="${name}"]\``);
  return got;
}

/** Checks the shares of the weights `names` against the percentages `want` (±0.5). */
async function shares(page, names, want) {
  const got = [];
  for (const n of names) got.push(await share(page, n));
  const close = got.every((g, i) => Math.abs(number(g) - want[i]) <= 0.5);
  ok(close, `${where(page)}: shares of ${names.join(', ')}: expected ${JSON.stringify(want)} %, got ${JSON.stringify(got)}`);
}

/** Makes segment `i` have exactly `n` conditions with the add/remove buttons (removing the first). */
async function conditions(page, i, n) {
  const segment = page.locator(`${FORM} #segments .segment`).nth(i);
  for (let guard = 0; guard < 10; guard++) {
    const have = await segment.locator('.condition').count();
    if (have === n) return;
    if (have < n) await segment.locator('button.add-condition').first().click();
    else await segment.locator('.condition').first().locator('button.remove-condition').first().click();
    await page.waitForFunction(
      ([sel, i, have]) => document.querySelectorAll(sel)[i]?.querySelectorAll('.condition').length !== have,
      [`${FORM} #segments .segment`, i, have],
    );
  }
  fail(`${where(page)}: segment ${i} does not get to ${n} conditions with button.add-condition / button.remove-condition`);
}

/**
 * Makes #segments hold exactly `n` segments with button#add-segment / button.remove-segment
 * (removing the first, so that the names left need not start at 0).
 */
async function segments(page, n) {
  const sel = `${FORM} #segments .segment`;
  for (let guard = 0; guard < 10; guard++) {
    const have = await page.locator(sel).count();
    if (have === n) return;
    if (have < n) await (await need(page, `${FORM} button#add-segment`, 'the add-segment button')).click();
    else await page.locator(sel).first().locator('button.remove-segment').first().click();
    await page.waitForFunction(([sel, have]) => document.querySelectorAll(sel).length !== have, [sel, have]);
  }
  fail(`${where(page)}: #segments does not get to ${n} segments`);
}

/**
 * The name prefixes of the segments on the page and of their conditions, as the page numbers
 * them: [{segment: 'segments[1]', conditions: ['segments[1].conditions[2]', ...]}].
 */
async function layout(page) {
  return page.locator(`${FORM} #segments .segment`).evaluateAll((segments) =>
    segments.map((s) => ({
      segment: s.querySelector('input[name$=".name"]:not(.condition *)')?.name.replace(/\.name$/, '') ?? null,
      conditions: [...s.querySelectorAll('.condition')].map(
        (c) => c.querySelector('select[name$=".target"]')?.name.replace(/\.target$/, '') ?? null,
      ),
    })),
  );
}

/** Every named field of `form`: name -> value (checked for checkboxes). */
async function values(page, form) {
  return page.locator(form).evaluate((f) =>
    Object.fromEntries([...f.elements].filter((e) => e.name).map((e) => [e.name, e.type === 'checkbox' ? e.checked : e.value])),
  );
}

/** Fills the condition whose fields are named `prefix.…`. */
async function condition(page, prefix, { target, name, groupType, op, values }) {
  const fields = { [`${prefix}.target`]: target, [`${prefix}.op`]: op, [`${prefix}.values`]: values.join('\n') };
  if (name !== undefined) fields[`${prefix}.name`] = name;
  if (groupType !== undefined) fields[`${prefix}.group_type`] = groupType;
  await fill(page, FORM, fields);
}

/** The options of a select, by value. */
async function options(page, selector) {
  const el = await need(page, selector, 'a select');
  return el.evaluate((s) => [...s.options].map((o) => o.value));
}

/** The configured allocation of new-checkout (also what the checks after saving compare). */
function plan(v) {
  return {
    segments: [
      {
        name: 'North America pro',
        percentage: 50,
        weights: { on: 0, [v.blue]: 1, [v.green]: 4 },
        shares: [0, 20, 80],
        conditions: [
          { target: 'user_property', name: 'country', op: 'is', values: ['US', 'CA'] },
          { target: 'user_property', name: 'plan', op: 'is', values: ['pro'] },
        ],
      },
      {
        name: 'Staff',
        percentage: 100,
        weights: { on: 0, [v.blue]: 0, [v.green]: 1 },
        shares: [0, 0, 100],
        conditions: [{ target: 'user_field', name: 'user_id', op: 'contains', values: ['@vexil.dev'] }],
      },
    ],
    aou: { percentage: 0, weights: { on: 1, [v.blue]: 1, [v.green]: 1 }, shares: [33.3, 33.3, 33.3] },
    inclusions: { on: ['qa-on-user'], [v.green]: ['qa-included-user'] },
  };
}

/**
 * Runs "Test a user" on the flag page: {variant, flags: {key: variant}, explanation, trace}:
 * the explanation in words, and the engine's trace (opened with one click).
 */
export async function qa(page, path, user) {
  // The answer of a QA run holds the form again: the next user is tested from there.
  const key = new URL(path, 'http://x').pathname;
  const here = new URL(page.url()).pathname;
  if (!(here === key || here === `${key}/qa`) || (await page.locator('section#qa form#qa-form').count()) === 0) {
    await at(page, path);
  }
  const form = 'section#qa form#qa-form';
  await need(page, form, 'the QA form');
  await fill(page, form, {
    user_id: user.user_id ?? '',
    device_id: user.device_id ?? '',
    user_properties: JSON.stringify(user.user_properties ?? {}),
    groups: user.groups ? JSON.stringify(user.groups) : '',
  });
  await submit(page, form, { watch: 'section#qa' });
  await noError(page, `QA of ${JSON.stringify(user)}`);
  await need(page, '#qa-result', 'the QA result');
  const variant = await page.locator('#qa-result .variant').evaluateAll((vs) => {
    const top = vs.find((v) => !v.closest('tr'));
    return top ? top.textContent.trim() : null;
  });
  ok(variant !== null, `${where(page)}: \`#qa-result\` has no \`.variant\` outside the per-flag rows`);
  const flags = Object.fromEntries(
    await page
      .locator('#qa-result tr[data-flag]')
      .evaluateAll((rs) => rs.map((r) => [r.dataset.flag, r.querySelector('.variant')?.textContent.trim() ?? null])),
  );
  // The explanation people read: one sentence per segment examined (the engine's trace is
  // one click away, under it).
  const explanation = (await (await need(page, '#qa-result #qa-steps', 'the explanation in words')).innerText()).replace(/\s+/g, ' ');
  await (await need(page, '#qa-result details#qa-trace summary', 'the engine trace')).click();
  const trace = (await (await need(page, '#qa-result details#qa-trace .explanation', 'the engine trace')).innerText()).replace(/\s+/g, ' ');
  return { variant, flags, explanation, trace };
}

export async function steps(runner, state) {
  const { page } = state;

  await runner.step('allocation', ['variants'], async () => {
    const path = flagPath(state, state.flags.main);
    const p = plan(state.variants);
    const names = Object.keys(p.segments[0].weights);
    await at(page, path);
    await need(page, FORM, 'the allocation form');

    // Build three segments and remove the last, and three conditions and remove one.
    await segments(page, 3);
    await segments(page, 2);
    for (const [i, s] of p.segments.entries()) {
      await conditions(page, i, s.conditions.length + 1);
      await conditions(page, i, s.conditions.length);
    }
    const first = (await layout(page))[0].conditions[0];
    eq(TARGETS, (await options(page, `${FORM} select[name="${first}.target"]`)).filter((t) => t), 'the condition target options');
    const ops = await options(page, `${FORM} select[name="${first}.op"]`);
    const missing = OPERATORS.filter((o) => !ops.includes(o));
    ok(missing.length === 0, `${where(page)}: the op select lacks ${JSON.stringify(missing)} (options: ${JSON.stringify(ops)})`);

    let shape = await layout(page);
    for (const [i, s] of p.segments.entries()) {
      const { segment, conditions: cs } = shape[i];
      ok(segment && cs.every((c) => c), `${where(page)}: segment ${i} has no \`segments[i].name\` or a condition without \`….target\` (${JSON.stringify(shape)})`);
      await fill(page, FORM, { [`${segment}.name`]: s.name, [`${segment}.percentage`]: s.percentage });
      for (const [j, c] of s.conditions.entries()) await condition(page, cs[j], c);
      await fill(page, FORM, Object.fromEntries(Object.entries(s.weights).map(([v, w]) => [`${segment}.weights.${v}`, w])));
      await shares(page, names.map((v) => `${segment}.weights.${v}`), s.shares);
    }
    await fill(page, FORM, {
      'aou.percentage': p.aou.percentage,
      ...Object.fromEntries(Object.entries(p.aou.weights).map(([v, w]) => [`aou.weights.${v}`, w])),
      ...Object.fromEntries(Object.entries(p.inclusions).map(([v, ids]) => [`inclusions.${v}`, ids.join('\n')])),
    });
    await shares(page, names.map((v) => `aou.weights.${v}`), p.aou.shares);
    await submit(page, FORM, { button: SAVE });
    await noError(page, 'saving the allocation');

    // Everything reads back after a reload, in order, shares included.
    await at(page, path);
    shape = await layout(page);
    eq(p.segments.length, shape.length, 'saved segments');
    const saved = await values(page, FORM);
    const lines = (v) => (v ?? '').split('\n').map((l) => l.trim()).filter((l) => l);
    for (const [i, s] of p.segments.entries()) {
      const { segment, conditions: cs } = shape[i];
      eq([s.name, String(s.percentage)], [saved[`${segment}.name`], saved[`${segment}.percentage`]], `segment ${i} name and percentage`);
      eq(s.conditions.length, cs.length, `segment ${i} conditions`);
      for (const [j, c] of s.conditions.entries()) {
        const got = {
          target: saved[`${cs[j]}.target`],
          name: saved[`${cs[j]}.name`],
          op: saved[`${cs[j]}.op`],
          values: lines(saved[`${cs[j]}.values`]),
        };
        eq(c, got, `segment ${i} condition ${j}`);
      }
      const weights = Object.fromEntries(Object.keys(s.weights).map((v) => [v, number(saved[`${segment}.weights.${v}`])]));
      eq(s.weights, weights, `segment ${i} weights`);
      await shares(page, names.map((v) => `${segment}.weights.${v}`), s.shares);
    }
    eq('0', saved['aou.percentage'], 'All Other Users percentage');
    for (const [v, ids] of Object.entries(p.inclusions)) eq(ids, lines(saved[`inclusions.${v}`]), `inclusions of ${v}`);
  });

  await runner.step('qa', ['allocation'], async () => {
    const path = flagPath(state, state.flags.main);
    const key = state.flags.main;
    const { green } = state.variants;
    // Individually included: the inclusion decides, whatever the properties.
    let r = await qa(page, path, { user_id: 'qa-included-user', user_properties: { country: 'US', plan: 'pro' } });
    eq(green, r.variant, 'QA of the included user: variant');
    eq(green, r.flags[key], `QA of the included user: row tr[data-flag=${key}]`);
    r = await qa(page, path, { user_id: 'qa-on-user' });
    eq('on', r.variant, 'QA of the user included in on: variant');
    // Not matching the first segment, and All Other Users at 0%: off; the explanation says
    // which segment was examined and which condition failed.
    r = await qa(page, path, { user_id: 'u-de-1', user_properties: { country: 'DE', plan: 'pro' } });
    eq('off', r.variant, 'QA of a user in DE: variant');
    ok(r.explanation.includes('North America pro'), `QA of a user in DE: the explanation must name the segment examined: ${r.explanation}`);
    ok(r.explanation.includes('country'), `QA of a user in DE: the explanation must name the failed condition (country): ${r.explanation}`);
    // A 100% segment with one weighted variant on a user field.
    r = await qa(page, path, { user_id: 'ana@vexil.dev', user_properties: { country: 'DE' } });
    eq(green, r.variant, 'QA of a staff user: variant');
    ok(r.explanation.includes('Staff'), `QA of a staff user: the explanation must name the segment Staff: ${r.explanation}`);
    // A matching user: bucketed in the first segment (checked against the SDKs once active).
    r = await qa(page, path, { user_id: 'u-us-1', user_properties: { country: 'US', plan: 'pro' } });
    ok(['off', state.variants.blue, green].includes(r.variant), `QA of a user in the first segment: variant ${r.variant}`);
    ok(r.explanation.includes('North America pro'), `QA of a matching user: the explanation must name the segment: ${r.explanation}`);
  });
}
