// The flag list: activate, deactivate, archive and unarchive on a flag of its own, then every
// filter of form#filters (search by name and key, project, state, type, evaluation mode, tag,
// archived) and the state badges, each checked against what the earlier steps made.

import { actions, createFlag, flagState } from './flags.mjs';
import { at, eq, flagPath, need, noError, ok, submit, where } from './lib.mjs';

/** The filters of form#filters and their neutral values. */
const FILTERS = ['q', 'project', 'state', 'type', 'tag', 'evaluation_mode', 'archived'];

/**
 * Applies `fields` through form#filters (the others reset) and submits it; returns
 * {key: [state classes]} of the rows of table#flags.
 */
async function filter(page, fields) {
  await at(page, '/flags');
  const form = 'form#filters';
  await need(page, form, 'the filters');
  const problems = await page.locator(form).evaluate(
    (f, [names, fields]) => {
      const out = [];
      for (const name of names) {
        const el = f.querySelector(`[name="${name}"]`);
        if (!el) {
          out.push(`no \`[name="${name}"]\``);
          continue;
        }
        const value = fields[name] ?? '';
        if (el.type === 'checkbox') el.checked = value === 'true';
        else if (el.tagName === 'SELECT' && ![...el.options].some((o) => o.value === value)) {
          out.push(`\`select[name="${name}"]\` has no option ${JSON.stringify(value)}`);
        } else el.value = value;
      }
      return out;
    },
    [FILTERS, fields],
  );
  ok(problems.length === 0, `${where(page)}: in \`${form}\`: ${problems.join('; ')}`);
  const hasButton = (await page.locator(`${form} :is(button[type=submit], button:not([type]), input[type=submit])`).count()) > 0;
  if (hasButton) {
    await submit(page, form);
  } else {
    await Promise.all([page.waitForURL((u) => u.search.length > 1), page.locator(form).evaluate((f) => f.requestSubmit())]);
  }
  await need(page, 'table#flags', 'the flags table');
  const rows = await page.locator('table#flags tr[data-flag]').evaluateAll((rs) =>
    rs.map((r) => [
      r.dataset.flag,
      [...r.querySelectorAll('.badge')].flatMap((b) => [...b.classList]).filter((c) => c.startsWith('state-')),
    ]),
  );
  return new Map(rows);
}

export async function steps(runner, state) {
  const { page } = state;

  await runner.step('state-changes', ['create-flag'], async () => {
    const key = await createFlag(page, { project: state.project, name: 'Old promo' });
    state.flags.old = key;
    const path = flagPath(state, key);
    for (const [action, want, offered] of [
      ['activate', 'active', ['deactivate', 'archive']],
      ['deactivate', 'inactive', ['activate', 'archive']],
      ['archive', 'archived', ['unarchive']],
    ]) {
      await at(page, path);
      await submit(page, `form#${action}`);
      await noError(page, `${action} ${key}`);
      await at(page, path);
      eq(want, await flagState(page), `${key} after ${action}`);
      eq(offered, await actions(page), `the actions offered after ${action}`);
    }
  });

  await runner.step('flag-list', ['more-flags', 'activation', 'state-changes'], async () => {
    const s = state.flags;
    const p = state.project;
    // What each flag is, as made by the earlier steps.
    const known = [
      { key: s.main, project: p, name: 'New checkout', state: 'active', type: 'release', mode: 'remote', tags: ['checkout', 'payments'] },
      { key: s.dependent, project: p, name: 'Express shipping', state: 'active', type: 'release', mode: 'remote', tags: [] },
      { key: s.local, project: p, name: 'Local banner', state: 'inactive', type: 'release', mode: 'local', tags: [] },
      { key: s.promo, project: state.otherProject, name: 'Promo banner', state: 'inactive', type: 'experiment', mode: 'remote', tags: [] },
      { key: s.old, project: p, name: 'Old promo', state: 'archived', type: 'release', mode: 'remote', tags: [] },
    ];
    if (s.beta) known.push({ key: s.beta, project: p, name: 'Beta program', state: 'inactive', type: 'release', mode: 'local', tags: [] });
    const search = (q) => (f) => f.name.toLowerCase().includes(q.toLowerCase()) || f.key.includes(q.toLowerCase());
    const live = (f) => f.state !== 'archived';
    const cases = [
      [{}, live],
      [{ q: 'checkout' }, (f) => live(f) && search('checkout')(f)],
      [{ q: s.dependent }, (f) => live(f) && search(s.dependent)(f)],
      [{ q: 'Banner' }, (f) => live(f) && search('Banner')(f)],
      [{ project: state.otherProject }, (f) => live(f) && f.project === state.otherProject],
      [{ state: 'active' }, (f) => f.state === 'active'],
      [{ state: 'inactive' }, (f) => f.state === 'inactive'],
      [{ type: 'experiment' }, (f) => live(f) && f.type === 'experiment'],
      [{ evaluation_mode: 'local' }, (f) => live(f) && f.mode === 'local'],
      [{ tag: 'payments' }, (f) => live(f) && f.tags.includes('payments')],
      [{ project: p, state: 'active', evaluation_mode: 'remote' }, (f) => f.project === p && f.state === 'active' && f.mode === 'remote'],
    ];
    for (const [fields, shown] of cases) {
      const rows = await filter(page, fields);
      const want = known.filter(shown).map((f) => f.key).sort();
      const got = known.filter((f) => rows.has(f.key)).map((f) => f.key).sort();
      eq(want, got, `${where(page)}: with filters ${JSON.stringify(fields)} the rows of table#flags among ${JSON.stringify(known.map((f) => f.key))}`);
      for (const f of known.filter((f) => rows.has(f.key))) {
        eq([`state-${f.state}`], rows.get(f.key), `${where(page)}: the state badge of ${f.key}`);
      }
    }
    const archived = await filter(page, { archived: 'true' });
    ok(archived.has(s.old), `${where(page)}: with archived, the archived flag ${s.old} is not listed`);
    eq(['state-archived'], archived.get(s.old), `the badge of the archived ${s.old}`);

    // Unarchiving brings it back, inactive.
    await at(page, flagPath(state, s.old));
    await submit(page, 'form#unarchive');
    await noError(page, `unarchiving ${s.old}`);
    await at(page, flagPath(state, s.old));
    eq('inactive', await flagState(page), `${s.old} after unarchiving`);
    eq(['activate', 'archive'], await actions(page), 'the actions offered after unarchiving');
    ok((await filter(page, {})).has(s.old), `the unarchived ${s.old} is not listed`);
  });
}
