// Presence and the "N new — refresh" banner with two agents in two browsers: anna opens a case,
// bert sees "anna is viewing" on the case page and "viewing: anna" in the queue row, anna's page
// learns of bert through its htmx heartbeat; then mail arrives over SMTP and bert's queue list
// shows the banner without moving a row. tests/browser.rs adds bert (anna's password) and sets
// the polling intervals to one second. axe, CSP and both widths on the way.

import { once } from 'node:events';
import { connect } from 'node:net';
import { assert, env, log, scenario, url } from './lib.mjs';

const COLLEAGUE = { user: 'bert', password: env.agent.password };

/** One message over SMTP, the dialogue written out (node has no SMTP client of its own). */
async function sendMail(to, subject) {
  const [host, port] = (process.env.MAILROOM_SMTP ?? '').split(/:(?=\d+$)/);
  assert.ok(port, 'MAILROOM_SMTP is set by tests/browser.rs');
  const socket = connect(Number(port), host);
  let buffer = '';
  const waiting = [];
  const deliver = () => {
    for (let m; waiting.length && (m = buffer.match(/^(?:\d{3}-[^\r\n]*\r\n)*\d{3} [^\r\n]*\r\n/)); ) {
      buffer = buffer.slice(m[0].length);
      waiting.shift()(m[0]);
    }
  };
  socket.setEncoding('utf8');
  socket.on('data', (d) => {
    buffer += d;
    deliver();
  });
  const reply = (code) =>
    new Promise((resolve) => {
      waiting.push(resolve);
      deliver();
    }).then((text) => {
      assert.ok(text.startsWith(code), `SMTP: wanted ${code}, got ${text}`);
      return text;
    });
  await once(socket, 'connect');
  await reply('220');
  const say = async (line, code) => {
    socket.write(`${line}\r\n`);
    return reply(code);
  };
  await say('EHLO browser.test', '250');
  await say('MAIL FROM:<customer@client.example.org>', '250');
  await say(`RCPT TO:<${to}>`, '250');
  await say('DATA', '354');
  const id = `${Date.now()}.${Math.random().toString(36).slice(2)}@client.example.org`;
  const done = await say(
    `From: Ann Customer <customer@client.example.org>\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${id}>\r\n\r\nHello again.\r\n.`,
    '250',
  );
  await say('QUIT', '221');
  socket.end();
  log(`sent "${subject}": ${done.trim()}`);
}

await scenario('presence', async ({ open, step }) => {
  const queue = env.agentQueues[0];
  const anna = await open('anna');
  const bert = await open('bert');
  let caseUrl;
  let caseId;

  await step('anna opens a case from her queue', async () => {
    await anna.login(env.agent);
    await anna.goto(`/queues/${queue}`);
    await anna.page.locator('table.cases tbody tr').first().getByRole('link').first().click();
    await anna.page.waitForURL(/\/cases\/\d+$/);
    caseUrl = new URL(anna.page.url()).pathname;
    caseId = caseUrl.split('/').pop();
    assert.equal((await anna.page.locator('[data-presence]').innerText()).trim(), '', 'alone on the case');
  });

  await step('bert sees "anna is viewing" on the case page', async () => {
    await bert.login(COLLEAGUE);
    await bert.goto(caseUrl);
    const line = bert.page.locator('[data-presence]');
    assert.equal(await line.getAttribute('role'), 'status');
    assert.match(await line.innerText(), /anna is viewing/);
    assert.doesNotMatch(await line.innerText(), /bert/);
    await bert.checkPageAtBothWidths('case');
  });

  await step("anna's heartbeat brings her the news that bert is there", async () => {
    await anna.page.locator('[data-presence]').getByText('bert is viewing').waitFor({ timeout: 10_000 });
    await anna.checkPage('case-with-bert');
  });

  await step('bert sees the marker in the queue row', async () => {
    await bert.goto(`/queues/${queue}`);
    const row = bert.page.locator(`tr[data-case="${caseId}"]`);
    assert.match(await row.locator('[data-presence]').innerText(), /viewing: anna/);
    await bert.checkPageAtBothWidths('queue-marker');
  });

  await step('mail arrives over SMTP: the banner says so and no row moves', async () => {
    const rows = bert.page.locator('table.cases tbody tr');
    const before = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.case));
    await sendMail(`${queue}@example.com`, `Browser test new mail ${Date.now()}`);
    const banner = bert.page.getByRole('link', { name: '1 new case — refresh' });
    await banner.waitFor({ timeout: 10_000 });
    assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.case)), before, 'the rows stayed where they were');
    await bert.checkPageAtBothWidths('queue-banner');
    await banner.click();
    await bert.page.waitForURL(url(`/queues/${queue}`));
    assert.equal(await rows.count(), before.length + 1, 'the refreshed list has the new case');
  });
});
