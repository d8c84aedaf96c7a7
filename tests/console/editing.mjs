// Changing a flag safely: a refused save keeps every input with the reason next to the field;
// a save from a second tab that is behind shows what changed meanwhile and keeps the edit;
// edits collected in one draft are reviewed, scheduled, and later applied by the scheduler;
// the layout holds at phone width and the keyboard reaches the content first; a reader made on
// the admin's Keys page sees no edit control and no secret. Screenshots of
// the flag page, the list and the review step are saved in the fixture's `screenshots`
// directory (kept after the run).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { signIn } from './auth.mjs';
import { createFlag } from './flags.mjs';
import { at, eq, fieldValue, fill, flagPath, need, newContext, noError, ok, submit, text, type, until, visit, where } from './lib.mjs';

const ALLOCATION = 'section#allocation form#allocation-form';
const SETTINGS = 'section#configure form#settings';
const SAVE_ALLOCATION = ':is(button[type=submit], button:not([type])):not(#add-segment, .remove-segment, .add-condition, .remove-condition)';

/** Saves a full-page screenshot as `<screenshots>/<name>.png`. */
async function screenshot(state, page, name) {
  const dir = state.fx.screenshots ?? join(state.fx.artifacts, 'screenshots');
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true, timeout: 5000 });
}

/** The segment `i` of the allocation form, added with the page's buttons when missing. */
async function segment(page, i) {
  const segments = page.locator(`${ALLOCATION} #segments .segment`);
  while ((await segments.count()) <= i) {
    await (await need(page, `${ALLOCATION} button#add-segment`, 'the add-segment button')).click();
  }
  const s = segments.nth(i);
  if ((await s.locator('.condition').count()) === 0) await s.locator('button.add-condition').first().click();
  await s.locator('.condition').first().waitFor();
  return s;
}

export async function steps(runner, state) {
  const { page } = state;

  await runner.step('edit-refused-keeps-inputs', ['cohort-upload', 'sign-in'], async () => {
    const key = await createFlag(page, { project: state.project, name: 'Careful edits' });
    state.flags.careful = key;
    await segment(page, 0);
    const c = 'segments[0].conditions[0]';
    await fill(page, ALLOCATION, {
      'segments[0].name': 'Kept segment',
      'segments[0].percentage': 30,
      'segments[0].weights.on': 1,
      [`${c}.target`]: 'user_field',
      [`${c}.name`]: 'country',
      [`${c}.op`]: 'regex match',
      [`${c}.values`]: '(broken',
      'aou.percentage': 7,
    });
    await submit(page, ALLOCATION, { button: SAVE_ALLOCATION });
    // The reason sits next to the condition that caused it; every input is as typed.
    const reason = await text(page, `${ALLOCATION} .condition .field-error[data-field^="${c}"]`, 'the reason next to the condition');
    ok(reason.includes('(broken'), `${where(page)}: the reason must name the value: ${reason}`);
    eq('Kept segment', await fieldValue(page, ALLOCATION, 'segments[0].name'), 'the typed segment name after the refusal');
    eq('30', await fieldValue(page, ALLOCATION, 'segments[0].percentage'), 'the typed rollout after the refusal');
    eq('(broken', (await fieldValue(page, ALLOCATION, `${c}.values`)).trim(), 'the typed value after the refusal');
    eq('7', await fieldValue(page, ALLOCATION, 'aou.percentage'), 'All other users after the refusal');
    // Fixed, it saves; a second condition picks a cohort by name and gets its id.
    await fill(page, ALLOCATION, { [`${c}.values`]: '^(CA|US)$' });
    const s = await segment(page, 0);
    await s.locator('button.add-condition').first().click();
    const second = s.locator('.condition').nth(1);
    await second.locator('select.target').selectOption('cohort');
    await second.locator('select.cohort-picker').selectOption({ label: 'Beta testers' });
    eq('beta-testers', (await second.locator('textarea.values').inputValue()).trim(), 'the cohort picked by name, as its id');
    await second.locator('select[name$=".op"]').selectOption('set contains any');
    await submit(page, ALLOCATION, { button: SAVE_ALLOCATION });
    await noError(page, 'saving the fixed allocation');
    eq('Kept segment', await fieldValue(page, ALLOCATION, 'segments[0].name'), 'the saved segment name');
    await screenshot(state, page, 'flag-page');
  });

  await runner.step('edit-conflict-second-tab', ['edit-refused-keeps-inputs'], async () => {
    const path = flagPath(state, state.flags.careful);
    await at(page, path);
    const other = await state.context.newPage();
    runner.watch(other);
    try {
      await visit(other, path);
      await fill(other, SETTINGS, { description: 'Changed in the second tab' });
      await submit(other, SETTINGS);
      await noError(other, 'saving in the second tab');
    } finally {
      await other.close();
    }
    // The first tab is behind: its save is refused with what changed, and its edit is kept.
    await fill(page, ALLOCATION, { 'aou.percentage': 45 });
    await submit(page, ALLOCATION, { button: SAVE_ALLOCATION });
    const conflict = await text(page, '#conflict', 'what changed meanwhile');
    ok(conflict.includes('changed since you opened it'), `${where(page)}: the conflict must say the flag changed: ${conflict}`);
    eq('45', await fieldValue(page, ALLOCATION, 'aou.percentage'), 'the typed edit after the conflict');
    // Saving again applies it over the other tab's change, which stays.
    await submit(page, ALLOCATION, { button: SAVE_ALLOCATION });
    await noError(page, 'saving again after the conflict');
    eq('45', await fieldValue(page, ALLOCATION, 'aou.percentage'), 'All other users after saving again');
    eq('Changed in the second tab', await fieldValue(page, SETTINGS, 'description'), "the second tab's change, kept");
  });

  await runner.step('edit-draft-review-schedule', ['edit-conflict-second-tab'], async () => {
    const path = flagPath(state, state.flags.careful);
    await at(page, path);
    await (await need(page, 'p#edit-as-draft a', 'the link to collect changes in a draft')).click();
    await page.waitForURL(/draft=new/);
    await need(page, '#editing-draft', 'the draft-mode banner');
    // Two areas, one draft.
    await fill(page, SETTINGS, { description: 'Drafted description' });
    await submit(page, SETTINGS);
    await noError(page, 'the first change of the draft');
    ok(/draft=dr-/.test(page.url()), `${where(page)}: the first change must open a draft and keep editing it`);
    await fill(page, ALLOCATION, { 'aou.percentage': 80 });
    await submit(page, ALLOCATION, { button: SAVE_ALLOCATION });
    await noError(page, 'the second change of the draft');
    eq('80', await fieldValue(page, ALLOCATION, 'aou.percentage'), 'the page shows the flag as the draft makes it');
    const draftUrl = page.url();
    // Nothing is live yet.
    await visit(page, path);
    eq('45', await fieldValue(page, ALLOCATION, 'aou.percentage'), 'the live flag while the draft waits');
    await visit(page, draftUrl);
    await (await need(page, 'a#review-changes', 'Review changes')).click();
    await need(page, 'ul#draft-summary', 'what the draft changes');
    const summary = await text(page, 'ul#draft-summary', 'what the draft changes');
    ok(summary.includes('45%') && summary.includes('80%'), `${where(page)}: the review must show the rollout change in words: ${summary}`);
    await need(page, '#draft-moved', 'the users the draft moves');
    await screenshot(state, page, 'review-step');
    // Scheduled a few seconds ahead: it shows as scheduled, then the scheduler publishes it.
    const soon = new Date(Date.now() + 3000).toISOString().slice(0, 19);
    await fill(page, 'form#schedule', { at: soon });
    await submit(page, 'form#schedule');
    await noError(page, 'scheduling the draft');
    eq('scheduled', await page.locator('section#draft').getAttribute('data-status'), 'the draft after scheduling');
    const review = page.url().split('?')[0];
    const published = await until(async () => {
      await visit(page, review);
      return (await page.locator('section#draft').getAttribute('data-status')) === 'published';
    }, 20000, 500);
    ok(published, `${where(page)}: the scheduled draft was not published within 20 s`);
    await visit(page, path);
    eq('80', await fieldValue(page, ALLOCATION, 'aou.percentage'), 'the rollout once the schedule ran');
    eq('Drafted description', await fieldValue(page, SETTINGS, 'description'), 'the description once the schedule ran');
  });

  await runner.step('phone-width-and-keyboard', ['edit-refused-keeps-inputs'], async () => {
    await visit(page, '/flags');
    await screenshot(state, page, 'flag-list');
    const phone = await state.context.newPage();
    runner.watch(phone);
    try {
      await phone.setViewportSize({ width: 390, height: 844 });
      for (const path of [flagPath(state, state.flags.careful), `/flags?project=${state.project}`]) {
        await visit(phone, path);
        const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        ok(overflow <= 1, `${where(phone)}: at 390 px the page must not scroll sideways (${overflow} px wider)`);
      }
      await visit(phone, flagPath(state, state.flags.careful));
      await screenshot(state, phone, 'flag-page-phone');
      // The first Tab reaches the skip link; following it puts the focus on the content.
      await phone.keyboard.press('Tab');
      eq('skip-link', await phone.evaluate(() => document.activeElement?.className), 'the element the first Tab focuses');
      await phone.keyboard.press('Enter');
      eq('main', await until(() => phone.evaluate(() => document.activeElement?.id), 2000), 'the focus after the skip link');
    } finally {
      await phone.close();
    }
  });

  await runner.step('reader-console', ['edit-refused-keeps-inputs'], async () => {
    // The admin makes a reader key on the Keys page; its secret is shown once.
    await visit(page, '/keys');
    await fill(page, 'form#new-key', { name: 'Rita reads', role: 'reader' });
    await submit(page, 'form#new-key');
    await noError(page, 'creating a reader key');
    const secret = await text(page, '#key-secret code.secret', 'the new key\'s secret');
    ok(secret.startsWith('vxm_'), `${where(page)}: the secret shown must be a management key: ${secret}`);
    const context = await newContext(state.browser, state.fx.base);
    const reader = await context.newPage();
    runner.watch(reader);
    try {
      await signIn(reader, secret);
      for (const path of [flagPath(state, state.flags.careful), `/flags?project=${state.project}`, `/projects/${state.project}`]) {
        await visit(reader, path);
        // "Test a user" evaluates without changing anything; every other POST form changes.
        const forms = await reader.locator('main form[method=post]:not(#qa-form)').count();
        eq(0, forms, `${where(reader)}: forms that change something, as a reader sees the page`);
        const keys = await reader.locator('code.deployment-key, code.secret').count();
        eq(0, keys, `${where(reader)}: SDK keys or secrets a reader sees`);
      }
      await visit(reader, flagPath(state, state.flags.careful));
      await need(reader, '#read-only', 'the read-only notice on the flag page');
      eq(0, await reader.locator('a#keys-link').count(), 'the Keys link for a reader');
      eq(403, await visit(reader, '/keys'), 'GET /keys as a reader: status');
    } finally {
      await context.close();
    }
  });

  await runner.step('live-filter', ['edit-refused-keeps-inputs'], async () => {
    await visit(page, `/flags?project=${state.project}`);
    const rows = page.locator('table#flags tr[data-flag]');
    const all = await rows.count();
    ok(all > 1, `${where(page)}: the live filter needs several flags to show, found ${all}`);
    await type(page, 'form#filters input[name=q]', 'careful');
    const visible = await rows.evaluateAll((rs) => rs.filter((r) => !r.hidden).map((r) => r.dataset.flag));
    eq([state.flags.careful], visible, 'the rows shown while typing "careful"');
    const count = await text(page, '#live-count', 'how many rows the filter shows');
    ok(count.includes(`1 of ${all}`), `${where(page)}: the count must say 1 of ${all}: ${count}`);
    await type(page, 'form#filters input[name=q]', '');
    eq(all, await rows.evaluateAll((rs) => rs.filter((r) => !r.hidden).length), 'rows shown once the search is cleared');
  });
}
