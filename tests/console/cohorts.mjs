// Cohorts: a CSV chosen in the file input fills the members, the upload shows its size, a flag
// targets the cohort (QA finds its members), deleting it is refused while that flag uses it
// (naming the flag, with a link), and an unused cohort is deleted.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { qa } from './allocation.mjs';
import { createFlag } from './flags.mjs';
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
  number,
  ok,
  scratch,
  submit,
  text,
  until,
  where,
} from './lib.mjs';

const UPLOAD = 'form#upload-cohort';

export async function steps(runner, state) {
  const { page } = state;
  const cohortsPath = () => `/projects/${state.project}/cohorts`;

  await runner.step('cohort-upload', ['projects'], async () => {
    await at(page, `/projects/${state.project}`);
    await (await need(page, 'a#cohorts-link', 'the link to the cohorts')).click();
    await page.waitForURL(`**${cohortsPath()}`);
    await need(page, 'table#cohorts', 'the cohorts table');
    eq('User', await fieldValue(page, UPLOAD, 'group_type'), 'the default group type');
    await fill(page, UPLOAD, { id: 'beta-testers', name: 'Beta testers' });
    const dir = scratch();
    const csv = join(dir, 'beta-testers.csv');
    writeFileSync(csv, 'user_id\nqa-beta-1\nqa-beta-2\nqa-beta-3\nqa-beta-2\n');
    await (await need(page, `${UPLOAD} input[type=file][name=file]`, 'the CSV file input')).setInputFiles(csv);
    const members = await until(async () => {
      const v = await fieldValue(page, UPLOAD, 'members');
      return v.includes('qa-beta-3') ? v : null;
    }, 3000);
    ok(members, `${where(page)}: choosing a CSV file did not fill \`textarea[name=members]\` (it holds ${JSON.stringify(await fieldValue(page, UPLOAD, 'members'))})`);
    await submit(page, UPLOAD);
    await noError(page, 'uploading the cohort');
    await at(page, cohortsPath());
    const row = 'table#cohorts tr[data-cohort="beta-testers"]';
    // The header line and the duplicate are not members.
    eq(3, number(await text(page, `${row} .size`, 'the cohort size')), 'the size of beta-testers');
    ok((await text(page, `${row} .updated`, 'when it was updated')).length > 0, 'the cohort row has an empty `.updated`');
    ok((await page.locator(row).innerText()).includes('Beta testers'), 'the cohort row does not show its name');

    // A second cohort typed into the textarea; it is deleted at once.
    await fill(page, UPLOAD, { id: 'old-list', name: 'Old list', members: 'a\nb\n' });
    await submit(page, UPLOAD);
    await noError(page, 'uploading old-list');
    await at(page, cohortsPath());
    eq(2, number(await text(page, 'table#cohorts tr[data-cohort="old-list"] .size', 'the size of old-list')), 'the size of old-list');
    await submit(page, 'table#cohorts tr[data-cohort="old-list"] form.delete-cohort');
    await noError(page, 'deleting the unused cohort old-list');
    await at(page, cohortsPath());
    await absent(page, 'table#cohorts tr[data-cohort="old-list"]', 'the deleted cohort');
  });

  await runner.step('cohort-condition', ['cohort-upload', 'sign-in'], async () => {
    // Local: cohorts are synced to local SDKs, and a local flag gives the prerequisite checks a
    // local candidate.
    const key = await createFlag(page, { project: state.project, name: 'Beta program', mode: 'local' });
    state.flags.beta = key;
    const path = flagPath(state, key);
    const form = 'section#allocation form#allocation-form';
    const segments = page.locator(`${form} #segments .segment`);
    for (let i = await segments.count(); i < 2; i++) {
      await (await need(page, `${form} button#add-segment`, 'the add-segment button')).click();
      await segments.nth(i).waitFor();
    }
    for (const i of [0, 1]) {
      const segment = segments.nth(i);
      if ((await segment.locator('.condition').count()) === 0) await segment.locator('button.add-condition').first().click();
      await segment.locator('.condition').first().waitFor();
    }
    const [c, g] = ['segments[0].conditions[0]', 'segments[1].conditions[0]'];
    await fill(page, form, {
      'segments[0].name': 'Beta testers',
      'segments[0].percentage': 100,
      'segments[0].weights.on': 1,
      [`${c}.target`]: 'cohort',
      [`${c}.op`]: 'set contains any',
      [`${c}.values`]: 'beta-testers',
      'segments[1].name': 'Acme',
      'segments[1].percentage': 100,
      'segments[1].weights.on': 1,
      [`${g}.target`]: 'group_name',
      [`${g}.group_type`]: 'company',
      [`${g}.op`]: 'is',
      [`${g}.values`]: 'acme',
      'aou.percentage': 0,
    });
    await submit(page, form, {
      button:
        ':is(button[type=submit], button:not([type]), input[type=submit]):not(#add-segment, .remove-segment, .add-condition, .remove-condition)',
    });
    await noError(page, 'saving a cohort condition and a group condition');
    await at(page, path);
    eq('cohort', await fieldValue(page, form, `${c}.target`), 'the saved condition target');
    eq('beta-testers', (await fieldValue(page, form, `${c}.values`)).trim(), 'the saved cohort id');
    eq(['group_name', 'company'], [await fieldValue(page, form, `${g}.target`), await fieldValue(page, form, `${g}.group_type`)], 'the saved group condition');
    // QA adds the cohorts holding the user, as remote evaluation does; groups come from the
    // groups field.
    let r = await qa(page, path, { user_id: 'qa-beta-2' });
    eq('on', r.variant, 'QA of a member of beta-testers');
    r = await qa(page, path, { user_id: 'not-a-beta-user' });
    eq('off', r.variant, 'QA of a user outside beta-testers');
    r = await qa(page, path, { user_id: 'someone-at-acme', groups: { company: ['acme'] } });
    eq('on', r.variant, 'QA of a user whose company group is acme');
    ok(r.explanation.includes('Acme'), `QA of a user of acme: the explanation must name the segment Acme: ${r.explanation}`);
  });

  await runner.step('cohort-delete', ['cohort-condition'], async () => {
    await at(page, cohortsPath());
    await submit(page, 'table#cohorts tr[data-cohort="beta-testers"] form.delete-cohort');
    const error = await errorText(page, 'deleting a cohort that a flag uses is refused');
    ok(error.includes(state.flags.beta) || error.includes('Beta program'), `the refusal must name the flag beta-program: ${JSON.stringify(error)}`);
    const links = await blockingLinks(page);
    ok(
      links.some((h) => h && h.startsWith(`/flags/${state.flags.beta}`)),
      `${where(page)}: \`.blocking a\` must link to /flags/${state.flags.beta}…, got ${JSON.stringify(links)}`,
    );
    await at(page, cohortsPath());
    await need(page, 'table#cohorts tr[data-cohort="beta-testers"]', 'the cohort whose deletion was refused');
  });
}
