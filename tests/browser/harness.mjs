// The harness checks itself: against a tiny server of deliberately faulty pages under the page
// CSP, each check of lib.mjs must fail on its fault and pass on the clean page, so a scenario's
// "zero violations" means something.

import { createServer } from 'node:http';

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "form-action 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'";
const frame = (body) =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">` +
  `<title>Harness</title><link rel="stylesheet" href="/wide.css"></head><body><main><h1>Harness</h1>${body}</main></body></html>`;
const PAGES = {
  '/clean': frame('<p>Nothing wrong here.</p>'),
  '/inline-script': frame('<script>document.title = "x"</script>'),
  '/style-attribute': frame('<p style="color: red">red</p>'),
  '/handler': frame('<img alt="pixel" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" onload="void 0">'),
  '/no-alt': frame('<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">'),
  '/low-contrast': frame('<p class="faint">hard to read</p>'),
  '/sideways': frame('<p class="wide">too wide for a phone</p>'),
  '/console-error': frame('<script src="/throws.js"></script>'),
};
const FILES = {
  '/wide.css': ['text/css', '.wide { width: 600px } .faint { color: #ccc }'],
  '/throws.js': ['text/javascript', 'throw new Error("deliberate")'],
};
const server = createServer((req, res) => {
  const file = FILES[req.url];
  if (file) return res.writeHead(200, { 'content-type': file[0] }).end(file[1]);
  const page = PAGES[req.url];
  res.writeHead(page ? 200 : 404, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': CSP });
  res.end(page ?? frame('<p>no such page</p>'));
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
// lib.mjs reads the base URL when it is first imported: point it at this server.
process.env.MAILROOM_URL = `http://127.0.0.1:${server.address().port}/`;
const { assert, scenario, Session, log } = await import('./lib.mjs');

/** Opens `path` in a session of its own and expects `check` to fail with `expected`. */
async function expectCaught(path, expected, check) {
  const s = await Session.open(`harness${path.replaceAll('/', '-')}`);
  try {
    await s.goto(path);
    await s.page.waitForLoadState('load');
    await assert.rejects(check(s), expected, `${path}: the harness missed the fault`);
    log(`caught ${path} as expected`);
  } finally {
    await s.close();
  }
}

await scenario('harness', async ({ open, step }) => {
  await step('a clean page passes every check at both widths', async () => {
    const s = await open('harness-clean');
    await s.goto('/clean');
    await s.checkPageAtBothWidths('clean');
  });
  await step('CSP: inline script, style attribute and on* handler are each caught', async () => {
    for (const path of ['/inline-script', '/style-attribute', '/handler']) {
      await expectCaught(path, /CSP violations/, async (s) => s.checkPage('caught'));
    }
  });
  await step('a console error (an uncaught exception) is caught', async () => {
    await expectCaught('/console-error', /console errors/, async (s) => s.checkPage('caught'));
  });
  await step('axe: a missing alt text and low contrast are caught', async () => {
    for (const path of ['/no-alt', '/low-contrast']) {
      await expectCaught(path, /axe violation/, async (s) => s.checkPage('caught'));
    }
  });
  await step('a page wider than a phone is caught', async () => {
    await expectCaught('/sideways', /px wide in a 375 px viewport/, async (s) => s.checkPageAtBothWidths('caught'));
  });
  server.close();
});
