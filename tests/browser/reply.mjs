// Replies in the browser. An agent opens his queue, opens the reply page of a case, chooses a
// template (filled on the server), previews and sends; after the undo window the capture SMTP
// server (tests/browser.rs) receives the reply with [MR-…] in the subject; the customer answers
// over SMTP quoting the tag and the answer joins the same case. A second reply is taken back with
// "Undo" and never arrives. In a queue with review = true the author cannot approve her own
// reply; a second reviewer approves it from "Replies awaiting my review" and it is sent.

import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { assert, env, log, scenario, url } from './lib.mjs';

const captureDir = process.env.MAILROOM_CAPTURE_DIR;
const undoSeconds = Number(process.env.MAILROOM_UNDO_SECONDS ?? 'NaN');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The messages the capture server received so far. */
function captured() {
  return readdirSync(captureDir)
    .filter((f) => f.endsWith('.eml'))
    .sort()
    .map((f) => readFileSync(join(captureDir, f), 'utf8'));
}

async function waitForMail(count, seconds) {
  for (let i = 0; i < seconds * 10; i++) {
    if (captured().length >= count) return captured();
    await sleep(100);
  }
  throw new Error(`expected ${count} captured message(s), got ${captured().length}`);
}

/** The Subject header, unfolded. */
const subjectOf = (data) => {
  const head = data.split('\r\n\r\n')[0].replace(/\r\n[ \t]+/g, ' ');
  return (head.split('\r\n').find((l) => l.startsWith('Subject: ')) ?? '').slice(9);
};

/** One SMTP transaction to mailroom (the customer's answer). */
function smtpSend(from, to, data) {
  const [host, port] = process.env.MAILROOM_SMTP.split(':');
  const commands = [`EHLO customer.example`, `MAIL FROM:<${from}>`, `RCPT TO:<${to}>`, 'DATA', `${data}\r\n.`, 'QUIT'];
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), host);
    let buffer = '';
    let replies = [];
    socket.on('data', (chunk) => {
      buffer += chunk.toString();
      let end;
      while ((end = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (line[3] === '-') continue;
        replies.push(line);
        if (!/^[23]/.test(line)) return reject(new Error(`SMTP refused: ${line}`));
        const next = commands.shift();
        if (next === undefined) return;
        socket.write(`${next}\r\n`);
      }
    });
    socket.on('close', () => resolve(replies));
    socket.on('error', reject);
  });
}

/** The reply page of the first case listed in `queue` that is not `except`; returns its id. */
async function openReplyPage(session, queue, except) {
  await session.goto(`/queues/${queue}`);
  const ids = await session.page.locator('table.cases tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.case));
  const id = ids.find((i) => i !== except);
  assert.ok(id, `a case in ${queue} other than ${except}: ${ids}`);
  await session.goto(`/cases/${id}/reply`);
  await session.page.getByRole('heading', { level: 1, name: /^Reply to / }).waitFor();
  return id;
}

await scenario('reply', async ({ open, step }) => {
  const agent = await open('reply');
  const page = agent.page;
  const queue = env.agentQueues[0];
  let caseId;
  let tagged;

  await step('log in, open the queue and the reply page of a case', async () => {
    await agent.login(env.agent);
    await page.getByRole('link', { name: queue, exact: true }).click();
    await page.waitForURL(url(`/queues/${queue}`));
    caseId = await openReplyPage(agent, queue);
    await agent.checkPageAtBothWidths('reply-form');
  });

  await step('choose a template: the server fills the message', async () => {
    await page.getByLabel('Template', { exact: true }).selectOption('Thank you');
    await page.getByRole('button', { name: 'Use this template' }).click();
    await page.waitForURL(/template=Thank/);
    const body = await page.getByLabel('Message', { exact: true }).inputValue();
    assert.match(body, /^Dear Ann Customer,\nthank you for your message MR-/);
    assert.match(body, new RegExp(`\\n${env.agent.user}$`));
    await agent.checkPage('reply-template');
  });

  await step('preview shows exactly what leaves', async () => {
    await page.getByRole('button', { name: 'Preview' }).click();
    await page.getByRole('heading', { level: 1, name: /^Preview of the reply to / }).waitFor();
    assert.equal(await page.locator('[data-draft="from"]').innerText(), 'support@example.com');
    assert.match(await page.locator('[data-draft="to"]').innerText(), /customer@client\.example\.org/);
    tagged = await page.locator('[data-draft="subject"]').innerText();
    assert.match(tagged, /^Re: \[MR-[^\]]+\] /);
    assert.match(await page.locator('[data-draft="body"]').innerText(), /^Dear Ann Customer,/);
    await agent.checkPageAtBothWidths('reply-preview');
  });

  await step('send: queued with its undo deadline, then delivered with the tag', async () => {
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await page.getByText('Reply queued — it leaves at').waitFor();
    await page.getByRole('button', { name: 'Undo' }).waitFor();
    assert.equal(captured().length, 0, 'nothing within the undo window');
    await agent.checkPage('reply-queued');
    const [mail] = await waitForMail(1, undoSeconds + 20);
    assert.equal(subjectOf(mail), tagged);
    await page.reload();
    await page.getByText('The reply has been sent.').waitFor();
    await agent.checkPage('reply-sent');
  });

  await step('the customer answers over SMTP quoting the tag: it joins the same case', async () => {
    const answer = [
      'From: Ann Customer <customer@client.example.org>',
      'To: support@example.com',
      `Subject: Re: ${tagged}`,
      `Message-ID: <answer-${Date.now()}@client.example.org>`,
      '',
      'Thank you!',
    ].join('\r\n');
    await smtpSend('customer@client.example.org', 'support@example.com', answer);
    let messages = 0;
    for (let i = 0; i < 100 && messages < 2; i++) {
      const response = await page.request.get(url(`/api/cases/${caseId}`));
      assert.equal(response.status(), 200);
      messages = (await response.json()).messages.length;
      if (messages < 2) await sleep(100);
    }
    assert.equal(messages, 2, 'the answer is the second message of the same case');
  });

  await step('undo within the window: withdrawn, and nothing ever arrives', async () => {
    await openReplyPage(agent, queue, caseId);
    await page.getByLabel('Message', { exact: true }).fill('We will call you tomorrow.');
    await page.getByRole('button', { name: 'Preview' }).click();
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await page.getByRole('button', { name: 'Undo' }).click();
    await page.getByText('Reply withdrawn — it was not sent.').waitFor();
    await agent.checkPage('reply-withdrawn');
    await sleep((undoSeconds + 1.5) * 1000);
    assert.equal(captured().length, 1, 'only the first reply was ever sent');
  });

  await step('review: the author cannot approve her own reply; another reviewer approves it', async () => {
    const author = await open('review-author');
    await author.login({ user: process.env.MAILROOM_REVIEW_AUTHOR, password: env.agent.password });
    await openReplyPage(author, 'vip');
    await author.page.getByLabel('Message', { exact: true }).fill('Dear {customer_name}, here is our offer.');
    await author.page.getByRole('button', { name: 'Preview' }).click();
    await author.page.getByRole('button', { name: 'Send', exact: true }).click();
    await author.page.getByText('Awaiting review').waitFor();
    await author.checkPage('review-awaiting');
    await author.page.getByRole('link', { name: 'Write another reply' }).click();
    assert.equal(await author.page.getByRole('button', { name: 'Approve and send' }).count(), 0, 'no approve button for the author');
    await author.checkPage('review-author-form');

    const reviewer = await open('reviewer');
    await reviewer.login({ user: process.env.MAILROOM_REVIEWER, password: env.agent.password });
    await reviewer.goto('/reviews');
    await reviewer.checkPageAtBothWidths('reviews');
    await reviewer.page.locator('tr[data-review] a').first().click();
    await reviewer.page.getByRole('button', { name: 'Approve and send' }).click();
    await reviewer.page.getByText('Reply queued — it leaves at').waitFor();
    await reviewer.checkPage('review-approved');
    const mails = await waitForMail(2, undoSeconds + 20);
    assert.match(subjectOf(mails[1]), /^Re: \[MR-[^\]]+\] VIP question /);
    assert.match(mails[1], /Dear Vic Customer, here is our offer\./);
    log('the approved reply arrived');
  });
});
