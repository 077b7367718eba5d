// The login page: renders cleanly (axe, zero CSP violations, both widths), refuses a wrong
// password with the contract's message, refuses a login posted by another origin's form (the
// browser's own Origin and Sec-Fetch-Site), and speaks Simplified Chinese to a zh-CN browser.

import { createServer } from 'node:http';
import { assert, env, scenario, url } from './lib.mjs';

await scenario('login', async ({ open, step }) => {
  const anon = await open('login');
  const page = anon.page;

  await step('the login page renders with labelled fields', async () => {
    const response = await anon.goto('/login');
    assert.equal(response.status(), 200);
    await page.getByLabel('User name').waitFor();
    await page.getByLabel('Password').waitFor();
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    assert.equal(await page.getByLabel('Password').getAttribute('type'), 'password');
    assert.match(await page.locator('html').getAttribute('lang'), /^en\b/);
    await anon.checkPageAtBothWidths('login');
  });

  await step('a wrong password shows the message and stays on the login page', async () => {
    await anon.login({ user: env.agent.user, password: `not-${env.agent.password}` });
    assert.equal(new URL(page.url()).pathname, '/login');
    await page.getByText('User name or password is wrong').waitFor();
    // The refusal may come with a 4xx status, which chromium logs as a failed load.
    anon.tolerate((m) => m.source === url("/login") && /Failed to load resource: .* status of 4\d\d/.test(m.text));
    // Nothing that a session would give: "/" still sends us back to the login page.
    await anon.checkPage('wrong-password');
    await anon.goto('/');
    assert.equal(page.url(), url('/login'));
  });

  await step('a login form on another origin cannot log the browser in (login CSRF)', async () => {
    // Another port of the same host: same-site, so a SameSite=Strict cookie would even be sent.
    const target = url('/login');
    const evil = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(
        `<!doctype html><html lang="en"><head><title>Win a prize</title></head><body><main>` +
          `<h1>Win a prize</h1><form method="post" action="${target}">` +
          `<input type="hidden" name="user" value="${env.agent.user}">` +
          `<input type="hidden" name="password" value="${env.agent.password}">` +
          `<button type="submit">Claim</button></form></main></body></html>`,
      );
    });
    await new Promise((ok) => evil.listen(0, '127.0.0.1', ok));
    try {
      await page.goto(`http://127.0.0.1:${evil.address().port}/`);
      await page.getByRole('button', { name: 'Claim' }).click();
      await page.waitForURL(target);
      await page.getByText('This request was refused').waitFor();
      anon.tolerate((m) => m.source === target && /status of 403/.test(m.text));
      await anon.checkPage('login-csrf-refused');
      await anon.goto('/');
      assert.equal(page.url(), url('/login'), 'the foreign form logged the browser in');
    } finally {
      evil.close();
    }
  });

  const zh = await open('login-zh-CN', { locale: 'zh-CN' });
  await step('a zh-CN browser gets the page in Chinese', async () => {
    await zh.goto('/login');
    assert.match(await zh.page.locator('html').getAttribute('lang'), /^zh\b/i);
    const text = await zh.page.locator('body').innerText();
    assert.match(text, /[\u4e00-\u9fff]/u, `no Chinese characters in: ${text}`);
    assert.equal(await zh.page.getByRole('button', { name: 'Log in', exact: true }).count(), 0, 'English button text on a zh-CN page');
    await zh.checkPageAtBothWidths('login');
  });
});
