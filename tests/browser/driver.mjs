#!/usr/bin/env node
/**
 * Browser driver for tests/browser: Debian's Chromium, headless, through playwright-core
 * (web/node_modules; no browser download). One JSON command per stdin line, one JSON answer per
 * stdout line: `{"ok": true, "value": ...}` or `{"ok": false, "error": "..."}`.
 *
 * argv[2]: JSON options {chromium, viewport_w_px, viewport_h_px, user_agent}.
 * Commands ({"cmd": name, ...}):
 *   goto {url}                      navigate, wait for `load`
 *   eval {expr}                     page.evaluate(expr); the value must be JSON
 *   wait_for {expr, timeout_ms}     wait until expr is truthy; value = ms waited
 *   mouse_move {x, y, steps}        real pointer moves (pointermove events)
 *   hover {selector, steps}         move the pointer onto the element's centre
 *   click {selector}                click the element (pointer moves there first)
 *   wheel_to_pct {pct}              scroll with the mouse wheel until scroll depth >= pct (of the document)
 *   set_visibility {state}          emulate 'hidden'/'visible' (see below)
 *   screenshot {path, full_page}    PNG
 *   sleep {ms}
 *   clock_install / clock_pause     Playwright's fake clock: install before goto; pause = time stands still
 *   clock_run_for {ms}              advance the paused fake clock by ms (timers due in between fire)
 *   close
 *
 * Why visibility is emulated: headless Chromium keeps every page `visible` (measured here with
 * playwright-core 1.64 and Chromium 156: a minimized window, a second tab brought to front, a tab
 * created in the background and a frozen page all still report `visible`), so `set_visibility`
 * overrides `document.visibilityState`/`document.hidden` and dispatches the real `visibilitychange`
 * event, which is exactly what the SDK listens to.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

// playwright-core lives in web/node_modules (`npm ci` in web/), not beside this file.
const WEB_DIR = process.env.INTENTFLOW_WEB_DIR || join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'web');
const { chromium } = createRequire(join(WEB_DIR, 'package.json'))('playwright-core');

const opts = JSON.parse(process.argv[2] || '{}');

/** Chromium flags from .library/env/machines/polyglot.md: without the background-networking ones
 * Chromium's own connections are refused by this closed network. */
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** `as_visitor`: look like a person's browser to the page: Chromium then does not set
 * navigator.webdriver, which the SDK reports as `is_bot` (automation says so itself). */
const args = opts.as_visitor ? [...CHROMIUM_ARGS, '--disable-blink-features=AutomationControlled'] : CHROMIUM_ARGS;
const browser = await chromium.launch({ executablePath: opts.chromium || '/usr/bin/chromium', headless: true, args });
const context = await browser.newContext({
  viewport: { width: opts.viewport_w_px || 1280, height: opts.viewport_h_px || 800 },
  userAgent: opts.user_agent || undefined,
});
const page = await context.newPage();
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(String(e)));
page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });

const out = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

async function centre(selector) {
  const box = await page.locator(selector).first().boundingBox();
  if (!box) throw new Error(`no box for ${selector}`);
  return { x: box.x + box.width / 2, y: box.y + Math.min(box.height / 2, 20) };
}

const commands = {
  async goto({ url }) { await page.goto(url, { waitUntil: 'load' }); return page.url(); },
  async eval({ expr }) { return page.evaluate(expr); },
  async wait_for({ expr, timeout_ms }) {
    const t0 = Date.now();
    await page.waitForFunction(expr, null, { timeout: timeout_ms || 10000, polling: 10 });
    return Date.now() - t0;
  },
  async mouse_move({ x, y, steps }) { await page.mouse.move(x, y, { steps: steps || 10 }); return null; },
  async hover({ selector, steps }) {
    await page.locator(selector).first().scrollIntoViewIfNeeded();
    const c = await centre(selector);
    await page.mouse.move(c.x, c.y, { steps: steps || 15 });
    return c;
  },
  async click({ selector }) {
    await page.locator(selector).first().scrollIntoViewIfNeeded();
    const c = await centre(selector);
    await page.mouse.move(c.x, c.y, { steps: 10 });
    await page.mouse.click(c.x, c.y);
    return c;
  },
  async wheel_to_pct({ pct }) {
    for (let i = 0; i < 200; i++) {
      const depth = await page.evaluate(() => {
        const h = Math.max(document.documentElement.scrollHeight, document.body.scrollHeight);
        return ((window.scrollY + window.innerHeight) / h) * 100;
      });
      if (depth >= pct) return depth;
      await page.mouse.wheel(0, 120);
      await page.waitForTimeout(30);
    }
    throw new Error(`could not scroll to ${pct} %`);
  },
  async set_visibility({ state }) {
    return page.evaluate((s) => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => s });
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => s === 'hidden' });
      document.dispatchEvent(new Event('visibilitychange'));
      return document.visibilityState;
    }, state);
  },
  async screenshot({ path, full_page }) { await page.screenshot({ path, fullPage: !!full_page }); return path; },
  async sleep({ ms }) { await page.waitForTimeout(ms); return null; },
  // Playwright's fake clock (Date, performance.now, timers): install before goto, then pause it and
  // move it only with clock_run_for, so what the page measures does not depend on the machine's speed.
  async clock_install() { await page.clock.install(); return null; },
  // pauseAt a little ahead of the page's clock, which keeps running until pauseAt lands (pausing at the
  // page's "now" failed with "Cannot fast-forward to the past" when the call was slow); the margin grows on retry
  async clock_pause() {
    for (let aheadMs = 50; ; aheadMs *= 4) {
      const now = await page.evaluate(() => Date.now());
      try { await page.clock.pauseAt(now + aheadMs); return null; } catch (e) {
        if (aheadMs > 20000 || !String(e).includes('past')) throw e;
      }
    }
  },
  async clock_run_for({ ms }) { await page.clock.runFor(ms); return null; },
  async page_errors() { return pageErrors; },
};

out({ ok: true, value: 'ready' });
const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  const msg = JSON.parse(line);
  if (msg.cmd === 'close') break;
  const fn = commands[msg.cmd];
  try {
    if (!fn) throw new Error(`unknown command ${msg.cmd}`);
    out({ ok: true, value: (await fn(msg)) ?? null });
  } catch (e) {
    out({ ok: false, error: String(e && e.stack ? e.stack : e) });
  }
}
await browser.close();
out({ ok: true, value: 'closed' });
process.exit(0);
