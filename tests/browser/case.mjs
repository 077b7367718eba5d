// An agent opens a case from his queue list, sees the thread (the HTML-only mail as text, and its
// HTML in the sandboxed frame without a CSP violation), adds an internal note (labelled as
// internal), claims the case, and sees both on the page. axe, CSP and both widths on the way.

import { AxeBuilder } from '@axe-core/playwright';
import { assert, assertNoSideways, DESKTOP, env, log, PHONE, scenario, screenshot, url } from './lib.mjs';

const SUBJECT = 'Browser test HTML mail';

await scenario('case', async ({ open, step }) => {
  const agent = await open('case');
  const page = agent.page;
  const queue = env.agentQueues[0];
  let caseUrl;
  // Chromium refuses every script in the sandboxed mail frame, the harness's own too (its CSP
  // listener, playwright's and axe's injections), and says so on the console. That refusal is
  // the sandbox working; any other console error (a CSP violation inside the frame included)
  // still fails the scenario.
  const sandboxRefusal = (m) =>
    m.type === 'error' &&
    /^Blocked script execution in '[^']*\/cases\/\d+\/messages\/\d+\/html' because the document's frame is sandboxed and the 'allow-scripts' permission is not set\.$/.test(m.text);
  const assertClean = agent.assertClean.bind(agent);
  agent.assertClean = (label) => {
    agent.tolerate(sandboxRefusal);
    assertClean(label);
  };
  // lib.mjs's checks, with axe kept out of the sandboxed frame: axe runs by injecting a script
  // into every frame and waits forever for one where no script may run. The frame element
  // itself (its title) is checked here instead; what is inside is the customer's mail.
  const checkPage = async (label) => {
    await screenshot(page, `case-${label}`);
    agent.assertClean(label);
    const frames = page.locator('iframe');
    for (let i = 0; i < (await frames.count()); i++) {
      assert.match((await frames.nth(i).getAttribute('title')) ?? '', /\S/, `${label}: frame ${i} has a title`);
    }
    const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).exclude('iframe').analyze();
    for (const v of results.violations) {
      log(`AXE case/${label}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.map((n) => n.html).join(' | ')}`);
    }
    assert.equal(results.violations.length, 0, `${label}: axe violations, listed above`);
    log(`axe case/${label}: ${results.passes.length} rules pass, 0 violations`);
  };
  const checkBothWidths = async (label) => {
    await page.setViewportSize(DESKTOP);
    await checkPage(`${label}-desktop`);
    await page.setViewportSize(PHONE);
    await checkPage(`${label}-phone`);
    await assertNoSideways(page, `case/${label}-phone`);
    await page.setViewportSize(DESKTOP);
  };

  await step('open the case from the queue list', async () => {
    await agent.login(env.agent);
    await page.getByRole('link', { name: queue, exact: true }).click();
    await page.waitForURL(url(`/queues/${queue}`));
    const row = page.locator('table.cases tbody tr').filter({ hasText: SUBJECT });
    assert.equal(await row.count(), 1, 'one row for the HTML mail');
    await row.getByRole('link').first().click();
    await page.waitForURL(/\/cases\/\d+$/);
    caseUrl = new URL(page.url()).pathname;
    await page.getByRole('heading', { level: 1, name: new RegExp(SUBJECT) }).waitFor();
  });

  await step('the thread: the customer message with its number and its text', async () => {
    const message = page.locator('li.message');
    assert.equal(await message.count(), 1);
    const number = (await message.locator('h3 a.code').innerText()).trim();
    assert.match(number, /^[A-Z]+-/, `a registration number: ${number}`);
    assert.equal(await message.getAttribute('id'), `m${await message.getAttribute('data-message')}`, 'the #m{id} anchor');
    assert.match(await message.locator('pre.body').innerText(), /Hello from an HTML mail\./);
    assert.equal(await page.getByRole('link', { name: 'Reply', exact: true }).getAttribute('href'), `${caseUrl}/reply`);
    assert.match(await page.locator('[data-sla]').innerText(), /due|overdue/);
  });

  await step('the HTML version is in its sandboxed frame, without a CSP violation', async () => {
    await page.getByText('Show the HTML version').click();
    const frame = page.locator('iframe[sandbox]');
    assert.equal(await frame.getAttribute('sandbox'), '', 'an empty sandbox: no script, no same-origin, no forms');
    const src = await frame.getAttribute('src');
    // No script runs in the frame, so playwright cannot look inside it: the frame is there with
    // the mail part's URL, and that URL serves the mail's HTML under its own policy.
    assert.ok(page.frames().some((f) => f.url() === url(src)), `a frame showing ${src}`);
    const part = await page.request.get(url(src));
    assert.equal(part.status(), 200);
    assert.match(await part.text(), /Hello from an <b>HTML<\/b> mail\./);
    assert.match(part.headers()['content-security-policy'], /^default-src 'none'; style-src 'unsafe-inline'; img-src data: cid:; sandbox/);
    assert.equal(part.headers()['x-frame-options'], 'SAMEORIGIN');
    await checkBothWidths('case');
  });

  await step('add an internal note', async () => {
    await page.getByLabel('Note (only staff see it)').fill('Checked the contract: covered.');
    await page.getByRole('button', { name: 'Add internal note' }).click();
    await page.waitForURL(/done=note/);
    const note = page.locator('li[data-entry="note"]');
    assert.equal(await note.count(), 1);
    const text = await note.innerText();
    assert.match(text, /Internal note — not sent to the customer/);
    assert.match(text, /Checked the contract: covered\./);
    assert.match(await page.locator('[data-notice="done"]').innerText(), /Done: Internal note/);
  });

  await step('claim the case', async () => {
    await page.getByRole('button', { name: 'Claim (assign to me)' }).click();
    await page.waitForURL(/done=claim/);
    assert.equal((await page.locator('dd[data-field="assignee"]').innerText()).trim(), env.agent.user);
    assert.equal((await page.locator('dd[data-field="status"]').innerText()).trim(), 'Open');
    assert.equal(await page.locator('li[data-history="claim"]').count(), 1, 'the claim in the history');
    await checkBothWidths('case-claimed');
  });
});
