// Experiments to a decision: a metric defined on the project's Metrics page, an experiment's
// settings saved from its page, then exposures and purchases sent to /2/httpapi as SDKs send
// them. The results page draws its charts (SVG lines with data), its verdict is the API's
// summary word for word, and a skewed split (1,000 against 1,300 exposed units with equal
// weights) brings up the SRM warning.

import { createFlag } from './flags.mjs';
import { at, eq, fill, flagPath, need, noError, ok, submit, text, until, visit, where } from './lib.mjs';

/** Events to /2/httpapi with the Production key, 500 a batch. */
async function send(base, apiKey, events) {
  for (let i = 0; i < events.length; i += 500) {
    const r = await fetch(`${base}/2/httpapi`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ api_key: apiKey, events: events.slice(i, i + 500) }),
    });
    if (r.status !== 200) throw new Error(`POST /2/httpapi: ${r.status} ${await r.text()}`);
  }
}

/** Exposures of users `prefix-from` .. `prefix-(to-1)` to `variant`, and purchases of the first `buyers`. */
function exposed(flag, variant, prefix, from, to, buyers) {
  const now = Date.now();
  const events = [];
  for (let i = from; i < to; i++) {
    const user = `${prefix}-${i}`;
    events.push({ event_type: '$exposure', user_id: user, time: now, insert_id: `results-x-${user}`,
                  event_properties: { flag_key: flag, variant } });
    if (i < buyers) {
      events.push({ event_type: 'Purchase', user_id: user, time: now + 1, insert_id: `results-p-${user}` });
    }
  }
  return events;
}

/** `GET /api/v1/flags/{key}/results` with the admin key. */
async function apiResults(fx, project, key) {
  const r = await fetch(`${fx.base}/api/v1/flags/${key}/results?project=${project}`, {
    headers: { Authorization: `Bearer ${fx.adminKey}` },
  });
  if (r.status !== 200) throw new Error(`GET /api/v1/flags/${key}/results: ${r.status} ${await r.text()}`);
  return r.json();
}

/** The lines of the charts in `figure`: how many, and the fewest points one has. */
async function lines(page, figure) {
  await need(page, `${figure} svg`, `the chart in ${figure}`);
  return page.locator(`${figure} svg`).first().evaluate((svg) => {
    const polylines = [...svg.querySelectorAll('polyline')].map((p) => p.getAttribute('points').trim().split(/\s+/).length);
    const box = svg.getBoundingClientRect();
    return { count: polylines.length, points: polylines, width: box.width, height: box.height,
             text: [...svg.querySelectorAll('text')].map((t) => t.textContent) };
  });
}

export async function steps(runner, state) {
  const { page, fx } = state;
  const exp = {};

  await runner.step('metrics page', ['deployments'], async () => {
    // A metric can only count an event type that was received.
    await send(fx.base, state.deployments.server.sdkKey, [{ event_type: 'Purchase', user_id: 'seed', insert_id: 'seed-purchase' }]);
    await visit(page, `/projects/${state.project}`);
    await (await need(page, 'a#metrics-link', 'the link to the project metrics')).click();
    await page.waitForLoadState('domcontentloaded');
    eq(`/projects/${state.project}/metrics`, new URL(page.url()).pathname, 'the metrics link');
    await need(page, 'table#metrics tr[data-metric="exposure"]', 'the predefined exposure metric');
    await fill(page, 'form#new-metric', { name: 'Purchase', type: 'conversion', event_type: 'Purchase', direction: 'increase' });
    await submit(page, 'form#new-metric');
    await noError(page, 'creating the Purchase metric');
    await need(page, 'table#metrics tr[data-metric="purchase"]', 'the new metric in the list');
  });

  await runner.step('experiment settings', ['metrics page'], async () => {
    exp.key = await createFlag(page, { project: state.project, name: 'Checkout button', kind: 'experiment' });
    const path = flagPath(state, exp.key);
    await at(page, path);
    const form = 'section#experiment form#experiment-settings';
    await fill(page, form, { primary_metric: 'purchase', test: 'fixed_horizon', confidence: '95', correction: 'holm' });
    await submit(page, form);
    await noError(page, 'saving the experiment settings');
    await at(page, path);
    eq('purchase', await page.locator(`${form} [name=primary_metric]`).inputValue(), 'the saved primary metric');
    eq('fixed_horizon', await page.locator(`${form} [name=test]`).inputValue(), 'the saved test');
    // Before activation the results page is an empty state.
    await (await need(page, 'a#results-link', 'the link to the results')).click();
    await page.waitForLoadState('domcontentloaded');
    await need(page, '#results-empty', 'the empty state of an experiment that has not started');
    await visit(page, path);
    await submit(page, 'form#activate');
    await noError(page, 'activating the experiment');
  });

  await runner.step('results charts and verdict', ['experiment settings'], async () => {
    const key = state.deployments.server.sdkKey;
    await send(fx.base, key, [
      ...exposed(exp.key, 'control', 'c', 0, 1000, 200),
      ...exposed(exp.key, 'treatment', 't', 0, 1000, 300),
    ]);
    const results = `/flags/${exp.key}/results?project=${state.project}`;
    // The window ends at "now": reload until every unit is counted.
    const counted = await until(async () => {
      await visit(page, results);
      const cells = await page.locator('table#exposed-units td.units').allTextContents();
      return cells.length === 2 && cells.every((c) => c.trim() === '1000');
    }, 8000, 200);
    ok(counted, `${where(page)}: \`table#exposed-units\` does not show 1000 units per variant`);
    const api = await apiResults(fx, state.project, exp.key);
    eq(api.summary, await text(page, '#verdict', 'the verdict'), 'the verdict against the API summary');
    ok(api.summary.includes('increases Purchase'), `the API summary: ${api.summary}`);
    const exposures = await lines(page, 'figure#exposures-chart');
    ok(exposures.count >= 2, `lines in the exposures chart (${JSON.stringify(exposures)})`);
    ok(exposures.width > 200 && exposures.height > 100, `the exposures chart is drawn at a readable size: ${JSON.stringify(exposures)}`);
    ok(exposures.text.some((t) => t.includes('control')) && exposures.text.some((t) => t.includes('treatment')),
      `the exposures chart's legend names the variants: ${JSON.stringify(exposures.text)}`);
    const effect = await lines(page, 'figure.effect-chart[data-metric="purchase"]');
    ok(effect.count >= 2 && effect.points.every((n) => n >= 1), `the effect chart's zero line and effect line: ${JSON.stringify(effect)}`);
    const verdict = await page.locator('section.metric[data-metric="purchase"] tr[data-variant="treatment"] td.verdict').getAttribute('data-verdict');
    eq(api.metrics[0].comparisons[0].verdict, verdict, "the treatment's verdict cell");
    const absent = await page.locator('#srm-warning').count();
    eq(0, absent, 'SRM warnings for a balanced split');
  });

  await runner.step('results SRM warning', ['results charts and verdict'], async () => {
    // 300 more treatment units: 1,000 against 1,300 with equal weights.
    await send(fx.base, state.deployments.server.sdkKey, exposed(exp.key, 'treatment', 't', 1000, 1300, 0));
    const results = `/flags/${exp.key}/results?project=${state.project}`;
    const warned = await until(async () => {
      await visit(page, results);
      return (await page.locator('#srm-warning').count()) > 0;
    }, 8000, 200);
    ok(warned, `${where(page)}: no \`#srm-warning\` for 1,000 against 1,300 exposed units with equal weights`);
    const warning = await text(page, '#srm-warning', 'the SRM warning');
    ok(/sample ratio mismatch/i.test(warning), `the SRM warning says what it is: ${warning}`);
    const api = await apiResults(fx, state.project, exp.key);
    ok(api.srm.mismatch, `the API's SRM check: ${JSON.stringify(api.srm)}`);
    eq(api.summary, await text(page, '#verdict', 'the verdict'), 'the verdict against the API summary after the skew');
    // The warning comes before the results.
    const above = await page.evaluate(() => {
      const w = document.querySelector('#srm-warning');
      const t = document.querySelector('table#exposed-units');
      return Boolean(w && t && w.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING);
    });
    ok(above, `${where(page)}: \`#srm-warning\` must come before the results`);
  });
}
