// Exposures: `$exposure` events sent to /2/httpapi as SDKs send them (with the Production key)
// show up in the flag's exposures table, a column per variant, per day and in total.

import { eq, flagPath, need, number, ok, visit, where } from './lib.mjs';
import * as sdk from './sdk.mjs';

/** table#exposures as {header: [...], days: [[...]], total: [...]} of cell texts. */
async function table(page) {
  await need(page, 'section#exposures table#exposures', 'the exposures table');
  return page.locator('table#exposures').evaluate((t) => {
    const cells = (r) => [...r.cells].map((c) => c.textContent.replace(/\s+/g, ' ').trim());
    const rows = [...t.rows];
    const header = rows.find((r) => r.querySelector('th') && !r.classList.contains('total'));
    return {
      header: header ? cells(header) : [],
      days: rows.filter((r) => r !== header && !r.classList.contains('total')).map(cells),
      total: rows.filter((r) => r.classList.contains('total')).map(cells)[0] ?? null,
    };
  });
}

export async function steps(runner, state) {
  const { page } = state;

  await runner.step('exposures', ['variants', 'deployments'], async () => {
    const { main, dependent } = state.flags;
    const { blue, green } = state.variants;
    const events = [
      { user: 'e-1', flag: main, variant: blue },
      { user: 'e-2', flag: main, variant: blue },
      { user: 'e-3', flag: main, variant: green },
      { user: 'e-4', flag: main, variant: green },
      { user: 'e-5', flag: main, variant: green },
      { user: 'e-6', flag: dependent ?? 'express-ship', variant: 'on' },
    ];
    const answer = await sdk.exposures(state.fx.base, state.deployments.server.sdkKey, events);
    eq(events.length, answer.events_ingested, '/2/httpapi events_ingested');

    // A fresh load: the page may already show this flag from before the events were sent.
    await visit(page, flagPath(state, main));
    const t = await table(page);
    ok(t.total, `${where(page)}: \`table#exposures\` has no \`tr.total\` (rows: ${JSON.stringify(t)})`);
    const column = (variant, name) => {
      const i = t.header.findIndex((h) => [variant, name].some((n) => h.toLowerCase() === n.toLowerCase()));
      ok(i >= 0, `${where(page)}: \`table#exposures\` has no column for ${variant} (header: ${JSON.stringify(t.header)})`);
      return i;
    };
    const want = { [blue]: [2, 'Blue'], [green]: [3, 'Green button'] };
    for (const [variant, [count, name]] of Object.entries(want)) {
      const i = column(variant, name);
      eq(count, number(t.total[i]), `exposures total of ${variant}`);
      const perDay = t.days.reduce((sum, row) => sum + (number(row[i]) || 0), 0);
      eq(count, perDay, `exposures of ${variant} summed over the day rows ${JSON.stringify(t.days)}`);
    }
    ok(t.days.length >= 1, `${where(page)}: \`table#exposures\` has no row per day`);
    const on = t.header.findIndex((h) => h.toLowerCase() === 'on');
    if (on >= 0) eq(0, number(t.total[on]) || 0, 'exposures of on (none were sent for this flag)');
  });
}
