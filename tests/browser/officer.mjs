// The security officer: "My queues" shows no queue and no customer content, only the officer
// pages; through the header links: users → add a user (the one-time code shown once) → roles →
// pending changes → audit log filtered by action → "Verify chain" → retention. Every page: axe,
// zero CSP violations, screenshots at both widths, and no mail content anywhere.

import { assert, env, scenario, url } from './lib.mjs';

const secrets = (process.env.MAILROOM_CUSTOMER_TEXT ?? '').split('\n').filter(Boolean);

await scenario('officer', async ({ open, step }) => {
  const officer = await open('officer');
  const page = officer.page;

  /** No subject the customers sent appears on the page the officer is looking at. */
  async function assertNoMail(where) {
    const html = await page.content();
    for (const secret of secrets) {
      assert.ok(!html.includes(secret), `customer text ${JSON.stringify(secret)} on the officer's ${where} page`);
    }
    assert.ok(!html.includes('customer@client.example.org'), `a customer address on the officer's ${where} page`);
  }

  await step('log in and land on "My queues" without a single queue', async () => {
    await officer.login(env.officer);
    assert.equal(page.url(), url('/'));
    await page.getByRole('heading', { level: 1, name: 'My queues' }).waitFor();
    for (const queue of [...env.agentQueues, ...env.otherQueues]) {
      assert.equal(await page.getByRole('link', { name: queue, exact: true }).count(), 0, `a link named ${queue}`);
    }
    assert.equal(await page.locator('a[href^="/queues/"]').count(), 0, 'a link into a queue');
  });

  await step('no customer content anywhere on the page', async () => {
    assert.ok(secrets.length > 0, 'the test sent mail whose subjects the officer must not see');
    await assertNoMail('home');
    await officer.checkPageAtBothWidths('officer-home');
  });

  await step('the header leads to the users, each with its roles and state', async () => {
    const nav = page.getByRole('navigation', { name: 'Officer pages' });
    for (const name of ['Users', 'Roles', 'Changes', 'Audit log']) {
      await nav.getByRole('link', { name, exact: true }).waitFor();
    }
    await nav.getByRole('link', { name: 'Users', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
    const agentRow = page.locator(`tr[data-user="${env.agent.user}"]`);
    await agentRow.getByText('support-agent').waitFor();
    await agentRow.getByRole('button', { name: `Lock ${env.agent.user}` }).waitFor();
    await assertNoMail('users');
    await officer.checkPageAtBothWidths('officer-users');
  });

  await step('add a user: the one-time enrolment code is shown once', async () => {
    await page.getByLabel('User name').fill('erin');
    await page.getByRole('button', { name: 'Add user' }).click();
    await page.waitForLoadState('load');
    const status = page.getByRole('status');
    await status.getByText('User erin added.').waitFor();
    const code = (await status.locator('code').innerText()).trim();
    assert.match(code, /^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$/, `an enrolment code: ${code}`);
    await page.locator('tr[data-user="erin"]').getByText('waiting for enrolment').waitFor();
    await officer.checkPageAtBothWidths('officer-user-added');
    await page.goto(url('/admin/users'));
    assert.ok(!(await page.content()).includes(code), 'the code is not shown again');
  });

  await step('an officer cannot lock himself: the reason is on the page', async () => {
    await page.getByRole('button', { name: `Lock ${env.officer.user}` }).click();
    await page.waitForLoadState('load');
    await page.getByRole('alert').getByText('you cannot reset, lock, unlock or remove your own account').waitFor();
    // The refusal is a 403 page (as the API answers), which chromium reports on the console.
    officer.tolerate((m) => m.type === 'error' && m.text.includes('403') && m.source.endsWith(`/admin/users/${env.officer.user}/lock`));
    await officer.checkPage('officer-own-lock-refused');
  });

  await step('roles with grants and members, and pending changes', async () => {
    await page.getByRole('navigation', { name: 'Officer pages' }).getByRole('link', { name: 'Roles', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Roles' }).waitFor();
    await page.getByRole('heading', { level: 2, name: 'support-agent' }).waitFor();
    await page.locator('section[data-role="support-agent"] li[data-member]').getByText(env.agent.user).waitFor();
    await assertNoMail('roles');
    await officer.checkPageAtBothWidths('officer-roles');
    await page.getByRole('navigation', { name: 'Officer pages' }).getByRole('link', { name: 'Changes', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Pending access changes' }).waitFor();
    await assertNoMail('changes');
    await officer.checkPageAtBothWidths('officer-changes');
  });

  await step('the audit log, filtered by action', async () => {
    await page.getByRole('navigation', { name: 'Officer pages' }).getByRole('link', { name: 'Audit log', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    await page.getByLabel('Action').fill('user.add');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.waitForLoadState('load');
    assert.ok(page.url().includes('action=user.add'), page.url());
    const actions = await page.locator('td[data-action]').allInnerTexts();
    assert.ok(actions.length >= 3, `the users added: ${actions}`);
    assert.ok(actions.every((a) => a === 'user.add'), `only user.add: ${actions}`);
    await assertNoMail('audit');
    await officer.checkPageAtBothWidths('officer-audit');
  });

  await step('"Verify chain" says the chain is intact', async () => {
    await page.getByRole('button', { name: 'Verify chain' }).click();
    await page.waitForLoadState('load');
    const text = await page.getByRole('status').innerText();
    assert.match(text, /Chain intact, \d+ entries\./, text);
    await assertNoMail('audit verified');
    await officer.checkPageAtBothWidths('officer-audit-verified');
  });

  await step('the retention page: no policy, no hold, nothing purged yet', async () => {
    await page.getByRole('navigation', { name: 'Officer pages' }).getByRole('link', { name: 'Retention', exact: true }).click();
    await page.waitForLoadState('load');
    await page.getByRole('heading', { name: 'Retention and erasure', level: 1 }).waitFor();
    assert.equal(await page.locator('[data-none="policies"]').count(), 1);
    assert.equal(await page.locator('[data-none="holds"]').count(), 1);
    await assertNoMail('retention');
    await officer.checkPageAtBothWidths('officer-retention');
  });
});
