// Drives opampd's web UI in Debian's chromium (headless) with npm `playwright-core`, for
// crates/opampd/tests/ui_browser.rs.
//
//   node ui_flow.mjs
//
// Environment:
//   OPAMP_UI_URL          the admin base URL, e.g. http://127.0.0.1:4321
//   OPAMP_UI_TOKEN        an admin API token (the login page is exercised)
//   OPAMP_UI_SHOTS        the directory for screenshots (created)
//   OPAMP_INTEROP_NODE_MODULES  where playwright-core is installed
//   OPAMP_CHROMIUM        the browser (default /usr/bin/chromium)
//
// stdout: one JSON object per line with an "event" key; the test answers on stdin:
//   {"event":"overview_ready"}        -> the test starts an agent and writes {"uid": "..."}
//   {"event":"step","name":...,"screenshot":...}   after each step
//   {"event":"applied","live":true|false}
//   {"event":"done"}
// Any failure: {"event":"error","message":...} on stdout, the stack on stderr, exit 1.

import { createRequire } from "node:module";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import readline from "node:readline";

const env = (name, fallback) => {
  const v = process.env[name];
  if (v === undefined || v === "") {
    if (fallback !== undefined) return fallback;
    throw new Error(`${name} is not set`);
  }
  return v;
};

const BASE = env("OPAMP_UI_URL");
const TOKEN = env("OPAMP_UI_TOKEN");
const SHOTS = env("OPAMP_UI_SHOTS");
const NODE_MODULES = env("OPAMP_INTEROP_NODE_MODULES");
const CHROMIUM = env("OPAMP_CHROMIUM", "/usr/bin/chromium");
const WAIT = 30_000;

const require = createRequire(path.join(NODE_MODULES, "noop.js"));
const { chromium } = require("playwright-core");

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const stdinLines = readline.createInterface({ input: process.stdin });
const pendingLines = [];
const waiters = [];
stdinLines.on("line", (line) => {
  const w = waiters.shift();
  if (w) w(line);
  else pendingLines.push(line);
});
const nextLine = () =>
  new Promise((resolve) => {
    const l = pendingLines.shift();
    if (l !== undefined) resolve(l);
    else waiters.push(resolve);
  });

let shotNo = 0;
async function shot(page, name) {
  shotNo += 1;
  const file = path.join(SHOTS, `${String(shotNo).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  emit({ event: "step", name, screenshot: file, url: page.url() });
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

// A marker that survives only as long as the page is not reloaded.
async function markNoReload(page) {
  await page.evaluate(() => {
    window.__opampNoReload = Math.random().toString(36).slice(2);
  });
  return page.evaluate(() => window.__opampNoReload);
}

async function assertNoReload(page, marker, what) {
  const now = await page.evaluate(() => window.__opampNoReload);
  check(now === marker, `${what}: the page was reloaded (marker ${marker} -> ${now})`);
}

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  const profile = mkdtempSync(path.join(tmpdir(), "opamp-ui-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 900 },
  });
  context.setDefaultTimeout(WAIT);
  emit({ event: "browser_started" });
  const consoleErrors = [];
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (m) => {
      // The refused login (401) and the editor's validation error (422) are expected.
      const expected = /Failed to load resource: .* status of (401|422)/.test(m.text());
      if (m.type() === "error" && !expected) consoleErrors.push(`${m.text()} (${m.location().url})`);
    });
    page.on("pageerror", (e) => consoleErrors.push(String(e)));

    // 1. Admin auth is on: the overview sends us to the login page.
    await page.goto(`${BASE}/`);
    check(page.url().includes("/login"), `expected the login page, got ${page.url()}`);
    await page.getByLabel("API token").fill("wrong-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("invalid or revoked token").waitFor();
    await shot(page, "login-refused");
    await page.getByLabel("API token").fill(TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${BASE}/`);
    await page.getByRole("heading", { name: "Fleet overview" }).waitFor();
    emit({ event: "signed_in" });

    // Keyboard: the first Tab reaches the skip link.
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => document.activeElement?.textContent);
    check(focused === "Skip to content", `first Tab focused ${JSON.stringify(focused)}`);

    // 2. The overview is live before any agent exists.
    await page.locator("#live-status[data-state='on']").waitFor();
    const agentsStat = page.locator(".stat a[href='/agents'] .value");
    check((await agentsStat.textContent()) === "0", "expected 0 agents at first");
    await shot(page, "overview-empty");
    const marker = await markNoReload(page);
    emit({ event: "overview_ready" });

    // 3. The test starts the Python agent; it appears without a reload.
    const { uid } = JSON.parse(await nextLine());
    await page.waitForFunction(
      () => document.querySelector(".stat a[href='/agents'] .value")?.textContent === "1",
      null,
      { timeout: WAIT },
    );
    await page.locator(`a[href='/agents?connected=true'] .value`).filter({ hasText: "1" }).waitFor();
    await page.getByRole("link", { name: "checkout" }).first().waitFor();
    await assertNoReload(page, marker, "new agent on the overview");
    await shot(page, "overview-agent-appeared");

    // 4. The agents list, then the agent.
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Agents" }).click();
    const row = page.locator(`tr[data-uid='${uid}']`);
    await row.waitFor();
    check((await row.textContent()).includes("connected"), "the agent row says connected");
    await shot(page, "agents");
    await row.getByRole("link", { name: "checkout" }).click();
    await page.waitForURL(`${BASE}/agents/${uid}`);
    await page.getByRole("heading", { name: "Capabilities" }).waitFor();
    check(
      (await page.locator("ul.tags").first().textContent()).includes("AcceptsRemoteConfig"),
      "capabilities are decoded to names",
    );
    await shot(page, "agent");

    // 5. Create a config in the editor (an invalid one first: the error is inline and the text kept).
    await page.goto(`${BASE}/configs/checkout/new`);
    const body = page.locator("#file-0-body");
    await body.fill("receivers:\n  otlp: [broken\n");
    await page.getByRole("button", { name: "Create version" }).click();
    await page.locator("#file-0-error").waitFor();
    check((await body.inputValue()).includes("[broken"), "the editor keeps the text after an error");
    await shot(page, "editor-error");
    await body.fill("receivers:\n  otlp: {}\nexporters:\n  debug:\n    verbosity: basic\n");
    await page.locator("#message").fill("first version");
    await page.getByRole("button", { name: "Create version" }).click();
    await page.waitForURL(/\/configs\/checkout\?done=/);
    await shot(page, "config-v1");

    // 6. Push it to the agent from the agent page; APPLIED shows up live.
    await page.goto(`${BASE}/agents/${uid}`);
    await page.locator("#assign-config").selectOption("checkout");
    await page.getByRole("button", { name: "Assign to this agent" }).click();
    await page.waitForURL(new RegExp(`/agents/${uid}\\?done=`));
    emit({ event: "assigned" });
    const marker2 = await markNoReload(page);
    const status = page.locator("#remote-config-status");
    const firstText = await status.textContent();
    const live = !firstText.includes("APPLIED");
    await page.locator("#remote-config-status .rc-applied").waitFor({ timeout: WAIT });
    await page.locator("#agent-summary .badge.sync-in_sync").waitFor({ timeout: WAIT });
    await assertNoReload(page, marker2, "APPLIED on the agent page");
    emit({ event: "applied", live, before: firstText });
    await page.locator("#agent-timeline li.ev-config_applied").first().waitFor({ timeout: WAIT });
    await shot(page, "agent-applied");

    // 7. A second version, then the diff of the two.
    await page.goto(`${BASE}/configs/checkout/new`);
    await page.locator("#file-0-body").fill(
      "receivers:\n  otlp: {}\nexporters:\n  debug:\n    verbosity: detailed\nservice:\n  pipelines: {}\n",
    );
    await page.locator("#message").fill("more detail");
    await page.getByRole("button", { name: "Create version" }).click();
    await page.waitForURL(/\/configs\/checkout\?done=/);
    await page.getByRole("cell", { name: "v2" }).waitFor();
    await shot(page, "config-v2");
    await page.getByRole("button", { name: "Compare selected versions" }).click();
    await page.waitForURL(/\/configs\/checkout\/diff\?/);
    await page.getByRole("heading", { name: /v1 → v2/ }).waitFor();
    check((await page.locator("tr.changed td.old").first().textContent()).includes("basic"), "old side");
    check((await page.locator("tr.changed td.new").first().textContent()).includes("detailed"), "new side");
    check((await page.locator("tr.added").count()) >= 1, "added lines are marked");
    await shot(page, "diff");

    // 8. The rollout bar on the configs list.
    await page.goto(`${BASE}/configs`);
    await page.locator(".rollout .legend").first().waitFor();
    await shot(page, "configs");

    // 9. Phone width: nothing overflows the viewport except scrollable tables.
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [url, name] of [
      [`${BASE}/`, "phone-overview"],
      [`${BASE}/agents`, "phone-agents"],
      [`${BASE}/agents/${uid}`, "phone-agent"],
    ]) {
      await page.goto(url);
      const overflow = await page.evaluate(
        () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
      );
      check(overflow <= 1, `${name}: the page is ${overflow}px wider than the phone screen`);
      await shot(page, name);
    }

    check(consoleErrors.length === 0, `browser console errors: ${consoleErrors.join(" | ")}`);
    emit({ event: "done" });
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
    stdinLines.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    emit({ event: "error", message: String(e && e.message ? e.message : e) });
    console.error(e && e.stack ? e.stack : e);
    process.exit(1);
  },
);
