// Drives Debian's headless Chromium for the dashboard's browser tests
// (tests/blackbox/tests/browser.rs), which start the real gateway and hold every assertion.
//
// Protocol: one JSON object per line on stdin, `{"id": n, "op": "...", ...}`; one answer per
// line on stdout, `{"id": n, "ok": true, "value": ...}` or `{"id": n, "ok": false, "error":
// "..."}`. Each named context is a separate browser profile (its own cookies), with one page.
// The browser is the one from Debian's `chromium` package: no browser is downloaded.
//
// Environment: MEZHVED_UI (the gateway's base URL), MEZHVED_SCREENSHOTS (a directory for
// the screenshots), CHROMIUM (default /usr/bin/chromium).
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

const base = process.env.MEZHVED_UI;
const shots = process.env.MEZHVED_SCREENSHOTS;
if (!base || !shots) {
  console.error("driver.mjs: MEZHVED_UI and MEZHVED_SCREENSHOTS must be set");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

// The flags this machine's Chromium needs: no sandbox as root, and none of the background
// connections a closed network refuses. Playwright gives each launch a new empty profile.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

/** name -> { context, page, problems } */
const contexts = new Map();

function ctx(name) {
  const c = contexts.get(name);
  if (!c) throw new Error(`no context ${name}`);
  return c;
}

/** The path and query of the page's URL: the tests compare those, not the host. */
function where(page) {
  const u = new URL(page.url());
  return u.pathname + u.search;
}

async function element(page, sel) {
  return page.$(sel);
}

const ops = {
  async open({ name, locale }) {
    const context = await browser.newContext({
      locale: locale || "en-US",
      viewport: { width: 1280, height: 900 },
    });
    const page = await context.newPage();
    page.setDefaultTimeout(20000);
    // Content-Security-Policy refusals and script errors show up here; the tests demand none.
    const problems = [];
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(String(e)));
    contexts.set(name, { context, page, problems });
    return null;
  },
  async goto({ name, path }) {
    const { page } = ctx(name);
    const response = await page.goto(base + path, { waitUntil: "load" });
    return { status: response ? response.status() : 0, at: where(page) };
  },
  async reload({ name }) {
    const { page } = ctx(name);
    const response = await page.reload({ waitUntil: "load" });
    return { status: response ? response.status() : 0, at: where(page) };
  },
  async fill({ name, sel, value }) {
    await ctx(name).page.fill(sel, value);
    return null;
  },
  async check({ name, sel }) {
    await ctx(name).page.check(sel);
    return null;
  },
  // A click that navigates (a link or a form's submit button): answers with the final
  // response's status and where the page ended up after redirects.
  async follow({ name, sel }) {
    const { page } = ctx(name);
    const [response] = await Promise.all([
      page.waitForNavigation({ waitUntil: "load" }),
      page.click(sel),
    ]);
    return { status: response ? response.status() : 0, at: where(page) };
  },
  async attr({ name, sel, attr }) {
    const e = await element(ctx(name).page, sel);
    return e ? e.getAttribute(attr) : null;
  },
  async text({ name, sel }) {
    const e = await element(ctx(name).page, sel);
    return e ? e.innerText() : null;
  },
  async count({ name, sel }) {
    return (await ctx(name).page.$$(sel)).length;
  },
  async visible({ name, sel }) {
    const e = await element(ctx(name).page, sel);
    return e ? e.isVisible() : false;
  },
  // A computed style: shows that the page's stylesheet was applied under its CSP.
  async style({ name, sel, prop }) {
    const e = await element(ctx(name).page, sel);
    if (!e) return null;
    return e.evaluate((node, p) => getComputedStyle(node).getPropertyValue(p), prop);
  },
  async cookies({ name }) {
    return ctx(name).context.cookies();
  },
  async problems({ name }) {
    const c = ctx(name);
    return c.problems.splice(0);
  },
  async screenshot({ name, file }) {
    const path = join(shots, file);
    await ctx(name).page.screenshot({ path, fullPage: true });
    return path;
  },
  async close({ name }) {
    await ctx(name).context.close();
    contexts.delete(name);
    return null;
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let id = null;
  try {
    const msg = JSON.parse(line);
    id = msg.id;
    const op = ops[msg.op];
    if (!op) throw new Error(`unknown op ${msg.op}`);
    const value = await op(msg);
    process.stdout.write(JSON.stringify({ id, ok: true, value: value ?? null }) + "\n");
  } catch (e) {
    process.stdout.write(JSON.stringify({ id, ok: false, error: String(e && e.stack || e) }) + "\n");
  }
}
await browser.close();
