// The console's end-to-end tests in headless Chromium, driven by crates/vexil/tests/console_browser.rs.
// VEXIL_FIXTURE names a JSON file with the server's base URL, the admin key printed at its
// first start, the path of the vexil binary (for `vexil eval`) and a directory for the
// screenshots and HTML of failed steps. Every piece of data is made through the console, as the
// seeds' walkthroughs make it; only exposure events (which SDKs send) and the SDK answers the
// console's QA is compared with go through the SDK API. Exits 0 when every step passed.

import { readFileSync } from 'node:fs';

import * as auth from './auth.mjs';
import * as allocation from './allocation.mjs';
import * as cohorts from './cohorts.mjs';
import * as dependencies from './dependencies.mjs';
import * as editing from './editing.mjs';
import * as exposures from './exposures.mjs';
import * as flags from './flags.mjs';
import * as groups from './groups.mjs';
import * as history from './history.mjs';
import { launch, newContext, Runner } from './lib.mjs';
import * as list from './list.mjs';
import * as projects from './projects.mjs';
import * as results from './results.mjs';

const fx = JSON.parse(readFileSync(process.env.VEXIL_FIXTURE, 'utf8'));
const runner = new Runner(fx.artifacts);
const started = performance.now();
const browser = await launch();
try {
  const context = await newContext(browser, fx.base);
  const page = await context.newPage();
  runner.watch(page);
  // What the steps make and later steps use: project and deployment keys, SDK keys, flags.
  const state = { fx, browser, context, page, project: null, deployments: {}, flags: {} };
  const areas = [auth, projects, flags, allocation, cohorts, dependencies, groups, exposures, results, history, list, editing];
  for (const area of areas) {
    await area.steps(runner, state);
  }
  await auth.signOut(runner, state);
} finally {
  await browser.close();
}
console.log(`(${Math.round(performance.now() - started)} ms)`);
process.exit(runner.summary());
