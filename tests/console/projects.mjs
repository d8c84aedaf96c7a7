// Projects and deployments: a project made from its form, its API and secret keys (the secret
// shown once, in the answer to the form), a server and a client deployment with their SDK keys
// and copy buttons, and archiving a deployment, which the SDK API must then refuse.

import * as sdk from './sdk.mjs';
import {
  at,
  absent,
  eq,
  fill,
  need,
  noError,
  ok,
  submit,
  text,
  until,
  visit,
  where,
} from './lib.mjs';

/**
 * Makes a project through form#new-project; returns its key (from the link in table#projects).
 * `created(page)`, when given, reads the answer to the form first: the only page that shows the
 * project's secret key.
 */
export async function createProject(page, name, description, created) {
  await at(page, '/projects');
  await fill(page, 'form#new-project', { name, description });
  await submit(page, 'form#new-project');
  await noError(page, `creating project ${name}`);
  if (created) await created(page);
  // The answer to the form is served at /projects itself: load the list anew.
  await visit(page, '/projects');
  const row = page.locator('table#projects tr').filter({ hasText: name }).first();
  ok((await row.count()) > 0, `${where(page)}: no row of \`table#projects\` names ${name}`);
  const href = await row.locator('a[href^="/projects/"]').first().getAttribute('href');
  ok(href, `${where(page)}: the row of ${name} in \`table#projects\` has no link to /projects/{key}`);
  return href.replace(/^\/projects\//, '').replace(/[/?#].*$/, '');
}

/** Adds a deployment through form#new-deployment; returns {key, sdkKey}. */
async function createDeployment(page, project, label, type) {
  await at(page, `/projects/${project}`);
  await fill(page, 'form#new-deployment', { label, type });
  await submit(page, 'form#new-deployment');
  await noError(page, `adding deployment ${label}`);
  await at(page, `/projects/${project}`);
  const row = page.locator('table#deployments tr[data-deployment]').filter({ hasText: label }).first();
  ok((await row.count()) > 0, `${where(page)}: no \`tr[data-deployment]\` names ${label}`);
  const key = await row.getAttribute('data-deployment');
  const sdkKey = (await row.locator('.deployment-key').first().textContent()).trim();
  ok(sdkKey.startsWith(`${type}-`), `deployment ${label}: \`.deployment-key\` must be a ${type}-… key, got ${JSON.stringify(sdkKey)}`);
  const badge = (await row.locator('.badge').first().textContent()).trim().toLowerCase();
  eq(type, badge, `deployment ${label}: \`.badge\``);
  const copy = row.locator('button.copy').first();
  ok((await copy.count()) > 0, `deployment ${label}: no \`button.copy\``);
  eq(sdkKey, await copy.getAttribute('data-copy'), `deployment ${label}: \`button.copy\` data-copy`);
  return { key, sdkKey, label, type };
}

export async function steps(runner, state) {
  const { page } = state;

  await runner.step('projects', ['sign-in'], async () => {
    let secret = '';
    state.project = await createProject(page, 'Checkout', 'Checkout and payments', async (answer) => {
      secret = await text(answer, '#project-secret-key', "the project's secret key, in the answer to the form");
    });
    await at(page, `/projects/${state.project}`);
    const api = await text(page, '#project-api-key', "the project's API key");
    await absent(page, '#project-secret-key', 'the secret key after its creation (it is shown once)');
    ok(api.length >= 8, `#project-api-key must show the key, got ${JSON.stringify(api)}`);
    ok(secret.length >= 8 && secret !== api, `#project-secret-key must show a key of its own, got ${JSON.stringify(secret)}`);
    state.projectApiKey = api;
    state.projectSecretKey = secret;
    eq(
      `/projects/${state.project}/cohorts`,
      await (await need(page, 'a#cohorts-link', 'the link to the cohorts')).getAttribute('href'),
      'a#cohorts-link href',
    );
    // A second project, whose flags no Checkout flag may depend on.
    state.otherProject = await createProject(page, 'Marketing', 'Campaigns');
  });

  await runner.step('deployments', ['projects'], async () => {
    const server = await createDeployment(page, state.project, 'Production', 'server');
    const client = await createDeployment(page, state.project, 'Web', 'client');
    ok(server.key && client.key && server.key !== client.key, `deployment keys: ${server.key}, ${client.key}`);
    state.deployments = { server, client };
    // The SDK API knows the new keys at once.
    const status = await until(async () => (await sdk.flags(state.fx.base, server.sdkKey)).status === 200);
    ok(status, `GET /sdk/v2/flags with the key shown for Production (${server.sdkKey}) is not 200`);

    // The copy button puts the key on the clipboard.
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: state.fx.base });
    await at(page, `/projects/${state.project}`);
    await page.locator(`tr[data-deployment="${server.key}"] button.copy`).first().click();
    const copied = await until(() => page.evaluate(() => navigator.clipboard.readText().catch((e) => `!${e}`)), 2000);
    eq(server.sdkKey, copied, 'the clipboard after clicking the copy button of Production');

    // Archiving a deployment: badge, then the SDK API refuses its key; unarchiving restores it.
    const staging = await createDeployment(page, state.project, 'Staging', 'server');
    const row = `table#deployments tr[data-deployment="${staging.key}"]`;
    await absent(page, `${row} .badge.archived`, 'a new deployment is not archived');
    await submit(page, `${row} form.archive-deployment`);
    await noError(page, 'archiving Staging');
    await at(page, `/projects/${state.project}`);
    await need(page, `${row} .badge.archived`, 'the archived badge of Staging');
    const refused = await until(async () => (await sdk.flags(state.fx.base, staging.sdkKey)).status === 401);
    ok(refused, 'the SDK API still accepts the key of the archived deployment Staging');
    await submit(page, `${row} form.archive-deployment`);
    await noError(page, 'unarchiving Staging');
    await at(page, `/projects/${state.project}`);
    await absent(page, `${row} .badge.archived`, 'Staging after unarchiving');
    const back = await until(async () => (await sdk.flags(state.fx.base, staging.sdkKey)).status === 200);
    ok(back, 'the SDK API refuses the key of Staging after it was unarchived');
  });
}
