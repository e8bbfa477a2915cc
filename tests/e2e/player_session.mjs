// One player session in headless Chromium (playwright-core from npm, /usr/bin/chromium).
//
//   node tests/e2e/player_session.mjs <page base URL> [--src URL] [--level 1080] [--rate 2]
//        [--screenshot out.png] [--timeout 120000] [--until-time 3]
//
// Opens the player page, prints {"event":"ready"} and, without --src, reads the master
// playlist URL from one line of stdin (so the browser is up before the stream exists, and
// the test attaches the player when the video document says `ready`, as a frontend does).
// Then it plays until `ended` (or, with --level, until pictures of that height play) or a
// fatal error, and prints {"event":"result", ...window.playerLog}. With --until-time T it
// first prints {"event":"progress", currentTime, videoWidth, videoHeight, ...} once the
// picture has played past T seconds (the screenshot is taken then), and plays on.
import { chromium } from 'playwright-core';
import readline from 'node:readline';

const args = process.argv.slice(2);
const base = args[0];
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const level = opt('level', null);
const rate = opt('rate', '1');
const screenshot = opt('screenshot', null);
const timeout = Number(opt('timeout', '120000'));
const untilTime = opt('until-time', null);
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});
let code = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 760 } });
  const console_ = [];
  page.on('console', (m) => console_.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console_.push(`pageerror: ${e.message}`));
  await page.goto(base, { waitUntil: 'load' });
  await page.waitForFunction(() => !!window.startPlayer);
  emit({ event: 'ready', hlsVersion: await page.evaluate(() => window.Hls && Hls.version) });
  let src = opt('src', null);
  if (!src) {
    const rl = readline.createInterface({ input: process.stdin });
    src = await new Promise((resolve) => rl.once('line', (line) => { rl.close(); resolve(line.trim()); }));
  }
  const startedAt = Date.now();
  await page.evaluate(([s, l, r]) => window.startPlayer(s, { level: l, rate: r }), [src, level, rate]);
  await page.waitForFunction(() => !!(window.playerLog.playingAt || window.playerLog.fatal),
    null, { timeout, polling: 50 });
  if (untilTime) {
    await page.waitForFunction(
      (t) => {
        const v = document.getElementById('video');
        return !!(window.playerLog.fatal || (v.currentTime >= t && v.videoWidth > 0));
      },
      Number(untilTime), { timeout, polling: 50 },
    );
    const state = await page.evaluate(() => {
      const v = document.getElementById('video');
      return { at: Date.now(), currentTime: v.currentTime, videoWidth: v.videoWidth,
               videoHeight: v.videoHeight, paused: v.paused, fatal: window.playerLog.fatal };
    });
    if (screenshot) await page.screenshot({ path: screenshot });
    emit({ event: 'progress', ...state });
  } else if (screenshot && !level) {
    await page.waitForTimeout(1500);
    await page.screenshot({ path: screenshot });
  }
  await page.waitForFunction(
    (wantLevel) => {
      const log = window.playerLog;
      return !!(log.fatal || (wantLevel ? log.levelVerified : log.ended));
    },
    level, { timeout, polling: 100 },
  );
  if (screenshot && level) {
    await page.waitForTimeout(500);
    await page.screenshot({ path: screenshot });
  }
  const log = await page.evaluate(() => window.playerLog);
  emit({ event: 'result', startedAt, console: console_.slice(-50), ...log });
} catch (err) {
  code = 1;
  emit({ event: 'error', message: String(err && err.stack || err) });
} finally {
  await browser.close();
}
process.exit(code);
