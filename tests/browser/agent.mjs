// An agent logs in, lands on "My queues", sees exactly his queues as links named like them
// (with the open and unassigned counts of the mail sent), follows one, logs out and is back at the login page (and "/" no longer lets him in).

import { assert, env, scenario, url } from './lib.mjs';

await scenario('agent', async ({ open, step }) => {
  const agent = await open('agent');
  const page = agent.page;

  await step('log in and land on "My queues"', async () => {
    await agent.login(env.agent);
    assert.equal(page.url(), url('/'));
    await page.getByRole('heading', { level: 1, name: 'My queues' }).waitFor();
  });

  await step('his queues are links named like the queue; no other queue appears', async () => {
    assert.ok(env.agentQueues.length > 0, 'MAILROOM_AGENT_QUEUES is empty');
    for (const queue of env.agentQueues) {
      const link = page.getByRole('link', { name: queue, exact: true });
      assert.equal(await link.count(), 1, `one link named ${queue}`);
      assert.equal(await link.getAttribute('href'), `/queues/${queue}`);
    }
    // Each queue got this many new cases over SMTP, nobody took one: open and unassigned.
    const mail = Number(process.env.MAILROOM_MAIL_PER_QUEUE ?? 'NaN');
    for (const queue of env.agentQueues) {
      const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: queue, exact: true }) });
      const counts = await row.getByRole('cell').allInnerTexts();
      assert.deepEqual(counts.slice(0, 2).map((c) => Number(c.trim())), [mail, mail], `${queue}: open, unassigned in ${counts}`);
    }
    for (const queue of env.otherQueues) {
      assert.equal(await page.getByRole('link', { name: queue, exact: true }).count(), 0, `a link to ${queue}`);
      assert.equal(await page.locator(`a[href="/queues/${queue}"]`).count(), 0, `a link to /queues/${queue}`);
    }
    await agent.checkPageAtBothWidths('my-queues');
  });

  await step('following a queue link opens its URL', async () => {
    const queue = env.agentQueues[0];
    await page.getByRole('link', { name: queue, exact: true }).click();
    await page.waitForURL(url(`/queues/${queue}`));
    // The queue list (tests/browser/queue.mjs goes further): accessible, within the CSP, fitting a phone.
    await agent.checkPageAtBothWidths('queue');
    await agent.goto('/');
  });

  await step('log out: back at the login page, and the session is gone', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(url('/login'));
    await page.getByLabel('User name').waitFor();
    await agent.goto('/');
    assert.equal(page.url(), url('/login'));
    const cookies = await agent.context.cookies(env.baseUrl);
    assert.ok(!cookies.some((c) => c.name === 'mailroom_session' && c.value), `session cookie left: ${JSON.stringify(cookies)}`);
  });
});
