// A supervisor logs in, opens the dashboard from the header link, sees every chart (an SVG image
// with its title) with its data table beside it and a CSV link; the page is accessible, within
// the CSP and fits a phone. An agent's header has no such link.

import { assert, env, scenario, url } from './lib.mjs';

const supervisor = {
  user: process.env.MAILROOM_SUPERVISOR_USER ?? '',
  password: process.env.MAILROOM_SUPERVISOR_PASSWORD ?? '',
};
const CHARTS = ['backlog', 'flow', 'times', 'sla', 'category', 'tier'];

await scenario('dashboard', async ({ open, step }) => {
  assert.ok(supervisor.user, 'MAILROOM_SUPERVISOR_USER is not set (tests/browser.rs sets it)');
  const lead = await open('supervisor');
  const page = lead.page;

  await step('the header links the dashboard; following it opens /dashboard', async () => {
    await lead.login(supervisor);
    assert.equal(page.url(), url('/'));
    const nav = page.getByRole('navigation');
    await nav.getByRole('link', { name: 'Dashboard', exact: true }).click();
    await page.waitForURL(url('/dashboard'));
    await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
  });

  await step('every chart is a visible image with its table and CSV link', async () => {
    for (const chart of CHARTS) {
      const svg = page.locator(`svg[data-chart="${chart}"]`);
      assert.equal(await svg.getAttribute('role'), 'img', `${chart}: role`);
      assert.ok(await svg.isVisible(), `${chart}: the chart is visible`);
      const box = await svg.boundingBox();
      assert.ok(box && box.width > 100 && box.height > 10, `${chart}: drawn at a useful size: ${JSON.stringify(box)}`);
      const title = await svg.locator('title').textContent();
      const image = page.getByRole('img', { name: title, exact: true });
      assert.equal(await image.count(), 1, `${chart}: one image named "${title}"`);
      const table = page.locator(`table[data-table="${chart}"]`);
      assert.ok(await table.isVisible(), `${chart}: its table is visible`);
      assert.equal(await table.locator('caption').textContent(), title, `${chart}: the table's caption names the chart`);
      assert.equal(await page.locator(`a[href="/dashboard/${chart}.csv"]`).count(), 1, `${chart}: CSV link`);
    }
    // The mail sent before the scenario: each queue got new cases today, all unassigned.
    const mail = Number(process.env.MAILROOM_MAIL_PER_QUEUE ?? 'NaN');
    const backlog = page.locator('table[data-table="backlog"] tr[data-row="support"] td');
    assert.deepEqual((await backlog.allInnerTexts()).slice(0, 2).map(Number), [mail, mail], 'support: open, unassigned');
    await lead.checkPageAtBothWidths('dashboard');
  });

  await step('the queue filter narrows the dashboard without JavaScript needed', async () => {
    await page.getByLabel('Queue', { exact: true }).selectOption('support');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.waitForURL(url('/dashboard?queue=support'));
    assert.equal(await page.locator('table[data-table="backlog"] tbody tr').count(), 1);
    await lead.checkPage('dashboard-filtered');
  });

  await step('the header links the statistics of a period; the page is accessible and fits a phone', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Statistics', exact: true }).click();
    await page.waitForURL(url('/stats'));
    await page.getByRole('heading', { level: 1, name: 'Statistics of a period' }).waitFor();
    // The last 28 days by default, today included: the mail sent before the scenario is counted.
    const mail = Number(process.env.MAILROOM_MAIL_PER_QUEUE ?? 'NaN');
    const support = page.locator('table[data-table="queue"] tr[data-row="support"] td');
    assert.equal(Number(await support.innerText()), mail, 'support: cases opened');
    assert.equal(await page.locator('a[data-csv="stats"]').count(), 1, 'CSV link');
    await lead.checkPageAtBothWidths('stats');
  });

  const agent = await open('agent');
  await step('an agent has no dashboard link and gets the 404 page', async () => {
    await agent.login(env.agent);
    assert.equal(await agent.page.getByRole('link', { name: 'Dashboard' }).count(), 0);
    assert.equal(await agent.page.getByRole('link', { name: 'Statistics' }).count(), 0);
    const response = await agent.goto('/dashboard');
    assert.equal(response.status(), 404);
    // The 404 answer itself is reported as a failed load in the console; nothing else may be.
    agent.tolerate((m) => m.type === 'error' && m.text.includes('404'));
    await agent.checkPage('dashboard-404');
  });
});
