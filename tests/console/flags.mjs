// Creating a flag in the dialog (key generated as the name is typed, then editable), its page,
// the Configure card (description, tags, deployments, the salt behind its warning) and the
// variants (generated key and value, JSON payloads, `off` and invalid JSON refused, edits).

import * as sdk from './sdk.mjs';
import {
  at,
  absent,
  eq,
  errorText,
  fail,
  fieldValue,
  fill,
  flagPath,
  need,
  noError,
  ok,
  setField,
  slug,
  submit,
  text,
  type,
  until,
  visit,
  where,
} from './lib.mjs';

/**
 * Creates a flag through dialog#create-flag, typing the name; `key` (optional) replaces the
 * generated key. Checks the generated key, the redirect and the new flag's page.
 */
export async function createFlag(page, { project, name, key, description = '', kind = 'release', mode = 'remote', typing = false }) {
  await at(page, '/flags');
  await (await need(page, 'button#create-flag-open', 'the create-flag button')).click();
  const dialog = page.locator('dialog#create-flag');
  try {
    await dialog.waitFor({ state: 'visible' });
  } catch {
    fail(`${where(page)}: clicking \`button#create-flag-open\` did not open a visible \`dialog#create-flag\``);
  }
  const form = 'dialog#create-flag form#create-flag-form';
  await setField(page, form, 'project', project);
  // Key by key for the walkthrough's flag; the others in one input event, which the
  // as-you-type script answers the same way.
  if (typing) await type(page, `${form} [name=name]`, name);
  else await setField(page, form, 'name', name);
  const generated = await until(async () => {
    const v = await fieldValue(page, form, 'key');
    return v === slug(name) ? v : null;
  }, 2000);
  eq(slug(name), generated ?? (await fieldValue(page, form, 'key')), `typing the name ${JSON.stringify(name)}: the key field`);
  if (key) {
    await setField(page, form, 'key', key);
    eq(key, await fieldValue(page, form, 'key'), 'the key field after editing it');
  }
  eq('user_id', await fieldValue(page, form, 'bucketing_unit'), 'the default bucketing unit');
  await fill(page, form, { description, type: kind, evaluation_mode: mode });
  await submit(page, form);
  const want = key ?? slug(name);
  const url = new URL(page.url());
  eq(`/flags/${want}`, url.pathname, `after creating ${name} the page`);
  eq(project, url.searchParams.get('project'), `after creating ${name} the page's ?project`);
  const h1 = await text(page, 'h1', "the flag's name");
  ok(h1.includes(name), `${where(page)}: h1 must name the flag ${JSON.stringify(name)}, got ${JSON.stringify(h1)}`);
  return want;
}

/** The state badge of the flag page: active, inactive or archived. */
export async function flagState(page) {
  const classes = await page
    .locator('.badge')
    .evaluateAll((bs) => bs.map((b) => [...b.classList]).flat().filter((c) => c.startsWith('state-')));
  ok(classes.length > 0, `${where(page)}: no \`.badge\` with a state-… class`);
  ok(new Set(classes).size === 1, `${where(page)}: state badges disagree: ${JSON.stringify(classes)}`);
  return classes[0].replace('state-', '');
}

/** Which of the action forms the flag page offers. */
export async function actions(page) {
  const out = [];
  for (const a of ['activate', 'deactivate', 'archive', 'unarchive']) {
    if ((await page.locator(`form#${a}`).count()) > 0) out.push(a);
  }
  return out;
}

const VARIANTS = '#variants';

/** Adds a variant through form#new-variant, typing its name; returns the page's error, if any. */
async function addVariant(page, path, { name, payload, description = '', typing = false }) {
  await at(page, path);
  const form = `section${VARIANTS} form#new-variant`;
  if (typing) await type(page, `${form} [name=name]`, name);
  else await setField(page, form, 'name', name);
  const want = slug(name);
  const generated = await until(async () => {
    const k = await fieldValue(page, form, 'key');
    const v = await fieldValue(page, form, 'value');
    return k === want && v === want ? [k, v] : null;
  }, 2000);
  eq(
    [want, want],
    generated ?? [await fieldValue(page, form, 'key'), await fieldValue(page, form, 'value')],
    `typing the variant name ${JSON.stringify(name)}: [key, value]`,
  );
  await fill(page, form, { payload: payload ?? '', description });
  await submit(page, form);
  return want;
}

export async function steps(runner, state) {
  const { page } = state;

  await runner.step('create-flag', ['projects'], async () => {
    const key = await createFlag(page, {
      project: state.project,
      name: 'New checkout',
      description: 'The one-page checkout',
      typing: true,
    });
    state.flags.main = key;
    eq('inactive', await flagState(page), 'the state of a new flag');
    eq(['activate', 'archive'], await actions(page), 'the action forms of a new flag');
  });

  await runner.step('settings', ['create-flag', 'deployments'], async () => {
    const path = flagPath(state, state.flags.main);
    const form = 'section#configure form#settings';
    await at(page, path);
    await need(page, form, 'the settings form');
    eq('New checkout', await fieldValue(page, form, 'name'), 'settings name');
    const deployment = `${form} input[name=deployments][value="${state.deployments.server.key}"]`;
    await need(page, deployment, 'the checkbox of the Production deployment');
    await need(page, `${form} input[name=deployments][value="${state.deployments.client.key}"]`, 'the checkbox of the Web deployment');
    ok(!(await page.locator(deployment).isChecked()), 'a new flag is in no deployment');
    await page.locator(deployment).check();
    await fill(page, form, { description: 'One-page checkout for everyone', tags: 'checkout, payments' });

    // Advanced: the salt is behind a warning that changing it moves users between variants.
    const advanced = `${form} details#advanced`;
    await need(page, advanced, 'the advanced settings');
    await page.locator(`${advanced} > summary`).first().click();
    eq('user_id', await fieldValue(page, advanced, 'bucketing_unit'), 'advanced: bucketing unit');
    const salt = await fieldValue(page, advanced, 'bucketing_salt');
    ok(salt && salt.length > 0, `advanced: a new flag has a bucketing salt, got ${JSON.stringify(salt)}`);
    const warning = page.locator(`${advanced} .warning`).first();
    ok(await warning.isVisible(), `${where(page)}: no visible \`.warning\` in details#advanced`);
    const words = (await warning.textContent()).toLowerCase();
    ok(words.includes('salt') && words.includes('variant'), `the salt warning must say that changing the salt moves users between variants, got ${JSON.stringify(words)}`);
    await setField(page, advanced, 'bucketing_salt', 'chk12345');
    await submit(page, form);
    await noError(page, 'saving the settings');

    await at(page, path);
    eq('One-page checkout for everyone', await fieldValue(page, form, 'description'), 'saved description');
    const tags = (await fieldValue(page, form, 'tags')).split(',').map((t) => t.trim()).sort();
    eq(['checkout', 'payments'], tags, 'saved tags');
    ok(await page.locator(deployment).isChecked(), 'the Production checkbox after saving');
    eq('chk12345', await fieldValue(page, advanced, 'bucketing_salt'), 'saved salt');

    // The deployment serves the flag now, with the new salt.
    const served = await until(async () => {
      const { configs } = await sdk.flags(state.fx.base, state.deployments.server.sdkKey);
      return configs?.find((c) => c.key === state.flags.main);
    });
    ok(served, 'Production does not serve new-checkout after it was ticked in the settings');
    const salts = served.segments.map((s) => s.bucket?.salt).filter((s) => s);
    ok(salts.every((s) => s === 'chk12345'), `served salts ${JSON.stringify(salts)} are not the saved salt`);
  });

  await runner.step('variants', ['create-flag'], async () => {
    const path = flagPath(state, state.flags.main);
    await at(page, path);
    await need(page, `section${VARIANTS} tr[data-variant="on"]`, "a release flag's default variant on");
    const blue = await addVariant(page, path, { name: 'Blue', payload: '{"color": "blue"}', description: 'Blue button' });
    await noError(page, 'adding variant Blue');
    const green = await addVariant(page, path, { name: 'Green button', payload: '{"color": "green", "steps": 2}', typing: true });
    await noError(page, 'adding variant Green button');
    state.variants = { blue, green };

    await addVariant(page, path, { name: 'off' });
    const reason = await errorText(page, 'a variant named off is refused');
    ok(/off|reserved/i.test(reason), `the refusal of a variant named off must give the reason, got ${JSON.stringify(reason)}`);
    await at(page, path);
    const keys = await page.locator(`section${VARIANTS} tr[data-variant]`).evaluateAll((rs) => rs.map((r) => r.dataset.variant));
    eq(['on', blue, green], keys, 'the variants after the refused ones');
    const payload = await fieldValue(page, `tr[data-variant="${green}"] form.edit-variant`, 'payload');
    eq({ color: 'green', steps: 2 }, JSON.parse(payload), 'the saved payload of green-button');
    eq('Blue button', await fieldValue(page, `tr[data-variant="${blue}"] form.edit-variant`, 'description'), 'the saved description of blue');

    // Editing a variant; then a throwaway variant is deleted.
    const edit = `section${VARIANTS} tr[data-variant="${blue}"] form.edit-variant`;
    await fill(page, edit, { description: 'The blue button', payload: '{"color": "navy"}' });
    await submit(page, edit);
    await noError(page, 'editing variant blue');
    await at(page, path);
    eq('The blue button', await fieldValue(page, edit, 'description'), 'blue description after editing');
    eq({ color: 'navy' }, JSON.parse(await fieldValue(page, edit, 'payload')), 'blue payload after editing');
    const temp = await addVariant(page, path, { name: 'Temp' });
    await noError(page, 'adding variant Temp');
    await at(page, path);
    await submit(page, `section${VARIANTS} tr[data-variant="${temp}"] form.delete-variant`);
    await noError(page, 'deleting variant temp');
    await at(page, path);
    await absent(page, `section${VARIANTS} tr[data-variant="${temp}"]`, 'the deleted variant');
  });

  await runner.step('stale-edit', ['settings'], async () => {
    // Two tabs on the same flag: the second saves a form read before the first saved, and must
    // not overwrite the first's change (the forms carry the version they were read at).
    const path = flagPath(state, state.flags.main);
    const form = 'section#configure form#settings';
    const other = await page.context().newPage();
    runner.watch(other);
    try {
      await at(other, path);
      await at(page, path);
      await fill(page, form, { description: 'One-page checkout, for everyone' });
      await submit(page, form);
      await noError(page, 'saving the settings');
      await fill(other, form, { description: 'A stale description' });
      await submit(other, form);
      const error = await errorText(other, 'saving a form read before another save is refused');
      ok(/version|chang|conflict|reload/i.test(error), `the refusal of a stale save must say the flag changed: ${JSON.stringify(error)}`);
      await visit(page, path);
      eq('One-page checkout, for everyone', await fieldValue(page, form, 'description'), 'the description after the stale save');
    } finally {
      await other.close();
    }
  });

  await runner.step('variant-json', ['variants'], async () => {
    const path = flagPath(state, state.flags.main);
    // The server refuses a payload that is not JSON, whatever the page's scripts check first:
    // the form's own fields, posted as the form posts them.
    await at(page, path);
    const answer = await page.locator(`section${VARIANTS} form#new-variant`).evaluate(async (form) => {
      const body = new URLSearchParams(new FormData(form));
      body.set('name', 'Broken');
      body.set('key', 'broken');
      body.set('value', 'broken');
      body.set('payload', '{"color": ');
      const r = await fetch(form.action, { method: 'POST', body });
      const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
      return { status: r.status, error: doc.querySelector('.error')?.textContent.trim() ?? null };
    });
    ok(answer.error, `POST of form#new-variant with an invalid JSON payload: no \`.error\` in the answer (status ${answer.status})`);
    ok(/json|payload/i.test(answer.error), `the server's refusal of invalid JSON must say so, got ${JSON.stringify(answer.error)}`);
    await at(page, path);
    await absent(page, `section${VARIANTS} tr[data-variant="broken"]`, 'a variant with an invalid payload');
    // In the page: the refusal is shown as `.error`.
    const form = `section${VARIANTS} form#new-variant`;
    await type(page, `${form} [name=name]`, 'Broken');
    await fill(page, form, { payload: '{"color": ' });
    const blocked = await page.locator(form).evaluate((f) => {
      const field = f.querySelector('[name=payload]');
      f.requestSubmit(f.querySelector('button[type=submit], button:not([type])'));
      return field.validationMessage;
    });
    if (blocked) {
      const shown = await page.locator('.error:visible').allTextContents();
      ok(
        shown.some((t) => t.trim()),
        `${where(page)}: invalid JSON in the payload is refused only by the browser's validation bubble (${JSON.stringify(blocked)}), not with a visible \`.error\``,
      );
    } else {
      await page.waitForLoadState('domcontentloaded');
      const invalid = await errorText(page, 'a payload that is not JSON is refused');
      ok(/json|payload/i.test(invalid), `the refusal of invalid JSON must say so, got ${JSON.stringify(invalid)}`);
    }
  });
}
