// Login and roles in the browser: a gateway with users asks for a login, refuses a wrong
// password, shows who is logged in, sends the session's CSRF token with changes, hides
// what the role may not use, and logs out.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { startGateway, launchBrowser, openPage, assertOnlyGateway, screenshot, tempDir, cleanup } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const CONFIG = `
[gateway]
name = "login-test"
data_dir = "data"

[api]
users = "users.toml"

[namespace]
enterprise = "acme"
site = "plant-a"

[models.Silo.attributes]
level = { type = "float", unit = "%", range = [0, 100] }

[[assets]]
path = "reception"
level = "area"

[[assets]]
path = "reception/silo-1"
model = "Silo"
source = "plc"
bindings.level = { address = "level" }

[forms.lab]
assets = ["reception"]
fields.fat = { type = "float", unit = "%", range = [2.5, 6.0], required = true, label = "Fat" }

[[sources]]
name = "plc"
kind = "simulator"
seed = 1
period = "200ms"
[sources.signals]
"level" = { signal = "random_walk", start = 50, step = 1, min = 0, max = 100 }
`;

let dir, gateway, browser;
before(async () => {
  dir = tempDir();
  writeFileSync(`${dir}/gateway.toml`, CONFIG);
  for (const [user, role] of [['vera', 'viewer'], ['otto', 'operator'], ['erik', 'engineer']]) {
    execFileSync(process.env.BACKPLANE_BIN, ['users', '--file', `${dir}/users.toml`, 'add', '--role', role, '--password-stdin', user], { input: `${PASSWORD}\n`, stdio: ['pipe', 'ignore', 'ignore'] });
  }
  gateway = await startGateway({ args: ['run', '--listen', '127.0.0.1:0', `${dir}/gateway.toml`], cwd: dir });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await gateway?.stop();
  cleanup(dir);
});

async function logIn(page, user, password = PASSWORD) {
  await page.locator('#login-user').fill(user);
  await page.locator('#login-password').fill(password);
  await page.locator('form.login button[type=submit]').click();
}

test('a gateway with users asks for a login and refuses a wrong password', async () => {
  const { page, requests, errors } = await openPage(browser);
  await page.goto(`${gateway.base}/#/asset/acme/plant-a/reception/silo-1`);
  await page.locator('form.login').waitFor();
  await screenshot(page, 'login-tablet');
  await logIn(page, 'otto', 'not the password');
  await page.locator('form.login .notice.error').waitFor();
  assert.match(await page.locator('form.login .notice.error').textContent(), /Wrong user name or password/);
  // The right password goes on to the page that was asked for.
  await logIn(page, 'otto');
  await page.locator('tr[data-attribute="level"]').waitFor();
  assert.match(await page.locator('#who').textContent(), /otto \(operator\)/);
  // Discover is for engineers: not in an operator's menu, and its address says so.
  const menu = await page.locator('#nav a').allTextContents();
  assert.ok(menu.includes('Forms') && !menu.includes('Discover'), `operator menu: ${menu}`);
  await page.goto(`${gateway.base}/#/discover`);
  await page.locator('#view .notice.error').waitFor();
  assert.match(await page.locator('#view .notice.error').textContent(), /engineer/);
  assert.deepEqual(errors, []);
  assertOnlyGateway(requests, gateway.base);
});

test('an engineer has Discover in the menu', async () => {
  const { page, errors } = await openPage(browser);
  await page.goto(`${gateway.base}/#/plant`);
  await logIn(page, 'erik');
  await page.locator('#nav a', { hasText: 'Discover' }).waitFor();
  assert.match(await page.locator('#who').textContent(), /erik \(engineer\)/);
  assert.deepEqual(errors, []);
});

test("changes made from the page carry the session's CSRF token; logging out ends the session", async () => {
  const { page, errors } = await openPage(browser);
  await page.goto(`${gateway.base}/`);
  await logIn(page, 'otto');
  await page.locator('.tree').waitFor();
  // The UI's own API module, as every page uses it, submits an entry with the cookie.
  const created = await page.evaluate(async () => {
    const { send } = await import('/ui/lib/api.js');
    return send('POST', '/api/v1/forms/lab/entries', { asset: 'reception/silo-1', values: { fat: 4.1 } });
  });
  assert.equal(created.user, 'otto', 'recorded as the logged-in user');
  // Without the token the same change is refused: the cookie alone is not enough.
  const refused = await page.evaluate(async () => {
    const r = await fetch('/api/v1/forms/lab/entries', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ asset: 'reception/silo-1', values: { fat: 4.1 } }) });
    return [r.status, (await r.json()).error.code];
  });
  assert.deepEqual(refused, [403, 'csrf']);
  await page.locator('#who button').click();
  await page.locator('form.login').waitFor();
  const after = await page.evaluate(async () => (await fetch('/api/v1/assets')).status);
  assert.equal(after, 401, 'the cookie no longer works');
  assert.deepEqual(errors, []);
});

test('a viewer is told plainly when the gateway refuses a change', async () => {
  const { page, errors } = await openPage(browser);
  await page.goto(`${gateway.base}/`);
  await logIn(page, 'vera');
  await page.locator('.tree').waitFor();
  assert.match(await page.locator('#who').textContent(), /vera \(viewer\)/);
  const refusal = await page.evaluate(async () => {
    const { send } = await import('/ui/lib/api.js');
    try {
      await send('POST', '/api/v1/forms/lab/entries', { asset: 'reception/silo-1', values: { fat: 4.1 } });
      return null;
    } catch (e) {
      return [e.status, e.code, e.message];
    }
  });
  assert.equal(refusal[0], 403);
  assert.equal(refusal[1], 'forbidden');
  assert.match(refusal[2], /operator/);
  assert.deepEqual(errors, []);
});
