// The security officer logs in and sees no queue and no customer content on "My queues".

import { assert, env, scenario, url } from './lib.mjs';

await scenario('officer', async ({ open, step }) => {
  const officer = await open('officer');
  const page = officer.page;

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
    const html = await page.content();
    for (const secret of (process.env.MAILROOM_CUSTOMER_TEXT ?? '').split('\n').filter(Boolean)) {
      assert.ok(!html.includes(secret), `customer text ${JSON.stringify(secret)} on the officer's page`);
    }
    await officer.checkPageAtBothWidths('officer-home');
  });
});
