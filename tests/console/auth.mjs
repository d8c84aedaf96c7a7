// Signing in and out: pages redirect to /login, a bad key is refused, the session cookie is
// HttpOnly and SameSite=Strict, POSTs without the CSRF token are refused (the sign-in form's
// too), and signing out ends the session on the server, not only in the browser.

import {
  absent,
  eq,
  errorText,
  fill,
  need,
  newContext,
  ok,
  submit,
  visit,
  where,
} from './lib.mjs';

/** Signs `page` in with `key` through form#login. */
export async function signIn(page, key) {
  await visit(page, '/login');
  await need(page, 'form#login', 'the sign-in form');
  await fill(page, 'form#login', { key });
  // Whether the form carries `_csrf` is the csrf step's check.
  await submit(page, 'form#login', { csrf: false });
}

export async function steps(runner, state) {
  const { page, fx } = state;

  await runner.step('sign-in', [], async () => {
    for (const path of ['/flags', '/projects', '/']) {
      await visit(page, path);
      eq('/login', new URL(page.url()).pathname, `signed out, GET ${path} ends on`);
    }
    await need(page, 'form#login input[name=key]', 'the management key field');
    await fill(page, 'form#login', { key: 'vxm_not_a_real_key' });
    await submit(page, 'form#login', { csrf: false });
    eq('/login', new URL(page.url()).pathname, 'after a bad key the page');
    await errorText(page, 'a bad key is refused');
    ok(
      !(await page.context().cookies()).some((c) => c.name === 'vexil_session' && c.value),
      'a bad key must not set a vexil_session cookie',
    );

    await signIn(page, fx.adminKey);
    eq('/flags', new URL(page.url()).pathname, 'after signing in the page');
    const cookie = (await page.context().cookies()).find((c) => c.name === 'vexil_session');
    ok(cookie, `no vexil_session cookie after signing in (cookies: ${JSON.stringify(await page.context().cookies())})`);
    eq(true, cookie.httpOnly, 'vexil_session HttpOnly');
    eq('Strict', cookie.sameSite, 'vexil_session SameSite');
    await need(page, 'a[href="/flags"]', 'the nav link to the flags');
    await need(page, 'a[href="/projects"]', 'the nav link to the projects');
    await need(page, 'form#logout', 'the sign-out form in the nav');
    ok(
      !(await page.evaluate(() => document.cookie)).includes('vexil_session'),
      'vexil_session is readable from scripts (document.cookie)',
    );
  });

  await runner.step('csrf', ['sign-in'], async () => {
    await visit(page, '/projects');
    const form = await need(page, 'form#new-project', 'the new-project form');
    const action = new URL((await form.getAttribute('action')) || page.url(), page.url()).pathname;
    // The same POST the form makes, from the page (with the session cookie), without the token,
    // with a wrong token, and with the right one.
    const post = (body) =>
      page.evaluate(
        async ([action, body]) => {
          const r = await fetch(action, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams(body).toString(),
          });
          return r.status;
        },
        [action, body],
      );
    eq(403, await post({ name: 'Csrf missing' }), `POST ${action} without _csrf: status`);
    eq(403, await post({ name: 'Csrf wrong', _csrf: 'not-the-token' }), `POST ${action} with a wrong _csrf: status`);
    const token = await page.locator('form#new-project input[name=_csrf]').first().inputValue();
    const good = await post({ name: 'Csrf ok', description: '', _csrf: token });
    ok(good < 400, `POST ${action} with the page's _csrf must work, got ${good}`);
    await visit(page, '/projects');
    const names = await page.locator('table#projects').innerText();
    ok(!names.includes('Csrf missing') && !names.includes('Csrf wrong'), 'a POST refused for CSRF still created a project');
    ok(names.includes('Csrf ok'), 'the POST with the right _csrf did not create its project');
    // The login form is protected too.
    await visit(page, '/login');
    const loginToken = await page.locator('form#login input[type=hidden][name=_csrf]').count();
    ok(loginToken > 0, `${where(page)}: \`form#login\` has no hidden \`_csrf\` input (every POST form must carry one)`);
    await visit(page, '/projects');
    const login = await page.evaluate(async () => {
      const r = await fetch('/login', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'key=x',
      });
      return r.status;
    });
    eq(403, login, 'POST /login without _csrf: status');
  });
}

/** Runs last: signing out in a second browser context ends that session only. */
export async function signOut(runner, state) {
  await runner.step('sign-out', ['sign-in'], async () => {
    const context = await newContext(state.browser, state.fx.base);
    const page = await context.newPage();
    runner.watch(page);
    try {
      await signIn(page, state.fx.adminKey);
      eq('/flags', new URL(page.url()).pathname, 'after signing in the page');
      const session = (await context.cookies()).find((c) => c.name === 'vexil_session');
      await submit(page, 'form#logout');
      eq('/login', new URL(page.url()).pathname, 'after signing out the page');
      await absent(page, 'form#logout', 'signed out');
      await visit(page, '/flags');
      eq('/login', new URL(page.url()).pathname, 'signed out, GET /flags ends on');
      // The old cookie, sent again, is no session any more: signing out ends it on the server.
      await context.addCookies([session]);
      await visit(page, '/flags');
      eq('/login', new URL(page.url()).pathname, "with a signed-out session's cookie sent again, GET /flags ends on");
      // The main session was not touched.
      await visit(state.page, '/flags');
      eq('/flags', new URL(state.page.url()).pathname, 'the other session after this sign-out');
    } finally {
      await context.close();
    }
  });
}
