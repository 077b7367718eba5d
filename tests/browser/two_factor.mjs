// Two-factor login in the browser: the agent opens Settings, starts the set-up (the QR code is an
// inline SVG image with a name, the secret beside it), switches it on with a code computed here
// (RFC 6238 with Node's own HMAC-SHA-1, sharing no code with the server), sees his ten recovery
// codes once, makes an IMAP app password, logs out, and logs in again: the password, then the
// code step, then home. axe, CSP and both widths on every page.

import { createHmac } from 'node:crypto';
import { assert, env, scenario, url } from './lib.mjs';

/** RFC 4648 base32 (no padding) to bytes. */
function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text.replace(/=+$/, '').toUpperCase()) {
    const v = alphabet.indexOf(c);
    assert.ok(v >= 0, `not base32: ${c}`);
    bits += v.toString(2).padStart(5, '0');
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** The 6-digit TOTP code of `secret` for the 30-second step `offset` steps from now. */
function totp(secret, offset = 0) {
  const step = Math.floor(Date.now() / 1000 / 30) + offset;
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const at = mac[mac.length - 1] & 0x0f;
  const value = (mac.readUInt32BE(at) & 0x7fffffff) % 1_000_000;
  return value.toString().padStart(6, '0');
}

await scenario('two_factor', async ({ open, step }) => {
  const agent = await open('two-factor');
  const page = agent.page;
  const section = page.locator('section#two-factor');
  let secret;

  await step('Settings: set up two-factor login, the QR code and the secret', async () => {
    await agent.login(env.agent);
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.waitForURL(url('/settings'));
    assert.equal(await section.locator('[data-totp="off"]').count(), 1, 'off to begin with');
    await section.getByRole('button', { name: 'Set up two-factor login' }).click();
    await page.waitForLoadState('load');
    const qr = page.getByRole('img', { name: 'QR code of the secret for the authenticator app' });
    await qr.waitFor();
    assert.equal(await qr.locator('svg').count(), 1, 'the QR code is an inline SVG');
    secret = (await page.locator('[data-totp-secret]').textContent()).trim();
    assert.match(secret, /^[A-Z2-7]{32}$/, 'a 160-bit base32 secret');
    await agent.checkPageAtBothWidths('enrol');
  });

  await step('a wrong code is refused, the right one switches it on and shows ten recovery codes', async () => {
    const right = totp(secret);
    const wrong = right === '000000' ? '111111' : '000000';
    await page.locator('section#two-factor').getByLabel('Code', { exact: true }).fill(wrong);
    await page.locator('section#two-factor').getByRole('button', { name: 'Switch on' }).click();
    await page.waitForLoadState('load');
    assert.equal(await page.locator('[data-recovery-codes]').count(), 0, 'not on after a wrong code');
    assert.ok(await page.getByRole('img', { name: 'QR code of the secret for the authenticator app' }).isVisible(), 'the set-up goes on');
    // The refusal is a 422 answer, which chromium reports on the console.
    agent.tolerate((m) => m.type === 'error' && m.text.includes('422'));
    await page.locator('section#two-factor').getByLabel('Code', { exact: true }).fill(right);
    await page.locator('section#two-factor').getByRole('button', { name: 'Switch on' }).click();
    await page.waitForLoadState('load');
    assert.equal(await page.locator('[data-recovery-codes] li').count(), 10, 'on: ten recovery codes, shown this once');
    await agent.checkPageAtBothWidths('recovery-codes');
  });

  await step('an app password for the mail program', async () => {
    await page.getByLabel('Device').fill('Thunderbird');
    await page.getByRole('button', { name: 'Create an app password' }).click();
    await page.waitForLoadState('load');
    const password = (await page.locator('[data-app-password]').textContent()).trim();
    assert.equal(password.length, 24, `an app password: ${password}`);
    assert.equal(await page.locator('[data-app-device="Thunderbird"]').count(), 1, 'listed by its device');
    assert.equal(await page.locator('[data-recovery-codes]').count(), 0, 'the recovery codes are not shown again');
    assert.equal(await page.locator('section#two-factor [data-totp="on"]').count(), 1, 'two-factor login is on');
    await agent.checkPageAtBothWidths('app-password');
  });

  await step('log out; the password alone leads to the code step, the next code to home', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForLoadState('load');
    await agent.login(env.agent);
    const code = page.getByLabel('Code from your authenticator app, or a recovery code');
    await code.waitFor();
    assert.notEqual(page.url(), url('/'), 'not in yet');
    await agent.checkPageAtBothWidths('code-step');
    // The next step's code: the one that switched it on may not be used again.
    await code.fill(totp(secret, 1));
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForURL(url('/'));
    await page.getByRole('heading', { level: 1, name: 'My queues' }).waitFor();
  });
});
