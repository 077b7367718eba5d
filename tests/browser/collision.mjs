// Collision detection with two agents in two browsers, no locks: anna starts a reply, bert
// answers the same case first; anna's "Send" then gets the 409 view (the case page with bert's
// reply marked new, her reply not sent) and "Continue my reply" brings her text back. Also: an
// agent who types the address of another queue's case gets the 404 page, exactly as for a case
// that does not exist. tests/browser.rs adds bert, gives the outbox a long undo window (nothing
// leaves during the scenario) and names a case of a queue anna may not read. axe, CSP and both
// widths on the way.

import { assert, env, scenario } from './lib.mjs';

const COLLEAGUE = { user: 'bert', password: env.agent.password };
const ANNAS_TEXT = 'Anna here: your parcel leaves tomorrow.';
const BERTS_TEXT = 'Bert here: your parcel left today.';

/** Writes `text` on the reply page of `caseUrl` and goes to the preview. */
async function writeReply(session, caseUrl, text) {
  await session.goto(`${caseUrl}/reply`);
  await session.page.getByLabel('Message', { exact: true }).fill(text);
  await session.page.getByRole('button', { name: 'Preview', exact: true }).click();
  await session.page.waitForURL(/\/reply\/preview$/);
}

await scenario('collision', async ({ open, step }) => {
  const queue = env.agentQueues[0];
  const anna = await open('anna');
  const bert = await open('bert');
  let caseUrl;

  await step('anna writes a reply and looks at the preview', async () => {
    await anna.login(env.agent);
    await anna.goto(`/queues/${queue}`);
    await anna.page.locator('table.cases tbody tr').first().getByRole('link').first().click();
    await anna.page.waitForURL(/\/cases\/\d+$/);
    caseUrl = new URL(anna.page.url()).pathname;
    await writeReply(anna, caseUrl, ANNAS_TEXT);
    await anna.checkPage('preview');
  });

  await step('meanwhile bert answers the same case', async () => {
    await bert.login(COLLEAGUE);
    await writeReply(bert, caseUrl, BERTS_TEXT);
    await bert.page.getByRole('button', { name: 'Send', exact: true }).click();
    await bert.page.waitForURL(/\/reply\/\d+$/);
  });

  await step("anna's Send gets the 409 view: nothing sent, bert's reply marked new", async () => {
    const answer = anna.page.waitForResponse((r) => r.url().endsWith(`${caseUrl}/reply/send`));
    await anna.page.getByRole('button', { name: 'Send', exact: true }).click();
    assert.equal((await answer).status(), 409);
    await anna.page.locator('[data-notice="reply-collision"]').waitFor();
    // The 409 answer itself is reported as a failed load in the console; nothing else may be.
    anna.tolerate((m) => m.type === 'error' && m.text.includes('status of 409'));
    const notice = anna.page.locator('[data-notice="reply-collision"]');
    assert.equal(await notice.getAttribute('role'), 'alert');
    assert.match(await notice.innerText(), /changed while you were writing your reply, so it was not sent/);
    const fresh = anna.page.locator('ol.thread li').filter({ has: anna.page.locator('.new-mark') });
    assert.match(await fresh.first().innerText(), /Bert here: your parcel left today\./);
    assert.doesNotMatch(await anna.page.locator('ol.thread').innerText(), /Anna here/, 'her reply is not in the case');
    await anna.checkPageAtBothWidths('collision');
  });

  await step('"Continue my reply" brings her text back; the second Send goes through', async () => {
    await anna.page.getByRole('button', { name: 'Continue my reply', exact: true }).click();
    await anna.page.waitForURL(new RegExp(`${caseUrl}/reply$`));
    assert.equal(await anna.page.getByLabel('Message', { exact: true }).inputValue(), ANNAS_TEXT);
    await anna.page.getByRole('button', { name: 'Preview', exact: true }).click();
    await anna.page.getByRole('button', { name: 'Send', exact: true }).click();
    await anna.page.waitForURL(/\/reply\/\d+$/);
    await anna.goto(caseUrl);
    assert.match(await anna.page.locator('ol.thread').innerText(), /Anna here: your parcel leaves tomorrow\./);
  });

  await step("another queue's case is the 404 page, as a case that does not exist", async () => {
    const foreign = process.env.MAILROOM_FOREIGN_CASE;
    assert.ok(foreign, 'MAILROOM_FOREIGN_CASE is set by tests/browser.rs');
    const other = await anna.page.goto(new URL(`/cases/${foreign}`, env.baseUrl).toString());
    assert.equal(other.status(), 404);
    const otherText = await anna.page.locator('main').innerText();
    const missing = await anna.page.goto(new URL('/cases/999999999', env.baseUrl).toString());
    assert.equal(missing.status(), 404);
    assert.equal(await anna.page.locator('main').innerText(), otherText, 'the same page for both');
    anna.tolerate((m) => m.type === 'error' && m.text.includes('status of 404'));
    await anna.checkPage('foreign-case-404');
  });
});
