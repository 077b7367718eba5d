// An agent opens his queue from "My queues", sees its cases (and only its cases), narrows the list
// with the filter form (htmx swaps the rows and pushes the URL), sees a bulk status change done
// for one case and refused with the reason for the other, ticks two cases, claims them in bulk
// and sees each reported as done, with himself as their assignee.

import { assert, env, scenario, url } from './lib.mjs';

await scenario('queue', async ({ open, step }) => {
  const agent = await open('queue');
  const page = agent.page;
  const queue = env.agentQueues[0];
  const mail = Number(process.env.MAILROOM_MAIL_PER_QUEUE ?? 'NaN');
  const subjects = (process.env.MAILROOM_CUSTOMER_TEXT ?? '').split('\n').filter(Boolean);
  const cases = page.locator('table.cases tbody tr');

  await step('open the queue from "My queues"', async () => {
    await agent.login(env.agent);
    await page.getByRole('link', { name: queue, exact: true }).click();
    await page.waitForURL(url(`/queues/${queue}`));
    await page.getByRole('heading', { level: 1, name: new RegExp(queue) }).waitFor();
  });

  await step('the rows are this queue\'s cases, with their columns', async () => {
    assert.equal(await cases.count(), mail, 'one row per case');
    const text = await page.locator('table.cases').innerText();
    for (const subject of subjects) {
      assert.equal(text.includes(subject), subject.includes(`for ${queue} `), `${subject} in the list: ${text}`);
    }
    for (const column of ['Number', 'Due', 'Priority', 'Category', 'Customer', 'Subject', 'Status', 'Assignee']) {
      assert.equal(await page.getByRole('columnheader', { name: column, exact: true }).count(), 1, column);
    }
    assert.equal(await page.locator('table.cases time[datetime]').count(), mail, 'every due time as <time>');
    await agent.checkPageAtBothWidths('queue-list');
  });

  await step('a filter swaps the rows in place and puts itself into the URL', async () => {
    await page.getByLabel('Priority', { exact: true }).first().selectOption('urgent');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.waitForURL(/priority=urgent/);
    await page.getByText('No case matches.').waitFor();
    assert.equal(await cases.count(), 0);
    await agent.checkPage('queue-filtered');
    await agent.goto(`/queues/${queue}`);
  });

  await step('a bulk action reports each case: one done, one refused with the reason', async () => {
    const [first, second] = await cases.evaluateAll((rows) => rows.map((r) => r.dataset.case));
    // Open the first case, then ask for both to be "new": the opened one cannot go back.
    await page.locator(`#pick-${first}`).check();
    await page.getByLabel('Action').selectOption('status');
    await page.locator('#b-status').selectOption('open');
    await page.getByRole('button', { name: 'Apply to the selected cases' }).click();
    await page.getByRole('heading', { level: 2, name: 'Results' }).waitFor();
    assert.equal(await page.locator('li[data-result="done"]').count(), 1);
    await page.locator(`#pick-${first}`).check();
    await page.locator(`#pick-${second}`).check();
    await page.getByLabel('Action').selectOption('status');
    await page.locator('#b-status').selectOption('new');
    await page.getByRole('button', { name: 'Apply to the selected cases' }).click();
    await page.locator('li[data-result="refused"]').waitFor();
    const refused = await page.locator('li[data-result="refused"]').allInnerTexts();
    assert.equal(refused.length, 1, refused.join('\n'));
    assert.match(refused[0], /refused: a case that has been worked on cannot become new again/);
    assert.equal(await page.locator('li[data-result="done"]').count(), 1);
    await agent.checkPage('queue-bulk-refused');
  });

  await step('tick two cases and claim them in bulk', async () => {
    const boxes = page.getByRole('checkbox', { name: /^Select case / });
    assert.equal(await boxes.count(), mail);
    await boxes.nth(0).check();
    await boxes.nth(1).check();
    await page.getByLabel('Action').selectOption('claim');
    await page.getByRole('button', { name: 'Apply to the selected cases' }).click();
    await page.getByRole('heading', { level: 2, name: 'Results' }).waitFor();
    const done = page.locator('li[data-result="done"]');
    assert.equal(await done.count(), 2, await page.locator('.results').innerText());
    assert.equal(await page.locator('li[data-result="refused"]').count(), 0);
    const assignees = await page.locator('td[data-col="assignee"]').allInnerTexts();
    assert.deepEqual(assignees.map((a) => a.trim()), [env.agent.user, env.agent.user], 'both now his');
    await agent.checkPageAtBothWidths('queue-bulk-results');
  });
});
