// The harness of the console tests: Chromium launched from the system's binary through
// playwright-core, steps that run in order and say which earlier steps they need, a screenshot
// and the page's HTML on every failure, and small helpers that read the page and fail with the
// page, the selector and what was expected when the console does not match its contract.

import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

/** How long one browser action or wait may take before it fails. */
export const ACTION_TIMEOUT_MS = 5000;

/** The Chromium flags the brief prescribes: headless, no sandbox (root in CI), no network. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches Chromium (`VEXIL_CHROMIUM` or /usr/bin/chromium) with a fresh user-data-dir. */
export async function launch() {
  return chromium.launch({
    executablePath: process.env.VEXIL_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/** A fresh browser context (its own cookies) whose pages time out after ACTION_TIMEOUT_MS. */
export async function newContext(browser, base) {
  const context = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(ACTION_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS * 2);
  return context;
}

/** With VEXIL_CONSOLE_TRACE=1, every page load and form submission is printed with its time. */
const TRACE = process.env.VEXIL_CONSOLE_TRACE === '1';
function trace(what, started) {
  if (TRACE) console.log(`       ${Math.round(performance.now() - started)} ms  ${what}`);
}

/** A failed expectation: the message says where, what was expected and what the page had. */
export class Mismatch extends Error {}

export function fail(message) {
  throw new Mismatch(message);
}

export function ok(condition, message) {
  if (!condition) fail(message);
}

export function eq(expected, got, what) {
  if (JSON.stringify(expected) !== JSON.stringify(got)) {
    fail(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
  }
}

/** The path and query of the page, for messages. */
export function where(page) {
  const url = new URL(page.url());
  return url.pathname + url.search;
}

/**
 * Runs named steps in order. A step whose `needs` did not all pass is not run (and counted as
 * failed, naming the step it waited for), so one missing page does not hide the others.
 */
export class Runner {
  constructor(artifacts) {
    this.artifacts = artifacts;
    this.results = [];
    this.status = new Map();
    this.pages = [];
    mkdirSync(artifacts, { recursive: true });
  }

  /** The page to capture when a step fails (the latest registered). */
  watch(page) {
    this.pages.push(page);
  }

  async step(name, needs, fn) {
    const missing = needs.filter((n) => this.status.get(n) !== true);
    if (missing.length > 0) {
      this.status.set(name, false);
      this.results.push({ name, ok: false, message: `not run: needs ${missing.join(', ')}` });
      console.log(`SKIP ${name}: needs ${missing.join(', ')}`);
      return;
    }
    const started = performance.now();
    try {
      await fn();
      this.status.set(name, true);
      const ms = Math.round(performance.now() - started);
      this.results.push({ name, ok: true });
      console.log(`ok   ${name} (${ms} ms)`);
    } catch (e) {
      this.status.set(name, false);
      const message = e instanceof Mismatch ? e.message : e.stack ?? String(e);
      const shots = await this.capture(name);
      this.results.push({ name, ok: false, message, shots });
      console.log(`FAIL ${name}: ${message}`);
      for (const s of shots) console.log(`     saved ${s}`);
    }
  }

  /** Screenshots and HTML of the open pages, into the artifacts directory. */
  async capture(name) {
    const saved = [];
    const safe = name.replace(/[^a-z0-9-]+/gi, '-');
    let i = 0;
    for (const page of this.pages) {
      if (page.isClosed()) continue;
      const base = join(this.artifacts, `${String(this.results.length + 1).padStart(2, '0')}-${safe}-${i++}`);
      try {
        await page.screenshot({ path: `${base}.png`, fullPage: true, timeout: 3000 });
        saved.push(`${base}.png`);
        writeFileSync(`${base}.html`, `<!-- ${page.url()} -->\n${await page.content()}`);
        saved.push(`${base}.html`);
      } catch (e) {
        saved.push(`(could not capture ${page.url()}: ${e.message.split('\n')[0]})`);
      }
    }
    return saved;
  }

  /** Prints the closing lines; returns the exit code. */
  summary() {
    const failed = this.results.filter((r) => !r.ok);
    if (failed.length > 0) {
      console.log('\nFailures:');
      for (const f of failed) console.log(`- ${f.name}: ${f.message}`);
      console.log(`\nScreenshots and HTML of failed steps: ${this.artifacts}`);
    }
    const passed = this.results.length - failed.length;
    console.log(`console: ${passed} passed, ${failed.length} failed`);
    return failed.length === 0 ? 0 : 1;
  }
}

/** A temp directory for files the tests upload. */
export function scratch() {
  return mkdtempSync(join(tmpdir(), 'vexil-console-'));
}

/**
 * Makes sure `page` shows `path`: a page reached by redirect after a form (`/flags/x?project=p&
 * notice=…`) is a fresh GET of the same page, so it is not loaded again. Only for changes made
 * in this page: after a change made elsewhere (the SDK API, another tab) use `visit`.
 */
export async function at(page, path) {
  const want = new URL(path, page.url() === 'about:blank' ? 'http://x' : page.url());
  const have = new URL(page.url());
  const same =
    have.pathname === want.pathname &&
    [...want.searchParams].every(([k, v]) => have.searchParams.get(k) === v) &&
    (await page.evaluate(() => document.readyState !== 'loading' && !document.documentElement.dataset.vxStale));
  if (!same) await visit(page, path);
}

/** Goes to `path` and waits for it to load; returns the response status. */
export async function visit(page, path) {
  const started = performance.now();
  const response = await page.goto(path, { waitUntil: 'domcontentloaded' });
  trace(`GET ${path}`, started);
  return response?.status();
}

/** The first element matching `selector`, which must exist; `what` says what it is for. */
export async function need(page, selector, what) {
  const el = page.locator(selector).first();
  try {
    await el.waitFor({ state: 'attached', timeout: ACTION_TIMEOUT_MS });
  } catch {
    fail(`${where(page)}: no element matches \`${selector}\` (${what})`);
  }
  return el;
}

/** Fails if some element matches `selector`. */
export async function absent(page, selector, what) {
  const n = await page.locator(selector).count();
  ok(n === 0, `${where(page)}: \`${selector}\` must not be on the page (${what}), found ${n}`);
}

/** The trimmed text of the first element matching `selector`. */
export async function text(page, selector, what) {
  const el = await need(page, selector, what);
  return (await el.textContent()).replace(/\s+/g, ' ').trim();
}

/**
 * Sets fields of `form` by name in one step, whatever their kind (input, textarea, select,
 * checkbox), firing `input` and `change` as typing or choosing does. A missing field or a
 * select without the option fails with the page and the selector.
 */
export async function fill(page, form, fields) {
  await need(page, form, `the form holding ${Object.keys(fields).join(', ')}`);
  const problems = await page.locator(form).first().evaluate((root, fields) => {
    const out = [];
    for (const [name, value] of Object.entries(fields)) {
      const el = root.querySelector(`[name="${CSS.escape(name)}"]`);
      if (!el) {
        out.push(`no element matches \`[name="${name}"]\``);
        continue;
      }
      if (el.tagName === 'SELECT') {
        const options = [...el.options].map((o) => o.value);
        if (!options.includes(String(value))) {
          out.push(`\`[name="${name}"]\` has no option ${JSON.stringify(value)} (options: ${JSON.stringify(options)})`);
          continue;
        }
        el.value = String(value);
      } else if (el.type === 'checkbox') {
        el.checked = Boolean(value);
      } else {
        el.focus();
        el.value = String(value);
      }
      el.dispatchEvent(new Event('input', { bubbles: true }));
      el.dispatchEvent(new Event('change', { bubbles: true }));
    }
    return out;
  }, Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, typeof v === 'boolean' ? v : String(v)])));
  ok(problems.length === 0, `${where(page)}: in \`${form}\`: ${problems.join('; ')}`);
}

/** Sets one field of `form` by name. */
export async function setField(page, form, name, value) {
  await fill(page, form, { [name]: value });
}

/** The value of a form field by name. */
export async function fieldValue(page, form, name) {
  const el = await need(page, `${form} [name="${name}"]`, `field ${name}`);
  return el.evaluate((e) => (e.type === 'checkbox' ? e.checked : e.value));
}

/**
 * Submits `form` by clicking its submit button and waits until the page was replaced (a
 * server-rendered answer) or, with `watch`, until that element changed in place (a form that
 * scripts enhance). Every POST form must carry a non-empty hidden `_csrf` (`csrf: false` leaves
 * that check to a step of its own, so that it does not stop every step after it).
 */
export async function submit(page, form, { watch, button, csrf = true } = {}) {
  const el = await need(page, form, 'the form to submit');
  const submitter = button ?? 'button[type=submit], button:not([type]), input[type=submit]';
  // One round trip: what the form is, and a mark on this document (gone once a new page loads).
  const info = await el.evaluate(
    (f, [submitter, watch]) => {
      document.documentElement.dataset.vxStale = '1';
      window.__vxChanged = false;
      const target = watch && document.querySelector(watch);
      if (target) {
        new MutationObserver(() => {
          window.__vxChanged = true;
        }).observe(target, { subtree: true, childList: true, characterData: true, attributes: true });
      }
      return {
        post: (f.getAttribute('method') ?? 'get').toLowerCase() === 'post',
        csrf: f.querySelector('input[type=hidden][name=_csrf]')?.value ?? null,
        button: f.querySelector(submitter) !== null,
      };
    },
    [submitter, watch ?? null],
  );
  if (info.post && csrf) {
    ok(info.csrf, `${where(page)}: \`${form}\` is a POST form without a hidden \`_csrf\` input with a value`);
  }
  ok(info.button, `${where(page)}: \`${form}\` has no submit button`);
  const from = where(page);
  const started = performance.now();
  // A form that asks first (`data-confirm`) is confirmed, as a person would; the question is
  // kept for the caller (`lastConfirm()`). A caller's own dialog handler may answer first.
  const question = await el.getAttribute('data-confirm');
  confirmed = null;
  if (question) {
    page.once('dialog', (d) => {
      confirmed = d.message();
      d.accept().catch(() => {});
    });
  }
  await el.locator(submitter).first().click();
  try {
    await page.waitForFunction(
      () => document.documentElement.dataset.vxStale !== '1' || window.__vxChanged === true,
      null,
      { timeout: ACTION_TIMEOUT_MS * 2, polling: 20 },
    );
  } catch {
    // Say why when the browser itself stopped the submission (a field failed its validation).
    const invalid = await el
      .evaluate((f) => [...f.querySelectorAll(':invalid')].map((i) => `${i.name}: ${i.validationMessage}`))
      .catch(() => []);
    const why = invalid.length > 0 ? `; the browser refused to submit it: ${JSON.stringify(invalid)}` : '';
    fail(`${from}: submitting \`${form}\` neither loaded a page nor updated ${watch ?? 'the page'}${why}`);
  }
  await page.waitForLoadState('domcontentloaded');
  trace(`submit ${form} (${from} -> ${where(page)})`, started);
}

let confirmed = null;

/** The question the last submitted form asked before it went (`null` when it asked none). */
export function lastConfirm() {
  return confirmed;
}

/** The visible `.error` text; fails when there is none. */
export async function errorText(page, what) {
  const el = page.locator('.error').filter({ hasText: /\S/ }).first();
  try {
    await el.waitFor({ state: 'visible', timeout: ACTION_TIMEOUT_MS });
  } catch {
    fail(`${where(page)}: expected a visible \`.error\` (${what}), there is none`);
  }
  return (await el.textContent()).replace(/\s+/g, ' ').trim();
}

/** Fails when a visible `.error` is on the page (an action that should have worked). */
export async function noError(page, what) {
  const errors = await page.locator('.error:visible').allTextContents();
  const shown = errors.map((t) => t.replace(/\s+/g, ' ').trim()).filter((t) => t);
  ok(shown.length === 0, `${where(page)}: ${what} failed with \`.error\`: ${JSON.stringify(shown)}`);
}

/** The hrefs of the `.blocking a` links. */
export async function blockingLinks(page) {
  return page.locator('.blocking a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
}

/** Polls `fn` until it returns a truthy value or `ms` pass; returns the last value. */
export async function until(fn, ms = 5000, every = 50) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, every));
  }
}

/** The slug the console generates from a name: lowercase words joined by `-`. */
export function slug(name) {
  return name
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w)
    .join('-');
}

/** Types `value` into a field key by key, as a person does (so as-you-type scripts run). */
export async function type(page, selector, value) {
  const el = await need(page, selector, 'a field to type into');
  await el.fill('');
  await el.pressSequentially(value);
}

/** Parses the first number in a text ("20%", "20.0 %", "share: 80"). */
export function number(text) {
  const m = /-?\d+(?:[.,]\d+)?/.exec(text ?? '');
  return m ? Number(m[0].replace(',', '.')) : NaN;
}

/** A flag's page. */
export function flagPath(state, key, project = state.project) {
  return `/flags/${key}?project=${project}`;
}
