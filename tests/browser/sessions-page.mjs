// Drives Debian's Chromium (headless, through playwright-core) through the
// self-service page of a running gateway: the user logs one of their other
// devices out with the page's own confirmation, as a person would.
//
// Spawned by tests/browser.rs. Everything comes from the environment:
//   SG_PAGE_URL        http://127.0.0.1:PORT/.sessiongate/sessions
//   SG_COOKIE          value of the `session` cookie (the current device's token)
//   SG_USER_AGENT      User-Agent the browser sends (optional)
//   SG_FORWARDED_FOR   X-Forwarded-For the browser sends (optional)
//   SG_CURRENT_SID     session id that must be marked as this device
//   SG_TARGET_SID      session id to log out
//   SG_OTHER_SIDS      comma-separated session ids that must stay listed
//   SG_SCREENSHOT      if set, a full-page PNG of the page before any click
//   SG_CHROMIUM        browser executable (default /usr/bin/chromium)
//   SG_STALE_COOKIE    if set, first the page with this cookie (a sign-in too
//                      old for sessions.reauth_max_age_s): it must ask to sign
//                      in again and offer no log-out; then SG_COOKIE, fresh
// Exits 0 when every check held; otherwise prints what failed and exits 1.

import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const PLAYWRIGHT_VERSION = createRequire(import.meta.url)("playwright-core/package.json").version;

const PAGE_PATH = "/.sessiongate/sessions";
const STEP_TIMEOUT_MS = 15_000;
const OVERALL_TIMEOUT_MS = 60_000;

function need(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`environment variable ${name} is required`);
  }
  return v;
}

function check(cond, message) {
  if (!cond) {
    throw new Error(message);
  }
}

const log = (...args) => console.log("[browser]", ...args);

async function run(context) {
  const url = need("SG_PAGE_URL");
  const current = need("SG_CURRENT_SID");
  const target = need("SG_TARGET_SID");
  const others = (process.env.SG_OTHER_SIDS || "").split(",").filter(Boolean);
  const screenshot = process.env.SG_SCREENSHOT;

  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);

  const first = await page.goto(url, { waitUntil: "load" });
  check(first, `no response for ${url}`);
  check(
    first.status() === 200,
    `GET ${url} answered ${first.status()}: ${(await first.text()).slice(0, 300)}`,
  );
  check(
    (first.headers()["content-type"] || "").startsWith("text/html"),
    `the page is not HTML: ${first.headers()["content-type"]}`,
  );

  const items = page.locator("ul.sessions > li.session");
  const item = (sid) => page.locator(`li.session[data-session-id="${sid}"]`);
  const expected = [current, target, ...others];
  await item(current).waitFor();
  const listed = await items.evaluateAll((els) => els.map((e) => e.dataset.sessionId));
  log("sessions listed:", listed.join(", "));
  check(
    listed.length === expected.length && expected.every((s) => listed.includes(s)),
    `expected sessions [${expected}] on the page, found [${listed}]`,
  );

  // The current session: marked, badged, and without a log-out control.
  const me = item(current);
  check(
    (await me.getAttribute("class")).split(/\s+/).includes("current"),
    `session ${current} is not marked current`,
  );
  check(
    (await me.locator(".badge").innerText()).trim() === "This device",
    `session ${current} has no "This device" badge`,
  );
  check((await me.locator("details").count()) === 0, "the current session can be logged out from its own item");

  const phone = item(target);
  check(
    !(await phone.getAttribute("class")).split(/\s+/).includes("current"),
    `session ${target} is marked current`,
  );
  const summary = phone.locator("details > summary");
  const confirm = phone.locator(".confirm");
  const yes = phone.getByRole("button", { name: "Yes, log out this device" });
  const label = await summary.getAttribute("aria-label");
  check(label && label.startsWith("Log out ") && label.length > "Log out ".length,
    `the summary of ${target} has no descriptive aria-label (${label})`);
  check((await summary.innerText()).trim() === "Log out", `summary text is "${await summary.innerText()}"`);
  check(!(await confirm.isVisible()), "the confirmation is visible before the summary is clicked");
  check(!(await yes.isVisible()), "the log-out button is visible before the summary is clicked");
  check(
    await page.getByText("Log out all other sessions", { exact: true }).isVisible(),
    'no "Log out all other sessions" disclosure',
  );

  if (screenshot) {
    await page.screenshot({ path: screenshot, fullPage: true });
    log("screenshot written to", screenshot);
  }

  // Open the disclosure: the warning shows, then confirm.
  await summary.click();
  await confirm.waitFor({ state: "visible" });
  const warning = await confirm.innerText();
  check(/cannot be undone/.test(warning), `the confirmation does not say it cannot be undone: "${warning}"`);
  log("confirmation:", warning.replace(/\s+/g, " ").trim());
  await yes.waitFor({ state: "visible" });

  const reloaded = page.waitForResponse(
    (r) =>
      r.request().method() === "GET" &&
      new URL(r.url()).pathname === PAGE_PATH &&
      r.request().redirectedFrom()?.method() === "POST",
  );
  await yes.click();
  const after = await reloaded;
  const post = after.request().redirectedFrom();
  const postResponse = await post.response();
  check(
    new URL(post.url()).pathname === `${PAGE_PATH}/${encodeURIComponent(target)}/revoke`,
    `the form posted to ${post.url()}`,
  );
  check(postResponse.status() === 303, `the revoke POST answered ${postResponse.status()}, not 303`);
  check(after.status() === 200, `the page after the redirect answered ${after.status()}`);
  log(`POST ${new URL(post.url()).pathname} -> 303 -> GET ${PAGE_PATH} -> 200`);

  // The reloaded page: the phone is gone, this device and the others remain.
  await phone.waitFor({ state: "detached" });
  await item(current).waitFor();
  const remaining = await items.evaluateAll((els) => els.map((e) => e.dataset.sessionId));
  log("sessions listed after logging out:", remaining.join(", "));
  check(!remaining.includes(target), `session ${target} is still listed: [${remaining}]`);
  check(remaining.includes(current), `session ${current} is no longer listed: [${remaining}]`);
  for (const o of others) {
    check(remaining.includes(o), `session ${o} disappeared too: [${remaining}]`);
  }
  check(
    (await item(current).getAttribute("class")).split(/\s+/).includes("current"),
    `session ${current} is no longer marked current after the reload`,
  );
}

// A sign-in too old for the actions: the page says so and offers none.
async function stale(context) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  const resp = await page.goto(need("SG_PAGE_URL"), { waitUntil: "load" });
  check(resp && resp.status() === 200, `the page with a stale sign-in answered ${resp && resp.status()}`);
  check(
    await page.getByText("Sign in again to continue.", { exact: true }).isVisible(),
    'a stale sign-in is not asked to "Sign in again to continue."',
  );
  check((await page.locator("form").count()) === 0, "a stale sign-in is offered a form");
  check((await page.locator("details").count()) === 0, "a stale sign-in is offered a log-out");
  log("stale sign-in: the page asks to sign in again, no action offered");
  await page.close();
}

async function main() {
  const url = new URL(need("SG_PAGE_URL"));
  const cookie = need("SG_COOKIE");
  const executablePath = process.env.SG_CHROMIUM || "/usr/bin/chromium";
  const extraHTTPHeaders = {};
  if (process.env.SG_FORWARDED_FOR) {
    extraHTTPHeaders["X-Forwarded-For"] = process.env.SG_FORWARDED_FOR;
  }
  // launch() gives the browser a fresh --user-data-dir in the temp
  // directory and deletes it when the browser closes.
  let browser;
  const overall = setTimeout(() => {
    console.error(`[browser] FAILED: no result within ${OVERALL_TIMEOUT_MS} ms`);
    Promise.resolve(browser?.close())
      .catch(() => {})
      .finally(() => process.exit(1));
  }, OVERALL_TIMEOUT_MS);
  try {
    browser = await chromium.launch({
      executablePath,
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
      timeout: STEP_TIMEOUT_MS,
    });
    log(`chromium ${browser.version()}, playwright-core ${PLAYWRIGHT_VERSION}, node ${process.version}`);
    const context = await browser.newContext({
      viewport: { width: 900, height: 700 },
      deviceScaleFactor: 1,
      colorScheme: "light",
      // The page works without scripts; prove it.
      javaScriptEnabled: false,
      userAgent: process.env.SG_USER_AGENT || undefined,
      extraHTTPHeaders,
    });
    const setCookie = (value) =>
      context.addCookies([
        { name: "session", value, domain: url.hostname, path: "/", httpOnly: true, sameSite: "Lax" },
      ]);
    if (process.env.SG_STALE_COOKIE) {
      await setCookie(process.env.SG_STALE_COOKIE);
      await stale(context);
    }
    await setCookie(cookie);
    await run(context);
    log("PASSED");
    return 0;
  } catch (e) {
    console.error(`[browser] FAILED: ${e && e.stack ? e.stack : e}`);
    return 1;
  } finally {
    clearTimeout(overall);
    if (browser) {
      await browser.close().catch(() => {});
    }
  }
}

process.exitCode = await main();
