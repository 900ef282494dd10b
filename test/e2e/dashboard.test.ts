import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../../src/launcher/envoy.js';
import { startStack, type Stack } from '../helpers/stack.js';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const SHARED = 'You are a helpful assistant for a large documentation site. '.repeat(40);

let stack: Stack;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run 'npm run setup' (it installs Debian's chromium) or set CHROMIUM_BIN`);
  stack = await startStack({ backends: [{ models: ['llama-8b'] }, { models: ['llama-8b'] }, { models: ['qwen-7b'] }] });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

/** Closed-loop traffic until `stop()`, bounded by a deadline. */
function traffic(stop: () => boolean) {
  return Promise.all(
    Array.from({ length: 6 }, async (_, w) => {
      const deadline = Date.now() + 15_000;
      for (let i = 0; !stop() && Date.now() < deadline; i++) {
        await fetch(`${stack.envoy.url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: w % 3 === 0 ? 'qwen-7b' : 'llama-8b', prompt: `${SHARED} user ${w} asks question ${i}`, max_tokens: 8 }),
        }).then((r) => r.text());
      }
    }),
  );
}

describe('dashboard in a real browser', () => {
  it('shows the fleet and its figures move while traffic flows', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 600 } });
    await page.goto(`http://127.0.0.1:${stack.router.adminPort}/dashboard`);
    await page.waitForSelector('tr[data-backend="sim-2"]');
    expect(await page.locator('tbody tr').count()).toBe(3);
    expect(await page.textContent('#routable')).toBe('3 / 3');
    expect(await page.textContent('#held')).toBe('off');
    // No KV events configured: each server's cache is known only by what was sent there, and it says why.
    expect(await page.textContent('tr[data-backend="sim-0"] td.cache')).toBe('guess');
    expect(await page.getAttribute('tr[data-backend="sim-0"] td.cache', 'title')).toMatch(/no KV events configured/);
    const rate = async () => Number(await page.textContent('#rate'));
    const before = await rate();

    let stopped = false;
    const load = traffic(() => stopped);
    try {
      await expect.poll(rate, { timeout: 10_000, interval: 250 }).toBeGreaterThan(before);
      // The sparkline has history points and the qwen server shows its own routed rate.
      await expect
        .poll(async () => Number(await page.textContent('tr[data-backend="sim-2"] td.routed')), { timeout: 10_000 })
        .toBeGreaterThan(0);
      await expect.poll(async () => page.locator('#decisions tr').count(), { timeout: 5000 }).toBeGreaterThan(0);
      expect(await page.textContent('#decisions')).toMatch(/cached there|no cached prefix|tie broken/);
      const points = async () => ((await page.getAttribute('tr[data-backend="sim-0"] polyline', 'points')) ?? '').split(' ').length;
      await expect.poll(points, { timeout: 10_000 }).toBeGreaterThan(4);
      await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT ?? join(REPO, '.tmp/dashboard.png') });
    } finally {
      stopped = true;
      await load;
    }
  });
});
