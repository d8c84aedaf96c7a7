// History: every save is a version with who and what, two versions compare field by field, and
// restoring an old version makes a new version holding the old content.

import {
  at,
  eq,
  fieldValue,
  fill,
  flagPath,
  need,
  noError,
  ok,
  setField,
  submit,
  where,
} from './lib.mjs';

/** The rows of table#versions: [{version, actor, summary, restore}], as on the page. */
async function versions(page) {
  await need(page, 'table#versions tr[data-version]', 'the versions');
  return page.locator('table#versions tr[data-version]').evaluateAll((rs) =>
    rs.map((r) => ({
      version: Number(r.dataset.version),
      actor: r.querySelector('.actor')?.textContent.trim() ?? null,
      summary: r.querySelector('.summary')?.textContent.replace(/\s+/g, ' ').trim() ?? null,
      restore: Boolean(r.querySelector('form.restore')),
    })),
  );
}

async function openHistory(page, state, key) {
  await at(page, flagPath(state, key));
  const link = await need(page, 'a#history-link', 'the link to the history');
  eq(`/flags/${key}/history?project=${state.project}`, await link.getAttribute('href'), 'a#history-link href');
  await link.click();
  await page.waitForURL(`**/flags/${key}/history**`);
}

export async function steps(runner, state) {
  const { page } = state;

  await runner.step('history', ['settings', 'variants'], async () => {
    await openHistory(page, state, state.flags.main);
    const rows = await versions(page);
    const numbers = rows.map((r) => r.version).sort((a, b) => a - b);
    // Created, settings, four variant changes (add, add, edit, add, delete): at least 7.
    ok(numbers.length >= 7, `${where(page)}: expected a version per save (at least 7), got ${JSON.stringify(numbers)}`);
    eq(1, numbers[0], 'the first version');
    eq([...new Set(numbers)].length, numbers.length, 'versions are distinct');
    for (const r of rows) {
      ok(r.actor, `${where(page)}: version ${r.version} has no \`.actor\``);
      ok(r.summary, `${where(page)}: version ${r.version} has no \`.summary\``);
    }
    const latest = Math.max(...numbers);
    const withoutRestore = rows.filter((r) => !r.restore && r.version !== latest).map((r) => r.version);
    eq([], withoutRestore, `${where(page)}: versions without \`form.restore\``);
    const settings = rows.find((r) => r.version === 2);
    ok(/description|tags|deployment|salt/i.test(settings.summary), `version 2 (the settings save) must say what changed: ${JSON.stringify(settings.summary)}`);
    ok(new Set(rows.map((r) => r.summary)).size > 1, `every version has the same summary: ${JSON.stringify(rows[0].summary)}`);
  });

  await runner.step('compare', ['history'], async () => {
    await openHistory(page, state, state.flags.main);
    const form = 'form#compare';
    eq('get', ((await (await need(page, form, 'the compare form')).getAttribute('method')) ?? 'get').toLowerCase(), 'form#compare method');
    await setField(page, form, 'from', '1');
    await setField(page, form, 'to', '2');
    await submit(page, form);
    const changes = await page.locator('#changes li').allInnerTexts();
    ok(changes.length > 0, `${where(page)}: comparing versions 1 and 2 shows no \`#changes li\``);
    for (const field of ['description', 'tags', 'deployments', 'salt']) {
      ok(changes.some((c) => c.toLowerCase().includes(field)), `${where(page)}: the changes from 1 to 2 must name ${field}: ${JSON.stringify(changes)}`);
    }
    ok(!changes.some((c) => /variant|segment/i.test(c)), `${where(page)}: versions 1 and 2 have the same variants and segments, yet: ${JSON.stringify(changes)}`);
  });

  await runner.step('restore', ['more-flags'], async () => {
    const key = state.flags.local;
    const path = flagPath(state, key);
    await at(page, path);
    const original = await fieldValue(page, 'form#settings', 'description');
    await fill(page, 'section#configure form#settings', { description: 'Changed banner' });
    await submit(page, 'section#configure form#settings');
    await noError(page, 'saving the settings');
    await openHistory(page, state, key);
    const before = await versions(page);
    const first = Math.min(...before.map((r) => r.version));
    const last = Math.max(...before.map((r) => r.version));
    await submit(page, `table#versions tr[data-version="${first}"] form.restore`);
    await noError(page, `restoring version ${first}`);
    eq(`/flags/${key}`, new URL(page.url()).pathname, 'after restoring, the page');
    eq(original, await fieldValue(page, 'form#settings', 'description'), 'the description after restoring version 1');
    await openHistory(page, state, key);
    const after = await versions(page);
    ok(
      after.some((r) => r.version > last),
      `${where(page)}: restoring made no new version (versions: ${JSON.stringify(after.map((r) => r.version))})`,
    );
  });
}
