'use strict';

/*
 * Drives the web console in headless Chromium (puppeteer-core from
 * t/node_modules) against a running nginx, as t/console.t starts it, and
 * runs axe-core (also from t/node_modules) over each page and dialog.
 * Writes one JSON object per line on stdout: {"ok": bool, "name": ...,
 * "diag": ...} per check, {"secret": raw} for each raw key it saw (the
 * Perl side looks for them in the logs), {"done": true} at the end.
 *
 *   CONSOLE_URL     the console, e.g. http://127.0.0.1:PORT/admin/
 *   CONSOLE_TOKEN   an admin token for every organization
 *   CONSOLE_GATE    a gatekept location, e.g. http://127.0.0.1:PORT/api/
 *   CONSOLE_SHOTS   where the screenshots go
 *   CHROMIUM        the browser (default /usr/bin/chromium)
 *   CONSOLE_WAIT    the bound of every wait, in ms (default 15000)
 */

const fs = require('fs');
const http = require('http');
const path = require('path');
const puppeteer = require('puppeteer-core');

/* axe-core, evaluated through DevTools: the page's CSP does not apply */

const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const URL_ = process.env.CONSOLE_URL;
const TOKEN = process.env.CONSOLE_TOKEN;
const GATE = process.env.CONSOLE_GATE;
const SHOTS = process.env.CONSOLE_SHOTS;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT = Number(process.env.CONSOLE_WAIT || 15000);

const ORG = 'acme';
const DEMO = 'demo';
const XSS = '<img src=x onerror=alert(1)>';

let failed = 0;
const secrets = [];


function out(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}


function check(name, cond, diag) {
    if (!cond) {
        failed++;
    }

    out({ ok: !!cond, name: name, diag: cond ? undefined : diag });
    return !!cond;
}


function secret(raw) {
    secrets.push(raw);
    out({ secret: raw });
}


/* a request to the gatekept location with a key: its status */

function gate(key) {
    return new Promise((resolve) => {
        const req = http.get(GATE, { headers: { 'X-API-Key': key },
                                     timeout: WAIT }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode));
        });

        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', (e) => resolve('error: ' + e.message));
    });
}


/* the admin API from here, to set up data the test does not click */

async function api(method, rel, body) {
    const res = await fetch(new URL(rel, URL_), {
        method: method,
        headers: Object.assign({ Authorization: 'Bearer ' + TOKEN },
                               body ? { 'Content-Type': 'application/json' }
                                    : {}),
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(WAIT)
    });
    const text = await res.text();

    if (!res.ok) {
        throw new Error(method + ' ' + rel + ': ' + res.status + ' ' + text);
    }

    return text ? JSON.parse(text) : null;
}


async function main() {
    const browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        timeout: WAIT,
        protocolTimeout: WAIT * 2,
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
               '--no-first-run', '--no-default-browser-check',
               '--disable-extensions', '--disable-sync',
               '--disable-background-networking', '--lang=en-US']
    });

    try {
        await run(browser);

    } finally {
        await browser.close();
    }
}


async function run(browser) {
    const page = await browser.newPage();
    const alerts = [];
    const pageErrors = [];

    page.setDefaultTimeout(WAIT);
    await page.setViewport({ width: 1280, height: 860 });

    await browser.defaultBrowserContext().overridePermissions(
        new URL(URL_).origin, ['clipboard-read', 'clipboard-write',
                               'clipboard-sanitized-write']);

    page.on('dialog', async (d) => {
        alerts.push(d.type() + ': ' + d.message());
        await d.dismiss();
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));

    /* every CSP violation the page sees, from the first script on */

    await page.evaluateOnNewDocument(() => {
        window.__csp = [];
        document.addEventListener('securitypolicyviolation', (e) => {
            window.__csp.push({ directive: e.violatedDirective,
                                blocked: e.blockedURI, sample: e.sample });
        });
    });

    const text = (sel) => page.$eval(sel, (e) => e.textContent.trim());
    const isOpen = (id) => page.$eval('#' + id, (d) => d.open);
    /* focus may move in a "close" event, a task after the dialog shut */

    const focusIs = async (want) => {
        try {
            await page.waitForFunction((w) => {
                const a = document.activeElement;
                return a && (a.id || a.getAttribute('data-key-id')
                             || a.textContent.trim()) === w;
            }, { timeout: WAIT }, want);
            return true;

        } catch (e) {
            return false;
        }
    };

    /* a field's value replaced by typing */

    const fill = async (sel, value) => {
        await page.$eval(sel, (e) => { e.value = ''; });
        await page.type(sel, value);
    };

    const waitOpen = (id) => page.waitForSelector('#' + id + '[open]');
    const waitClosed = (id) => page.waitForFunction(
        (i) => !document.getElementById(i).open, {}, id);

    /* the page's info line once a list has loaded */

    const waitInfo = (re) => page.waitForFunction(
        (src) => new RegExp(src).test(
            document.getElementById('page-info').textContent),
        {}, re.source);

    const rowNames = () => page.$$eval('#keys-body tr td:first-child',
        (tds) => tds.map((td) => td.textContent));

    const rowStatus = (id) => page.$eval(
        '#keys-body tr[data-key-id="' + id + '"] .badge',
        (b) => b.textContent);

    /* no raw key in the document, in form values, or in storage */

    async function nowhere(raw, when) {
        const found = await page.evaluate((r) => {
            const where = [];
            const values = Array.from(document.querySelectorAll(
                'input, textarea, output')).map((e) => e.value);
            const store = (s) => Array.from({ length: s.length },
                (_, i) => s.key(i) + '=' + s.getItem(s.key(i))).join('\n');

            if (document.documentElement.outerHTML.includes(r)) {
                where.push('document');
            }

            if (document.body.innerText.includes(r)) {
                where.push('visible text');
            }

            if (values.some((v) => v && v.includes(r))) {
                where.push('a form value');
            }

            if (store(localStorage).includes(r)) {
                where.push('localStorage');
            }

            if (store(sessionStorage).includes(r)) {
                where.push('sessionStorage');
            }

            return where;
        }, raw);

        check('the raw key is nowhere in the page ' + when,
              found.length === 0, 'found in: ' + found.join(', '));
    }

    /* axe-core over the whole page as it is now: no violation */

    async function axe(where) {
        await page.evaluate(AXE);

        const found = await page.evaluate(() => window.axe.run(document, {
            resultTypes: ['violations']
        }).then((r) => r.violations.map((v) => v.id + ' ('
            + v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')
            + ')')));

        check('axe-core finds no accessibility violation ' + where,
              found.length === 0, found.join('; '));
    }

    async function openKey(id) {
        await page.click('#keys-body button[data-key-id="' + id + '"]');
        await waitOpen('key-dialog');
    }

    async function confirm(okText) {
        await waitOpen('confirm-dialog');
        check('the confirmation names its action',
              (await text('#confirm-ok')) === okText);
        await page.click('#confirm-ok');
        await waitClosed('confirm-dialog');
    }

    async function readSecret(title) {
        await waitOpen('secret-dialog');
        await page.waitForFunction(() =>
            document.getElementById('secret-value').textContent.length > 0);

        const raw = await text('#secret-value');

        secret(raw);
        check(title + ': the dialog shows a raw key of the right shape',
              /^ak_[0-9A-Za-z]{49}$/.test(raw), raw.length + ' characters');
        check(title + ': the dialog says it is shown once',
              /You will not see it again/.test(
                  await text('#secret-warning')));
        check(title + ': the dialog has the focus on the key',
              await focusIs('secret-value'));
        return raw;
    }

    async function closeSecret() {
        await page.click('#secret-done');
        await waitClosed('secret-dialog');
    }

    /* -------------------------------------------------------------- */
    /* the page and its headers */

    const resp = await page.goto(URL_, { waitUntil: 'load' });
    const csp = resp.headers()['content-security-policy'] || '';

    check('the console loads (200)', resp.status() === 200, resp.status());
    check('the page carries the strict CSP',
          /default-src 'none'/.test(csp) && /script-src 'self'/.test(csp)
          && !/unsafe-inline/.test(csp), csp);

    await page.waitForSelector('#login:not([hidden])');
    check('without a token the console asks for one',
          await page.$eval('#app', (e) => e.hidden));
    await axe('on the sign-in page');

    /* a wrong token: the API's detail is shown */

    await page.type('#login-org', ORG);
    await page.type('#token', 'not-a-token');
    await page.click('#login-form button[type="submit"]');
    await page.waitForFunction(() =>
        document.getElementById('login-error').textContent.length > 0);

    const loginError = await text('#login-error');

    check('a refused token shows the problem detail',
          /a valid admin bearer token is required/.test(loginError),
          loginError);

    /* the token, typed with the keyboard */

    await page.focus('#token');
    await page.keyboard.type(TOKEN);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#app:not([hidden])');
    await waitInfo(/0 keys/);

    check('the console opens on the organization',
          /acme/.test(await text('#keys-heading')));

    const storage = await page.evaluate(() => ({
        session: sessionStorage.getItem('apikey-console-token'),
        local: localStorage.length
    }));

    check('the token is kept in sessionStorage', storage.session === TOKEN);
    check('nothing is kept in localStorage', storage.local === 0);

    // the organization's settings come from GET orgs/{org}: the admin
    // location has a third environment, "staging", that no key has yet
    await page.waitForFunction(() =>
        document.getElementById('org-info').textContent.length > 0);

    const envs = await page.$$eval('#env-filter option',
        (os) => os.map((o) => o.value).filter((v) => v));

    check('the environment filter lists the location\'s environments',
          envs.join(',') === 'production,preview,staging', envs.join(','));
    check('the organization line names the key prefix and max_keys',
          /New keys start with ak_.*0 active keys of at most 500/
              .test(await text('#org-info')), await text('#org-info'));

    /* -------------------------------------------------------------- */
    /* create, with the keyboard from "New key" */

    await page.focus('#new-key');
    await page.keyboard.press('Enter');
    await waitOpen('create-dialog');
    check('the create dialog has the focus on its name field',
          await focusIs('create-name'));

    await page.keyboard.type('console key');
    await page.type('#create-description', 'made by t/console.t');
    await page.type('#create-environment', 'production');
    await page.type('#create-scopes', 'content:read, content:purge');
    await page.select('#create-rate-kind', 'custom');
    await page.$eval('#create-rate-n', (e) => { e.value = ''; });
    await page.type('#create-rate-n', '10');
    await page.type('#create-rate-burst', '20');
    await page.select('#create-quota-kind', 'day');
    await fill('#create-quota-limit', '1000');
    await page.select('#create-expiry-kind', 'days');
    await page.$eval('#create-expiry-days', (e) => { e.value = ''; });
    await page.type('#create-expiry-days', '30');

    if (SHOTS) {
        await page.screenshot({ path: path.join(SHOTS, 'create-dialog.png') });
    }

    await axe('with the create dialog open');

    await page.click('#create-form button[type="submit"]');

    const raw1 = await readSecret('create');

    await page.click('#copy-secret');
    await page.waitForFunction(() => /Copied|Selected/.test(
        document.getElementById('copy-status').textContent));

    const clip = await page.evaluate(() =>
        navigator.clipboard.readText().catch((e) => 'error: ' + e));

    check('"Copy key" puts the key on the clipboard', clip === raw1,
          clip && clip.slice(0, 12));

    await closeSecret();
    await nowhere(raw1, 'after the create dialog closed');
    check('focus is back on "New key"', await focusIs('new-key'));

    check('the gate lets the new key through (200)',
          (await gate(raw1)) === 200);

    await page.waitForFunction((n) => Array.from(
        document.querySelectorAll('#keys-body button[data-key-id]'))
        .some((b) => b.textContent === n), {}, 'console key');

    const id = await page.$eval('#keys-body tr', (tr) =>
        tr.getAttribute('data-key-id'));
    const cells = await page.$eval('#keys-body tr', (tr) =>
        Array.from(tr.cells).map((c) => c.textContent.trim()));

    check('the table shows name, prefix, environment, scopes, rate, status',
          cells[0] === 'console key' && cells[1] === raw1.slice(0, 8) + '\u2026'
          && cells[2] === 'production'
          && /content:read/.test(cells[3]) && /content:purge/.test(cells[3])
          && cells[4] === '10r/s, burst 20' && cells[5] === 'active'
          && /^\d{4}-\d\d-\d\d \d\d:\d\d$/.test(cells[6])
          && /^\d{4}-\d\d-\d\d \d\d:\d\d$/.test(cells[8]),
          JSON.stringify(cells));

    /* -------------------------------------------------------------- */
    /* the key dialog: usage, edit */

    await openKey(id);
    check('the key dialog has the focus on its first action',
          await focusIs('key-edit'));

    const quotaRow = await page.$$eval('#key-details dt', (dts) => {
        const dt = dts.find((d) => d.textContent === 'Quota');
        return dt ? dt.nextElementSibling.textContent : null;
    });
    const made1 = await api('GET', 'orgs/' + ORG + '/keys/' + id);

    check('create sends the quota, and the key dialog shows its use',
          made1.quota && made1.quota.limit === 1000
          && made1.quota.period === 'day'
          && /^\d+ of 1000 this day, resets \d{4}-\d\d-\d\d 00:00 UTC$/
              .test(quotaRow),
          JSON.stringify(made1.quota) + ' / ' + quotaRow);

    await page.waitForSelector('#usage-chart[data-state]');

    const usage = await page.$eval('#usage-chart', (e) =>
        e.getAttribute('data-state'));
    const usageText = await text('#usage-status');

    if (usage === 'unavailable') {
        check('without a usage route the dialog says "usage not available"',
              /^Usage not available/.test(usageText), usageText);

    } else {
        check('the usage chart is drawn with SVG',
              usage === 'empty' || await page.$('#usage-chart svg rect')
                                   !== null, usage + ': ' + usageText);

        // the key was used once: its y axis says 0 and 1, whole and
        // distinct, never 0, 1, 1
        const ticks = await page.$$eval('#usage-chart svg text.y-tick',
            (ts) => ts.map((t) => t.textContent));

        check('the usage chart\'s y axis has whole, distinct, rising labels',
              usage === 'chart'
              && (ticks.length >= 2 && ticks.every((v, i) =>
                      /^\d+$/.test(v) && (i === 0 || +v > +ticks[i - 1]))),
              ticks.join(', '));
    }

    await page.click('#usage-day');
    await page.waitForFunction(() => document.getElementById('usage-day')
        .getAttribute('aria-pressed') === 'true');

    // the chart is drawn again: a click before it is done may land where
    // the layout moved from (seen under the sanitizers)
    await page.waitForSelector('#usage-chart[data-state]');

    await page.click('#key-edit');
    await waitOpen('edit-dialog');
    await page.$eval('#edit-name', (e) => { e.value = ''; });
    await page.type('#edit-name', 'console key (edited)');
    await page.$eval('#edit-scopes', (e) => { e.value = ''; });
    await page.type('#edit-scopes', 'content:read');
    await page.$eval('#edit-rate-n', (e) => { e.value = ''; });
    await page.type('#edit-rate-n', '7');
    check('the edit dialog starts from the key\'s quota',
          (await page.$eval('#edit-quota-kind', (e) => e.value)) === 'day'
          && (await page.$eval('#edit-quota-limit', (e) => e.value))
             === '1000');
    await page.select('#edit-quota-kind', 'month');
    await fill('#edit-quota-limit', '50');
    await page.click('#edit-form button[type="submit"]');
    await waitClosed('edit-dialog');
    await page.waitForFunction(() => document.getElementById('key-title')
        .textContent === 'console key (edited)');

    const edited = await api('GET', 'orgs/' + ORG + '/keys/' + id);

    check('edit changes name, scopes and rate through the API',
          edited.name === 'console key (edited)'
          && edited.scopes.join() === 'content:read'
          && edited.rate_limit.rate === '7r/s'
          && edited.description === 'made by t/console.t',
          JSON.stringify(edited));

    check('edit sends the new quota',
          edited.quota && edited.quota.limit === 50
          && edited.quota.period === 'month', JSON.stringify(edited.quota));
    await page.waitForFunction(() => / of 50 this month, resets /.test(
        document.getElementById('key-details').textContent));

    /* "No quota" sends null */

    await page.click('#key-edit');
    await waitOpen('edit-dialog');
    await page.select('#edit-quota-kind', 'none');
    check('"No quota" hides the limit',
          await page.$eval('#edit-quota [data-quota-limit]',
                           (e) => e.hidden));
    await page.click('#edit-form button[type="submit"]');
    await waitClosed('edit-dialog');
    check('edit to "No quota" removes it through the API',
          (await api('GET', 'orgs/' + ORG + '/keys/' + id)).quota === null);
    await page.waitForFunction(() => Array.from(
        document.querySelectorAll('#key-details dt')).some((dt) =>
            dt.textContent === 'Quota'
            && dt.nextElementSibling.textContent === 'none'));

    /* an API error is shown with its detail */

    await page.click('#key-edit');
    await waitOpen('edit-dialog');
    await page.$eval('#edit-scopes', (e) => { e.value = ''; });
    await page.type('#edit-scopes', 'Not A Scope');
    await page.click('#edit-form button[type="submit"]');
    await page.waitForFunction(() =>
        document.getElementById('edit-error').textContent.length > 0);
    check('a refused edit shows the API\'s detail',
          /scopes must be/.test(await text('#edit-error')),
          await text('#edit-error'));
    await page.keyboard.press('Escape');
    await waitClosed('edit-dialog');
    check('Escape closes the edit dialog, focus back on "Edit"',
          await focusIs('key-edit'));

    /* rotate with grace: the new key is shown once */

    await page.click('#key-rotate');
    await waitOpen('confirm-dialog');
    check('the rotate confirmation offers a grace period',
          await page.$eval('#confirm-grace', (e) => !e.hidden));
    await page.select('#grace', '0');
    await confirm('Rotate');

    const raw2 = await readSecret('rotate');

    check('rotation shows a new key', raw2 !== raw1);
    await closeSecret();
    await nowhere(raw2, 'after the rotate dialog closed');
    await nowhere(raw1, 'after the rotation');

    check('after rotation without grace the old key is refused (401)',
          (await gate(raw1)) === 401);
    check('and the new key passes (200)', (await gate(raw2)) === 200);

    /* revoke, restore */

    await page.click('#key-revoke');
    await confirm('Revoke');
    await page.waitForSelector('#key-restore:not([hidden])');
    check('after revoke the gate refuses the key (401)',
          (await gate(raw2)) === 401);
    await page.waitForFunction((i) => {
        const b = document.querySelector('#keys-body tr[data-key-id="' + i
                                         + '"] .badge');
        return b && b.textContent === 'revoked';
    }, {}, id);
    check('the table shows the key revoked',
          (await rowStatus(id)) === 'revoked');

    await page.click('#key-restore');
    await confirm('Restore');
    await page.waitForSelector('#key-revoke:not([hidden])');
    check('after restore the gate lets the key through (200)',
          (await gate(raw2)) === 200);

    /* delete: the confirmation starts on "Cancel" */

    await page.click('#key-delete');
    await waitOpen('confirm-dialog');
    check('the delete confirmation has the focus on Cancel',
          await focusIs('Cancel'));
    await confirm('Delete');
    await waitClosed('key-dialog');
    await waitInfo(/ 0 keys/);
    check('after delete the gate refuses the key (401)',
          (await gate(raw2)) === 401);
    check('after delete the key is gone from the table',
          (await page.$('#keys-body tr[data-key-id="' + id + '"]')) === null);

    /* -------------------------------------------------------------- */
    /* a name that is HTML stays text */

    await page.click('#new-key');
    await waitOpen('create-dialog');
    await page.type('#create-name', XSS);
    await page.click('#create-form button[type="submit"]');
    await readSecret('create of a key named like HTML');
    await closeSecret();
    await waitInfo(/ 1 key$/);

    const xss = await page.$eval('#keys-body tr', (tr) => ({
        text: tr.cells[0].textContent,
        imgs: tr.querySelectorAll('img').length
    }));

    check('a key named ' + XSS + ' is shown as text',
          xss.text === XSS && xss.imgs === 0, JSON.stringify(xss));

    /* the event log */

    await page.click('#tab-events');
    await page.waitForSelector('#events-view:not([hidden])');
    await page.waitForFunction(() =>
        document.querySelectorAll('#events-body tr').length > 0);

    const actions = await page.$$eval('#events-body tr td:nth-child(3)',
        (tds) => tds.map((td) => td.textContent));

    check('the event log lists every change, newest first',
          actions.join(' ') === 'created deleted restored revoked rotated '
                                + 'updated updated created',
          actions.join(' '));

    /* an expiry notice, written by the module: in words, with the name */

    const brief = await api('POST', 'orgs/' + ORG + '/keys',
                            { name: 'brief key', expires_in: 120 });
    secret(brief.key);

    const noticed = async () => (await api('GET', 'orgs/' + ORG
                                           + '/events?per_page=5'))
        .data.some((e) => e.key_id === brief.id && e.action === 'expiring');

    for (let end = Date.now() + WAIT; !(await noticed()) && Date.now() < end;)
    {
        await new Promise((resolve) => setTimeout(resolve, 100));
    }

    await page.click('#tab-keys');
    await page.waitForSelector('#keys-view:not([hidden])');
    await page.click('#tab-events');
    await page.waitForFunction((id) =>
        [...document.querySelectorAll('#events-body tr')]
            .some((tr) => tr.textContent.includes(id)), {}, brief.id);

    const notice = await page.$$eval('#events-body tr', (trs) =>
        trs.map((tr) => [...tr.children].slice(1)
                                        .map((td) => td.textContent)));

    check('an expiry notice reads as one, by system, with the key name',
          notice.some((r) => r[0] === 'system'
                             && r[1] === 'expiry notice: expires soon'
                             && r[2] === 'brief key ' + brief.id),
          JSON.stringify(notice));

    await api('DELETE', 'orgs/' + ORG + '/keys/' + brief.id);

    await page.click('#tab-keys');
    await page.waitForSelector('#keys-view:not([hidden])');

    /* -------------------------------------------------------------- */
    /* search, filters and pages over 45 keys */

    for (let i = 1; i <= 45; i++) {
        await api('POST', 'orgs/' + ORG + '/keys', {
            name: 'paging key ' + String(i).padStart(2, '0'),
            environment: i <= 5 ? 'preview' : 'production'
        }).then((k) => secret(k.key));
    }

    const seven = await api('GET', 'orgs/' + ORG
                            + '/keys?search=paging%20key%2007');

    await api('POST', 'orgs/' + ORG + '/keys/' + seven.data[0].id
              + '/revoke');

    await page.type('#search', 'paging');
    await page.keyboard.press('Enter');
    await waitInfo(/^Page 1 of 3 \u00b7 45 keys$/);

    let names = await rowNames();

    check('search: page 1 has 20 keys, newest first',
          names.length === 20 && names[0] === 'paging key 45'
          && names[19] === 'paging key 26', names.join(', '));
    check('"Previous page" is disabled on page 1',
          await page.$eval('#prev', (b) => b.disabled));

    await page.click('#next');
    await waitInfo(/^Page 2 of 3/);
    names = await rowNames();
    check('page 2: keys 25 to 06', names.length === 20
          && names[0] === 'paging key 25' && names[19] === 'paging key 06',
          names.join(', '));

    await page.click('#next');
    await waitInfo(/^Page 3 of 3/);
    names = await rowNames();
    check('page 3: the last 5 keys', names.join() === ['05', '04', '03', '02',
          '01'].map((n) => 'paging key ' + n).join(), names.join(', '));
    check('"Next page" is disabled on the last page',
          await page.$eval('#next', (b) => b.disabled));

    await page.click('#prev');
    await waitInfo(/^Page 2 of 3/);
    check('"Previous page" goes back', (await rowNames())[0]
          === 'paging key 25');

    await page.select('#status-filter', 'revoked');
    await waitInfo(/^Page 1 of 1 \u00b7 1 key$/);
    check('status filter: the one revoked key',
          (await rowNames()).join() === 'paging key 07');

    await page.select('#status-filter', '');
    await page.select('#env-filter', 'preview');
    await waitInfo(/^Page 1 of 1 \u00b7 5 keys$/);
    check('environment filter: the 5 preview keys',
          (await rowNames()).length === 5);

    await page.select('#env-filter', '');
    await page.$eval('#search', (e) => { e.value = ''; });
    await page.focus('#search');
    await page.keyboard.press('Enter');
    await waitInfo(/46 keys$/);

    /* -------------------------------------------------------------- */
    /* the CSP: injected inline script and handlers do not run */

    await page.evaluate(() => {
        const s = document.createElement('script');
        const d = document.createElement('div');

        s.textContent = 'window.__inline = 1;';
        document.body.appendChild(s);

        d.id = 'injected';
        d.innerHTML = '<img src="data:," onerror="window.__handler = 1">'
                      + '<img src="x" onerror="window.__handler = 1">';
        document.body.appendChild(d);
    });

    await page.waitForFunction(() => window.__csp.filter((v) =>
        /^script-src/.test(v.directive)).length >= 2);

    const injected = await page.evaluate(() => ({
        inline: window.__inline, handler: window.__handler,
        csp: window.__csp
    }));

    check('an injected inline script does not run', !injected.inline);
    check('an injected inline event handler does not run',
          !injected.handler);
    check('the CSP reports the inline script as a violation',
          injected.csp.some((v) => /^script-src/.test(v.directive)
                                   && v.blocked === 'inline'),
          JSON.stringify(injected.csp));

    await page.evaluate(() => document.getElementById('injected').remove());

    /* -------------------------------------------------------------- */
    /* a table for the screenshots, in its own organization */

    const demo = [
        { name: 'WordPress purge plugin', scopes: ['content:read',
          'content:purge'], rate_limit: { rate: '10r/s', burst: 20 },
          description: 'purges the CDN on publish', expires_in: 7776000 },
        { name: 'Mobile app (iOS)', scopes: ['content:read'] },
        { name: 'Partner feed: Northwind', environment: 'preview',
          scopes: ['feed:read'], rate_limit: { rate: '120r/m' } },
        { name: 'CI deploy bot', scopes: ['deploy:write'],
          rate_limit: null },
        { name: 'Old reporting job', scopes: ['reports:read'] },
        { name: 'Search indexer', scopes: ['content:read', 'search:write'],
          rate_limit: { rate: '50r/s', burst: 100 } }
    ];
    const made = [];

    for (const k of demo) {
        const r = await api('POST', 'orgs/' + DEMO + '/keys', k);
        secret(r.key);
        made.push(r);
    }

    await gate(made[1].key);
    await gate(made[5].key);
    await api('POST', 'orgs/' + DEMO + '/keys/' + made[4].id + '/revoke');

    await page.$eval('#org', (e) => { e.value = ''; });
    await page.type('#org', DEMO);
    await page.keyboard.press('Enter');
    await waitInfo(/6 keys$/);
    check('the organization picker switches to another organization',
          /demo/.test(await text('#keys-heading')));
    check('and remembers it in sessionStorage', (await page.evaluate(() =>
          sessionStorage.getItem('apikey-console-org'))) === DEMO);

    await page.evaluate(() => { document.getElementById('notice')
                                .textContent = ''; });

    if (SHOTS) {
        await page.screenshot({ path: path.join(SHOTS, 'keys-table.png') });
    }

    await axe('on the keys page');

    /* keyboard only: Tab to a key, Enter opens it, Escape goes back */

    await page.focus('#new-key');

    let reached = null;

    for (let i = 0; i < 12 && !reached; i++) {
        await page.keyboard.press('Tab');
        reached = await page.evaluate(() =>
            document.activeElement.getAttribute('data-key-id'));
    }

    check('Tab reaches the first key of the table', reached === made[5].id,
          reached);
    await page.keyboard.press('Enter');
    await waitOpen('key-dialog');
    check('Enter opens the key', (await text('#key-title'))
          === 'Search indexer');
    await page.keyboard.press('Escape');
    await waitClosed('key-dialog');
    check('Escape closes it and the focus is back on the key',
          await focusIs(made[5].id));

    /* a key with usage: the chart is SVG made by the script */

    await openKey(made[0].id);
    await page.waitForSelector('#usage-chart[data-state="chart"]');

    const chart = await page.evaluate(() => ({
        bars: document.querySelectorAll('#usage-chart svg rect').length,
        legend: Array.from(document.querySelectorAll('#usage-chart li'))
            .map((li) => li.textContent),
        label: document.querySelector('#usage-chart svg')
            .getAttribute('role')
    }));

    check('the usage chart draws a bar for each bucket and count',
          chart.bars >= 24 && chart.label === 'img', JSON.stringify(chart));
    check('the chart\'s legend gives the totals',
          /^Allowed: \d+$/.test(chart.legend[0])
          && /^Rate limited: \d+$/.test(chart.legend[1])
          && /^Refused: \d+$/.test(chart.legend[2]),
          chart.legend.join('; '));

    if (SHOTS) {
        await page.screenshot({ path: path.join(SHOTS, 'key-dialog.png') });
    }

    await axe('with the key dialog and its chart open');

    await page.keyboard.press('Escape');
    await waitClosed('key-dialog');

    /* phone width: no sideways scrolling, rows become cards */

    await page.setViewport({ width: 390, height: 844, isMobile: true,
                             hasTouch: true });
    await page.waitForFunction(() => window.innerWidth === 390);
    await page.waitForSelector('#keys-body tr');

    const phone = await page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        width: window.innerWidth,
        row: getComputedStyle(document.querySelector('#keys-body tr'))
             .display
    }));

    check('at phone width nothing scrolls sideways',
          phone.scroll <= phone.width, JSON.stringify(phone));
    check('at phone width each key is a card', phone.row === 'block',
          phone.row);

    if (SHOTS) {
        await page.screenshot({ path: path.join(SHOTS, 'keys-phone.png') });
    }

    await page.setViewport({ width: 1280, height: 860 });

    /* -------------------------------------------------------------- */
    /* the organization's limits: PATCH orgs/{org} from its line */

    await page.click('#tab-keys');
    await page.waitForSelector('#edit-limits:not([hidden])');
    await page.focus('#edit-limits');
    await page.keyboard.press('Enter');
    await waitOpen('limits-dialog');
    check('"Edit limits" opens the limits dialog, focus on the rate limit',
          await focusIs('limits-rate-kind'));
    await page.select('#limits-rate-kind', 'custom');
    await fill('#limits-rate-n', '100');
    await page.type('#limits-rate-burst', '150');
    await page.select('#limits-quota-kind', 'day');
    await fill('#limits-quota-limit', '5000');
    await page.select('#limits-max-kind', 'custom');
    await fill('#limits-max-n', '20');
    await axe('with the limits dialog open');
    await page.click('#limits-form button[type="submit"]');
    await waitClosed('limits-dialog');

    const demoOrg = await api('GET', 'orgs/' + DEMO);

    check('the limits dialog sends rate limit, quota and max_keys',
          demoOrg.rate_limit && demoOrg.rate_limit.rate === '100r/s'
          && demoOrg.rate_limit.burst === 150 && demoOrg.quota
          && demoOrg.quota.limit === 5000 && demoOrg.quota.period === 'day'
          && demoOrg.max_keys === 20, JSON.stringify(demoOrg));
    check('the organization line shows the new limits, focus back on '
          + '"Edit limits"', new RegExp(' of at most 20 .* shared rate limit '
              + '100r/s, burst 150 .* shared quota \\d+ of 5000 this day\\.$')
              .test(await text('#org-info'))
          && await focusIs('edit-limits'), await text('#org-info'));

    await page.click('#edit-limits');
    await waitOpen('limits-dialog');
    check('the limits dialog starts from the organization\'s limits',
          (await page.$eval('#limits-rate-n', (e) => e.value)) === '100'
          && (await page.$eval('#limits-quota-kind', (e) => e.value))
             === 'day'
          && (await page.$eval('#limits-max-kind', (e) => e.value))
             === 'keep');
    await page.select('#limits-rate-kind', 'none');
    await page.select('#limits-quota-kind', 'none');
    await page.select('#limits-max-kind', 'default');
    await page.click('#limits-form button[type="submit"]');
    await waitClosed('limits-dialog');

    const demoOrg2 = await api('GET', 'orgs/' + DEMO);

    check('and sends null to remove them',
          demoOrg2.rate_limit === null && demoOrg2.quota === null
          && demoOrg2.max_keys === 500, JSON.stringify(demoOrg2));

    /* -------------------------------------------------------------- */
    /* management tokens: the list, a new one shown once, revoke */

    await page.click('#tab-tokens');
    await page.waitForSelector('#tokens-view:not([hidden])');
    check('the Tokens tab shows the tokens page, its heading focused',
          await focusIs('tokens-heading')
          && (await page.$eval('#tab-tokens', (b) =>
                  b.getAttribute('aria-pressed'))) === 'true');
    await page.waitForFunction(() => / tokens?$/.test(
        document.getElementById('tokens-info').textContent));
    await axe('on the tokens page');

    await page.focus('#new-token');
    await page.keyboard.press('Enter');
    await waitOpen('token-dialog');
    check('the new token dialog has the focus on its name',
          await focusIs('token-name'));
    check('it proposes the organization shown and 180 days',
          (await page.$eval('#token-orgs', (e) => e.value)) === DEMO
          && (await page.$eval('#token-days', (e) => e.value)) === '180');
    await page.keyboard.press('Escape');
    await waitClosed('token-dialog');
    check('Escape closes it, focus back on "New token"',
          await focusIs('new-token'));

    await page.keyboard.press('Enter');
    await waitOpen('token-dialog');
    await page.keyboard.type('console ci');
    await page.keyboard.press('Tab');
    await page.keyboard.down('Control');
    await page.keyboard.press('a');
    await page.keyboard.up('Control');
    await page.keyboard.type(ORG);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() =>
        document.getElementById('token-error').textContent.length > 0);
    check('a token without permissions is refused before any request',
          /permission/.test(await text('#token-error'))
          && (await page.evaluate(() => document.activeElement.value))
             === 'keys:read', await text('#token-error'));

    /* the first checkbox has the focus: Space checks it */

    await page.keyboard.press('Space');
    await page.click('#token-permissions input[value="events:read"]');
    await axe('with the new token dialog open');
    await page.click('#token-form button[type="submit"]');
    await waitOpen('secret-dialog');
    await page.waitForFunction(() =>
        document.getElementById('secret-value').textContent.length > 0);

    const rawTok = await text('#secret-value');

    secret(rawTok);
    check('the new token is shown once, with the key dialog\'s warning',
          /^akm_[0-9A-Za-z]{49}$/.test(rawTok)
          && /^Copy this token now\. You will not see it again/.test(
              (await text('#secret-warning')).replace(/\s+/g, ' ')),
          rawTok.length + ' characters');
    check('the token dialog has the focus on the token',
          await focusIs('secret-value'));
    await axe('with the new token shown');

    await page.click('#copy-secret');
    await page.waitForFunction(() => /Copied|Selected/.test(
        document.getElementById('copy-status').textContent));

    const tokClip = await page.evaluate(() =>
        navigator.clipboard.readText().catch((e) => 'error: ' + e));

    check('"Copy token" puts the token on the clipboard',
          tokClip === rawTok && (await text('#copy-secret'))
                                === 'Copy token', tokClip.slice(0, 12));

    await closeSecret();
    await nowhere(rawTok, 'after the token dialog closed');
    check('focus is back on "New token"', await focusIs('new-token'));

    await page.waitForFunction(() => Array.from(
        document.querySelectorAll('#tokens-body tr td:first-child'))
        .some((td) => td.textContent === 'console ci'));

    const tokRow = await page.$$eval('#tokens-body tr', (trs) => trs
        .map((tr) => ({ id: tr.getAttribute('data-token-id'),
                        cells: Array.from(tr.cells)
                            .map((c) => c.textContent.trim()) }))
        .find((r) => r.cells[0] === 'console ci'));
    const tokExpires = Date.parse(tokRow.cells[5].replace(' ', 'T') + 'Z');

    check('the token list shows name, prefix, organizations, '
          + 'permissions, status, expiry and last use',
          tokRow.cells[1] === rawTok.slice(0, 8) + '\u2026'
          && tokRow.cells[2] === ORG
          && /keys:read/.test(tokRow.cells[3])
          && /events:read/.test(tokRow.cells[3])
          && !/keys:write/.test(tokRow.cells[3])
          && tokRow.cells[4] === 'active'
          && Math.abs(tokExpires - Date.now() - 180 * 86400000) < 86400000
          && tokRow.cells[6] === 'never',
          JSON.stringify(tokRow));

    const asToken = async (tok, rel) => (await fetch(new URL(rel, URL_), {
        headers: { Authorization: 'Bearer ' + tok },
        signal: AbortSignal.timeout(WAIT) })).status;

    check('the new token reads the keys of its organization (200)',
          (await asToken(rawTok, 'orgs/' + ORG + '/keys')) === 200);

    await axe('on the tokens page with a token listed');
    await page.click('#tokens-body button[data-revoke-token="'
                     + tokRow.id + '"]');
    await waitOpen('confirm-dialog');
    check('the token\'s revoke confirmation has the focus on Cancel',
          await focusIs('Cancel'));
    await confirm('Revoke');
    await page.waitForFunction((i) => {
        const b = document.querySelector('#tokens-body tr[data-token-id="'
                                         + i + '"] .badge');
        return b && b.textContent === 'revoked';
    }, {}, tokRow.id);
    check('a revoked token is shown revoked, without a Revoke button',
          (await page.$('#tokens-body button[data-revoke-token="'
                        + tokRow.id + '"]')) === null);
    check('and the API refuses it (401)',
          (await asToken(rawTok, 'orgs/' + ORG + '/keys')) === 401);
    check('after the revoke the focus is on the tokens heading',
          await focusIs('tokens-heading'));

    /* a token without tokens:manage: the page shows the API's 403 */

    const reader = await api('POST', 'tokens', {
        name: 'console reader', orgs: [ORG], permissions: ['keys:read'] });

    secret(reader.token);
    await page.click('#signout');
    await page.waitForSelector('#login:not([hidden])');
    await page.$eval('#login-org', (e) => { e.value = ''; });
    await page.type('#login-org', ORG);
    await page.type('#token', reader.token);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#app:not([hidden])');
    await page.click('#tab-tokens');
    await page.waitForFunction(() =>
        document.getElementById('error').textContent.length > 0);
    check('without tokens:manage the Tokens page shows the 403 detail',
          /does not hold the permission/.test(await text('#error'))
          && (await page.$$('#tokens-body tr')).length === 0,
          await text('#error'));

    await page.click('#tab-keys');
    await page.waitForSelector('#edit-limits:not([hidden])');
    await page.click('#edit-limits');
    await waitOpen('limits-dialog');
    await page.select('#limits-max-kind', 'none');
    await page.click('#limits-form button[type="submit"]');
    await page.waitForFunction(() =>
        document.getElementById('limits-error').textContent.length > 0);
    check('without orgs:write the limits dialog shows the 403 detail',
          /does not hold the permission/.test(await text('#limits-error')),
          await text('#limits-error'));
    await page.keyboard.press('Escape');
    await waitClosed('limits-dialog');

    /* -------------------------------------------------------------- */
    /* forget the token */

    await page.click('#signout');
    await page.waitForSelector('#login:not([hidden])');
    check('"Forget token" removes it from sessionStorage',
          (await page.evaluate(() =>
              sessionStorage.getItem('apikey-console-token'))) === null);

    for (const raw of secrets) {
        const seen = await page.evaluate((r) =>
            document.documentElement.outerHTML.includes(r)
            || JSON.stringify(sessionStorage).includes(r)
            || JSON.stringify(localStorage).includes(r), raw);

        if (seen) {
            check('no raw key left in the page or storage', false,
                  raw.slice(0, 8));
        }
    }

    check('no alert or other JavaScript dialog fired', alerts.length === 0,
          alerts.join('; '));
    check('no uncaught JavaScript error', pageErrors.length === 0,
          pageErrors.join('; '));
}


const deadline = setTimeout(() => {
    check('the browser test finished in time', false,
          'still running after ' + (WAIT * 20) + ' ms');
    process.exit(1);
}, WAIT * 20);

main().then(() => {
    clearTimeout(deadline);
    out({ done: true, failed: failed });
    process.exit(failed ? 1 : 0);

}, (e) => {
    clearTimeout(deadline);
    check('the browser test ran to its end', false,
          String(e && e.stack || e));
    process.exit(1);
});

if (SHOTS) {
    fs.mkdirSync(SHOTS, { recursive: true });
}
