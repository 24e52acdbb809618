// Drives the web UI in real headless Chromium: the runs list, a run's DAG picture changing
// colour as jobs finish, a live log growing, and the rerun and cancel buttons.
// Usage: node ui.mjs BASE_URL RUN_ID ADMIN_TOKEN OUT_DIR   (CHROMIUM overrides the browser)
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const [base, runId, adminToken, out] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const step = (what) => console.log("ui: " + what);
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  step("the runs list shows the run");
  await page.goto(base + "/");
  const row = page.locator(`tr[data-id="${runId}"]`);
  await row.waitFor({ timeout: 30000 });
  await page.screenshot({ path: `${out}/runs.png`, fullPage: true });

  step("the run page draws the DAG and the slow job turns blue");
  await row.click();
  await page.waitForURL(`**/runs/${runId}**`);
  const node = (job) => page.locator(`#graph g[data-job="${job}"]`);
  await node("slow").waitFor({ timeout: 30000 });
  await page.waitForFunction(() => document.querySelector('#graph g[data-job="slow"]')?.classList.contains("status-running"), null, { timeout: 30000 });
  assert.ok(await page.locator("#graph path.edge.critical").count() >= 1, "the critical path is drawn");

  step("the live log grows");
  await page.locator('#jobs li[data-job="slow"]').click();
  await page.waitForFunction(() => document.querySelectorAll("#log .line").length >= 2, null, { timeout: 30000 });
  const early = await page.locator("#log .line").count();
  await page.screenshot({ path: `${out}/run-running.png`, fullPage: true });
  await page.waitForFunction((n) => document.querySelectorAll("#log .line").length > n + 3, early, { timeout: 30000 });
  assert.ok(await page.locator("#log .c32").count() >= 1, "ANSI colours become classes");
  assert.ok(await page.locator("#log details summary", { hasText: "Setup" }).count() >= 1, "groups are folded");

  step("jobs turn green as they finish");
  await page.waitForFunction(() => document.querySelector('#graph g[data-job="last"]')?.classList.contains("status-success"), null, { timeout: 60000 });
  assert.ok(await node("slow").evaluate((g) => g.classList.contains("status-success")));
  await page.waitForFunction(() => document.body.innerText.includes("end of log"), null, { timeout: 30000 });
  await page.locator("#search").fill("tick 7");
  assert.equal(await page.locator("#log .line.hit").count(), 1, "search finds the line");
  await page.screenshot({ path: `${out}/run-finished.png`, fullPage: true });

  step("rerun with the admin token, then cancel");
  await page.locator("#token").fill(adminToken);
  await page.locator("#token").press("Enter");
  await page.locator("#rerun-all").click();
  await page.waitForFunction(() => document.querySelector("#said")?.textContent.startsWith("queued"), null, { timeout: 30000 });
  await page.waitForFunction(() => document.querySelector('#graph g[data-job="slow"]')?.classList.contains("status-running"), null, { timeout: 60000 });
  await page.locator("#cancel").click();
  await page.waitForFunction(() => document.querySelector("h1 .badge")?.textContent === "cancelled", null, { timeout: 60000 });
  await page.screenshot({ path: `${out}/run-cancelled.png`, fullPage: true });

  step("usable on a phone");
  const phone = await browser.newPage({ viewport: { width: 375, height: 812 }, isMobile: true });
  await phone.goto(`${base}/runs/${runId}`);
  await phone.locator('#graph g[data-job="slow"]').waitFor({ timeout: 30000 });
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the page fits the phone's width (overflow ${overflow}px)`);
  await phone.screenshot({ path: `${out}/phone.png`, fullPage: true });

  assert.deepEqual(errors, [], "no script errors");
  step("ok");
} finally {
  await browser.close();
}
