// The harness every browser scenario uses (tests/browser.rs runs `node tests/browser/<name>.mjs`):
// Debian's chromium through playwright-core, one fresh profile per session, every console message
// and CSP violation collected (a violation or console error fails the scenario), axe WCAG 2.1 A/AA
// checks, screenshots at desktop and phone width into MAILROOM_BROWSER_OUT.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { AxeBuilder } from '@axe-core/playwright';

export { assert };

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 375, height: 812 };
const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
// Without the networking flags chromium keeps trying Google's services on a closed network.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is not set (tests/browser.rs sets it)`);
  return value;
}

const list = (name) => (process.env[name] ?? '').split(',').filter(Boolean);

/** What tests/browser.rs hands the scenario: the server, the accounts, the output dir. */
export const env = {
  baseUrl: required('MAILROOM_URL'),
  out: required('MAILROOM_BROWSER_OUT'),
  chromium: process.env.MAILROOM_CHROMIUM ?? '/usr/bin/chromium',
  agent: { user: required('MAILROOM_AGENT_USER'), password: required('MAILROOM_AGENT_PASSWORD') },
  officer: { user: required('MAILROOM_OFFICER_USER'), password: required('MAILROOM_OFFICER_PASSWORD') },
  /** Queues the agent may read, and queues that exist but he may not. */
  agentQueues: list('MAILROOM_AGENT_QUEUES'),
  otherQueues: list('MAILROOM_OTHER_QUEUES'),
};

export const url = (path) => new URL(path, env.baseUrl).toString();

/**
 * One browser session: its own chromium with a fresh --user-data-dir (a persistent context is
 * the only way playwright takes one), one page, and everything the page reports.
 */
export class Session {
  constructor(name, context, page, profile) {
    this.name = name;
    this.context = context;
    this.page = page;
    this.profile = profile;
    this.console = [];
    this.cspViolations = [];
  }

  static async open(name, { locale = 'en-US', viewport = DESKTOP } = {}) {
    const profile = mkdtempSync(join(tmpdir(), 'mailroom-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: env.chromium,
      headless: true,
      args: CHROMIUM_ARGS,
      locale,
      viewport,
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const session = new Session(name, context, page, profile);
    // The page's own CSP does not apply to bindings and init scripts (they go through CDP).
    await context.exposeBinding('__mailroomCspViolation', (_source, v) => {
      session.cspViolations.push(v);
      log(`[${name}] CSP VIOLATION ${JSON.stringify(v)}`);
    });
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__mailroomCspViolation({
          directive: e.effectiveDirective,
          blocked: e.blockedURI,
          document: e.documentURI,
          source: e.sourceFile,
          line: e.lineNumber,
          sample: e.sample,
        });
      });
    });
    page.on('console', (m) => {
      // `source` is what the message is about (a failed load names the resource), `url` the page.
      const entry = { type: m.type(), text: m.text(), source: m.location().url, url: page.url() };
      log(`[${name}] console.${entry.type}: ${entry.text} (${entry.source}, page ${entry.url})`);
      // Chromium asks every site for /favicon.ico; the contract has none (yet).
      if (entry.type === 'error' && new URL(entry.source || entry.url).pathname === '/favicon.ico') return;
      session.console.push(entry);
    });
    page.on('pageerror', (e) => {
      session.console.push({ type: 'error', text: `uncaught: ${e.message}`, url: page.url() });
      log(`[${name}] page error: ${e.message}`);
    });
    return session;
  }

  async goto(path) {
    const response = await this.page.goto(url(path));
    return response;
  }

  /** Logs in through the form by its accessible names. */
  async login({ user, password }) {
    await this.goto('/login');
    await this.page.getByLabel('User name').fill(user);
    await this.page.getByLabel('Password').fill(password);
    await this.page.getByRole('button', { name: 'Log in' }).click();
    await this.page.waitForLoadState('load');
  }

  /** A screenshot, the CSP/console check and axe, at the current viewport. */
  async checkPage(label) {
    await screenshot(this.page, `${this.name}-${label}`);
    this.assertClean(label);
    await checkAxe(this.page, `${this.name}/${label}`);
  }

  /** The same at 1280×800 and at 375×812, returning to desktop width. */
  async checkPageAtBothWidths(label) {
    await this.page.setViewportSize(DESKTOP);
    await this.checkPage(`${label}-desktop`);
    await this.page.setViewportSize(PHONE);
    await this.checkPage(`${label}-phone`);
    await assertNoSideways(this.page, `${this.name}/${label}-phone`);
    await this.page.setViewportSize(DESKTOP);
  }

  /** Zero CSP violations and zero console errors so far. */
  assertClean(label) {
    assert.deepEqual(this.cspViolations, [], `${this.name}/${label}: CSP violations`);
    const errors = this.console.filter((m) => m.type === 'error');
    assert.deepEqual(errors, [], `${this.name}/${label}: console errors`);
  }

  /** Drops console messages a step expects (each one logged), e.g. a page not built yet. */
  tolerate(expected) {
    const kept = [];
    for (const m of this.console) {
      if (expected(m)) log(`[${this.name}] expected: console.${m.type}: ${m.text}`);
      else kept.push(m);
    }
    this.console = kept;
  }

  async close() {
    try {
      await this.context.close();
    } finally {
      rmSync(this.profile, { recursive: true, force: true });
    }
  }
}

/** axe-core with the WCAG 2.0/2.1 A and AA rules; every violation is printed with its nodes. */
export async function checkAxe(page, label) {
  const results = await new AxeBuilder({ page }).withTags(AXE_TAGS).analyze();
  for (const v of results.violations) {
    log(`AXE ${label}: ${v.id} (${v.impact}) ${v.help} — ${v.helpUrl}`);
    for (const node of v.nodes) {
      log(`    at ${JSON.stringify(node.target)}: ${node.html}`);
      log(`       ${node.failureSummary?.replaceAll('\n', '\n       ')}`);
    }
  }
  assert.equal(results.violations.length, 0, `${label}: ${results.violations.length} axe violation(s), listed above`);
  log(`axe ${label}: ${results.passes.length} rules pass, 0 violations`);
}

/** The page fits the viewport's width: a phone user never scrolls sideways to read it. */
export async function assertNoSideways(page, label) {
  const { scrollWidth, innerWidth, widest } = await page.evaluate(() => {
    const over = [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
      .map((e) => `${e.tagName.toLowerCase()}${e.className ? '.' + e.className : ''}`);
    return { scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, widest: over.slice(0, 8) };
  });
  assert.ok(scrollWidth <= innerWidth, `${label}: ${scrollWidth} px wide in a ${innerWidth} px viewport; beyond it: ${widest.join(', ')}`);
}

export async function screenshot(page, name) {
  mkdirSync(env.out, { recursive: true });
  const path = join(env.out, `${name.replace(/[^A-Za-z0-9_.-]+/g, '_')}.png`);
  await page.screenshot({ path, fullPage: true });
  log(`screenshot ${path}`);
  return path;
}

const started = Date.now();
export function log(line) {
  const seconds = ((Date.now() - started) / 1000).toFixed(1).padStart(5);
  console.log(`[${seconds}s] ${line}`);
}

/**
 * Runs the named steps in order; the first failure is printed (with a screenshot of every open
 * session's page) and the process exits 1, so tests/browser.rs sees it. Sessions opened through
 * `open` are closed at the end either way.
 */
export async function scenario(name, body) {
  const sessions = [];
  const open = async (sessionName, options) => {
    const s = await Session.open(sessionName, options);
    sessions.push(s);
    return s;
  };
  const step = async (title, fn) => {
    log(`step: ${title}`);
    await fn();
  };
  let failed = false;
  try {
    log(`scenario ${name} against ${env.baseUrl}`);
    await body({ open, step });
    for (const s of sessions) s.assertClean('end of scenario');
    log(`scenario ${name}: passed`);
  } catch (e) {
    failed = true;
    log(`scenario ${name}: FAILED\n${e.stack ?? e}`);
    for (const s of sessions) {
      await screenshot(s.page, `${s.name}-FAILED`).catch(() => {});
      log(`[${s.name}] page at failure: ${s.page.url()}`);
    }
  } finally {
    for (const s of sessions) await s.close().catch((e) => log(`closing ${s.name}: ${e}`));
  }
  process.exit(failed ? 1 : 0);
}
