// Drives Debian's Chromium through playwright-core for tests/browser: logs in to the admin,
// opens the given pages and reports what a person would see on each, as JSON on stdout.
// Usage: node admin_walk.cjs <plan.json>; the plan is written by the Python test.
"use strict";
const fs = require("fs");
const path = require("path");

const plan = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const { chromium } = require(path.join(plan.browserDir, "node_modules", "playwright-core"));

async function main() {
  // A persistent context on a fresh directory: Chromium's --user-data-dir, never a profile
  // left by an earlier run. The flags keep it off the network (no updates, sync, QUIC).
  const context = await chromium.launchPersistentContext(plan.userDataDir, {
    executablePath: plan.chromium,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 900 },
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(20000);
    await page.goto(plan.baseUrl + "/admin/login/?next=/admin/");
    await page.fill("#id_username", plan.username);
    await page.fill("#id_password", plan.password);
    await Promise.all([page.waitForURL((url) => !url.pathname.endsWith("/login/")),
                       page.click("input[type=submit]")]);
    const visits = [];
    for (const visit of plan.visits) {
      const response = await page.goto(plan.baseUrl + visit.path);
      const chart = page.locator("svg.usage-chart");
      const box = (await chart.count()) ? await chart.first().boundingBox() : null;
      if (visit.screenshot) {
        await page.screenshot({ path: visit.screenshot, fullPage: true });
      }
      visits.push({
        path: visit.path,
        status: response ? response.status() : null,
        url: page.url(),
        title: await page.title(),
        text: await page.locator("body").innerText(),
        html: await page.content(),
        chartBox: box,
        chartDays: await page.locator("svg.usage-chart g.day").count(),
        chartBars: await page.locator("svg.usage-chart rect.issued").count(),
      });
    }
    process.stdout.write(JSON.stringify({ visits }));
  } finally {
    await context.close();
  }
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(1);
});
