// Open the web demo's URL in headless Chromium (playwright-core, the system browser), optionally take a
// screenshot mid-stream (the page holds at &pause_at=N), and write what window.slsdk.done resolved to as JSON.
// usage: node tests/web/run_page.mjs URL OUT.json [SCREENSHOT.png]   (tests/test_web.py runs it)
// (with a screenshot, the page must hold at &pause_at=N or finish: the shot is taken then)
// --visible URL OUT.json [SCREENSHOT.png]: only what a person sees, window.slsdk untouched: wait until the page's
// text shows a result (a line starting "Recognised:", "Nothing recognised" or "Stopped by an error"), then write
// {text: document.body.innerText} and take the screenshot.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.SLSDK_WEB_NODE_MODULES || path.join(here, '..', '..', 'demos', 'web', 'node_modules');
const { chromium } = await import(pathToFileURL(path.join(nodeModules, 'playwright-core', 'index.mjs')).href);
const visible = process.argv[2] === '--visible';
const [url, outPath, shotPath] = process.argv.slice(visible ? 3 : 2);
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
  if (visible) {
    await page.waitForFunction(() => /^(Recognised:|Nothing recognised|Stopped by an error)/m.test(document.body.innerText),
      null, { timeout, polling: 100 });
    if (shotPath) await page.screenshot({ path: shotPath });
    fs.writeFileSync(outPath, JSON.stringify({ text: await page.evaluate(() => document.body.innerText), console: logs }));
  } else {
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
  }
} catch (e) {
  console.error(`${e.message}\npage console:\n${logs.join('\n')}`); process.exitCode = 1;
} finally {
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
