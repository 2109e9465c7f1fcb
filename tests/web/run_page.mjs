// Open the web demo's test-hook URL in headless Chromium (playwright-core, the system browser), optionally take a
// screenshot mid-stream (the page holds at &pause_at=N), and write what window.slsdk.done resolved to as JSON.
// usage: node tests/web/run_page.mjs URL OUT.json [SCREENSHOT.png]   (tests/test_web.py runs it)
// (with a screenshot, the page must hold at &pause_at=N or finish: the shot is taken then)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.SLSDK_WEB_NODE_MODULES || path.join(here, '..', '..', 'demos', 'web', 'node_modules');
const { chromium } = await import(pathToFileURL(path.join(nodeModules, 'playwright-core', 'index.mjs')).href);
const [url, outPath, shotPath] = process.argv.slice(2);
const executablePath = process.env.SLSDK_CHROMIUM || '/usr/bin/chromium';
const timeout = Number(process.env.SLSDK_WEB_TIMEOUT_MS || 300000);

// SLSDK_FAKE_CAMERA=FILE.y4m: Chromium plays that file as its camera (for the page's ?camera= hook)
const camera = process.env.SLSDK_FAKE_CAMERA
  ? ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${process.env.SLSDK_FAKE_CAMERA}`] : [];
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'slsdk-chromium-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath, headless: true, viewport: { width: 900, height: 1100 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', ...camera],
});
const logs = [];
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  await page.goto(url);
  await page.waitForFunction(() => !!(window.slsdk && window.slsdk.done), null, { timeout: 60000 });
  if (shotPath) {
    await page.waitForFunction(() => window.slsdk.paused || window.slsdk.finished, null, { timeout, polling: 100 });
    await page.screenshot({ path: shotPath });
    await page.evaluate(() => window.slsdk.resume());
  }
  const result = await page.evaluate(() => window.slsdk.done.then((r) => r, (e) => ({ error: String(e && e.message || e) })), null);
  result.console = logs;
  fs.writeFileSync(outPath, JSON.stringify(result));
  if (result.error) { console.error(`page error: ${result.error}\n${logs.join('\n')}`); process.exitCode = 1; }
} catch (e) {
  console.error(`${e.message}\npage console:\n${logs.join('\n')}`); process.exitCode = 1;
} finally {
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
