/*
 * ngx_http_apikey_module web console.
 *
 * Everything goes through the admin API of the location that serves this
 * page (relative URLs: "orgs/<org>/keys", ...).  The admin token is kept
 * in sessionStorage only, never in localStorage or a cookie.  The DOM is
 * built with createElement and textContent: no data ever goes through
 * innerHTML, and the page's Content-Security-Policy forbids inline script
 * and style anyway.  A raw key is shown once, in a dialog of its own,
 * and wiped from the page when that dialog closes.
 */

(function () {
    'use strict';

    var TOKEN = 'apikey-console-token';
    var ORG = 'apikey-console-org';
    var PER_PAGE = 20;
    var NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

    /* the event log's words for the module's own events */
    var ACTIONS = {
        expiring: 'expiry notice: expires soon',
        expired: 'expiry notice: expired'
    };

    var state = {
        token: null,
        org: null,
        view: 'keys',
        page: 1,
        total: 0,
        search: '',
        status: '',
        environment: '',
        envs: [],               /* GET orgs/{org}, and keys seen */
        orgInfo: null,
        eventsPage: 1,
        tokensPage: 1,
        key: null,              /* the key of the key dialog */
        granularity: 'hour'
    };


    function $(id) {
        return document.getElementById(id);
    }


    /* el('td', {class: 'x', 'data-label': 'Name'}, child, 'text', ...) */

    function el(tag, attrs) {
        var e = document.createElement(tag);
        var name, v, i, c;

        for (name in attrs || {}) {
            v = attrs[name];

            if (v === null || v === undefined || v === false) {
                continue;
            }

            if (name === 'text') {
                e.textContent = v;

            } else if (name.slice(0, 2) === 'on') {
                e.addEventListener(name.slice(2), v);

            } else {
                e.setAttribute(name, v === true ? '' : String(v));
            }
        }

        for (i = 2; i < arguments.length; i++) {
            c = arguments[i];

            if (c === null || c === undefined) {
                continue;
            }

            e.appendChild(typeof c === 'string' ? document.createTextNode(c)
                                                : c);
        }

        return e;
    }


    function svg(tag, attrs) {
        var e = document.createElementNS('http://www.w3.org/2000/svg', tag);
        var name;

        for (name in attrs || {}) {
            if (name === 'text') {
                e.textContent = attrs[name];

            } else {
                e.setAttribute(name, String(attrs[name]));
            }
        }

        return e;
    }


    function clear(node) {
        while (node.firstChild) {
            node.removeChild(node.firstChild);
        }
    }


    function say(id, text) {
        $(id).textContent = text || '';
    }


    /* storage: this tab only */

    function store(name, value) {
        try {
            if (value === null) {
                window.sessionStorage.removeItem(name);

            } else {
                window.sessionStorage.setItem(name, value);
            }

        } catch (e) {
            /* storage disabled: the console works for this page view */
        }
    }


    function stored(name) {
        try {
            return window.sessionStorage.getItem(name);

        } catch (e) {
            return null;
        }
    }


    /* the admin API */

    function ApiError(status, code, detail) {
        this.status = status;
        this.code = code;
        this.message = detail;
    }


    function path() {
        var p = 'orgs/' + encodeURIComponent(state.org);
        var i;

        for (i = 0; i < arguments.length; i++) {
            p += '/' + encodeURIComponent(arguments[i]);
        }

        return p;
    }


    function query(params) {
        var q = [];
        var name;

        for (name in params) {
            if (params[name] !== '' && params[name] !== null
                && params[name] !== undefined)
            {
                q.push(encodeURIComponent(name) + '='
                       + encodeURIComponent(params[name]));
            }
        }

        return q.length ? '?' + q.join('&') : '';
    }


    function api(method, rel, body) {
        var headers = {
            'Authorization': 'Bearer ' + state.token,
            'Accept': 'application/json, application/problem+json'
        };
        var init = {
            method: method,
            headers: headers,
            cache: 'no-store',
            redirect: 'error',
            referrerPolicy: 'no-referrer'
        };

        if (body !== undefined) {
            headers['Content-Type'] = 'application/json';
            init.body = JSON.stringify(body);
        }

        return fetch(new URL(rel, document.baseURI).href, init).then(
            function (res) {
                if (res.status === 204) {
                    return null;
                }

                return res.text().then(function (text) {
                    var data = null;

                    try {
                        data = JSON.parse(text);

                    } catch (e) {
                        data = null;
                    }

                    if (res.ok) {
                        return data;
                    }

                    if (res.status === 401) {
                        signOut('The admin API refused the token: '
                                + detailOf(data, res));
                    }

                    throw new ApiError(res.status,
                                       data && data.code ? data.code : '',
                                       detailOf(data, res));
                });
            },
            function () {
                throw new ApiError(0, 'network',
                                   'The admin API could not be reached.');
            });
    }


    function detailOf(data, res) {
        if (data && typeof data.detail === 'string' && data.detail) {
            return data.detail;
        }

        return 'HTTP ' + res.status + (res.statusText ? ' '
                                        + res.statusText : '');
    }


    function message(err) {
        return err && err.message ? err.message : String(err);
    }


    /* formatting */

    function when(iso) {
        var m;

        if (!iso) {
            return null;
        }

        m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)/.exec(iso);

        return m ? m[1] + ' ' + m[2] : iso;
    }


    function timeCell(iso, none) {
        var t = when(iso);

        if (!t) {
            return el('span', { 'class': 'muted', text: none });
        }

        return el('time', { datetime: iso, title: iso, text: t });
    }


    function rateText(rl) {
        if (!rl) {
            return 'unlimited';
        }

        return rl.rate + ', burst ' + rl.burst;
    }


    /* "12 of 1000 this day": a key's or organization's quota */

    function quotaText(q) {
        if (!q) {
            return 'none';
        }

        return q.used + ' of ' + q.limit + ' this ' + q.period;
    }


    function scopesNode(scopes) {
        var span = el('span');

        if (!scopes || !scopes.length) {
            span.appendChild(el('span', { 'class': 'muted', text: 'none' }));
            return span;
        }

        scopes.forEach(function (s) {
            span.appendChild(el('span', { 'class': 'chip', text: s }));
        });

        return span;
    }


    function statusNode(status) {
        return el('span', { 'class': 'badge status-' + status,
                            text: status });
    }


    function parseScopes(text) {
        return text.split(/[\s,]+/).filter(function (s) {
            return s.length > 0;
        });
    }


    /* datetime-local (the browser's time zone) to RFC 3339 UTC */

    function isoFromLocal(value) {
        var d = new Date(value);

        if (!value || isNaN(d.getTime())) {
            return null;
        }

        return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
    }


    function learnEnvironment(env) {
        if (env && state.envs.indexOf(env) < 0) {
            state.envs.push(env);
            fillEnvironments();
        }
    }


    function fillEnvironments() {
        var select = $('env-filter');
        var list = $('env-list');
        var current = select.value;

        while (select.options.length > 1) {
            select.remove(1);
        }

        clear(list);

        state.envs.forEach(function (env) {
            select.appendChild(el('option', { value: env, text: env }));
            list.appendChild(el('option', { value: env }));
        });

        select.value = current;
    }


    /* dialogs: focus goes back where it came from */

    function openDialog(d, focus) {
        d.returnTo = document.activeElement;
        d.showModal();

        if (focus) {
            focus.focus();
        }
    }


    /* the raw key leaves the page before its dialog is shut */

    function closeDialog(d) {
        if (d.id === 'secret-dialog') {
            wipeSecret();
        }

        if (d.open) {
            d.close();
        }
    }


    function onDialogClose(d) {
        var to = d.returnTo;

        d.returnTo = null;

        if (d.id === 'key-dialog' && state.key) {
            to = document.querySelector('button[data-key-id="'
                                        + state.key.id + '"]') || to;
            state.key = null;
        }

        if (!focusable(to)) {
            to = $('key-dialog').open ? $('key-edit')
                                      : $(state.view + '-heading');
        }

        to.focus();
    }


    function focusable(e) {
        return e && e.isConnected && !e.disabled && !e.closest('[hidden]')
               && !e.closest('dialog:not([open])');
    }


    /* sign in and out */

    function showLogin(text) {
        $('login').hidden = false;
        $('app').hidden = true;
        $('org-form').hidden = true;
        $('signout').hidden = true;
        say('login-error', text);
        $('login-org').value = state.org || stored(ORG) || '';
        $('token').value = '';
        ($('login-org').value ? $('token') : $('login-org')).focus();
    }


    function signOut(text) {
        state.token = null;
        store(TOKEN, null);

        Array.prototype.forEach.call(document.querySelectorAll('dialog'),
                                     closeDialog);
        wipeSecret();
        showLogin(text);
    }


    function validOrg(org) {
        if (!NAME_RE.test(org) || org === '.' || org === '..') {
            return 'An organization is 1 to 64 of A-Z a-z 0-9 . _ - '
                   + '(and not "." or "..").';
        }

        return null;
    }


    function onLogin(ev) {
        var token = $('token').value.trim();
        var org = $('login-org').value.trim();
        var bad = validOrg(org);

        ev.preventDefault();

        if (!token) {
            say('login-error', 'Paste an admin token.');
            $('token').focus();
            return;
        }

        if (bad) {
            say('login-error', bad);
            $('login-org').focus();
            return;
        }

        state.token = token;
        state.org = org;
        $('token').value = '';

        /* one request proves the token before the console opens */

        api('GET', path('keys') + query({ per_page: 1 })).then(function () {
            store(TOKEN, token);
            store(ORG, org);
            showApp();

        }, function (err) {
            if (err.status !== 401) {
                state.token = null;
                say('login-error', message(err));
                $('token').focus();
            }
        });
    }


    function showApp() {
        $('login').hidden = true;
        $('app').hidden = false;
        $('org-form').hidden = false;
        $('signout').hidden = false;
        $('org').value = state.org;
        say('login-error', '');
        setView('keys');
        loadOrg();
        loadKeys().then(function () {
            $('keys-heading').focus();
        });
    }


    /*
     * The organization's settings (GET orgs/{org}): the environments and
     * key prefix of the admin location, so that nothing is hard-coded
     * here, and its limits; without the route (an older server) the
     * environments come from the keys seen
     */

    function loadOrg() {
        var org = state.org;

        return api('GET', path()).then(
            function (data) {
                if (org !== state.org || !data) {
                    return;
                }

                state.orgInfo = data;
                state.envs = [];

                (Array.isArray(data.environments) ? data.environments : [])
                    .forEach(function (env) {
                        learnEnvironment(String(env));
                    });

                fillEnvironments();
                $('org-info').textContent = orgSummary(data);
                $('edit-limits').hidden = false;

            }, function () {
                state.orgInfo = null;
                $('org-info').textContent = '';
                $('edit-limits').hidden = true;
            });
    }


    /*
     * PATCH orgs/{org}: the organization's shared rate limit and quota
     * and its max_keys; only what changed is sent.  GET answers the
     * max_keys in force (its own or apikey_max_keys), so "keep" is the
     * default and sends nothing.
     */

    function openLimits() {
        var o = state.orgInfo;

        $('limits-form').reset();
        say('limits-error', '');
        say('limits-title', 'Limits of ' + state.org);
        fillLimits('limits', o.rate_limit, o.quota);
        $('limits-max-kind').options[0].textContent = 'Keep as it is ('
            + (o.max_keys ? o.max_keys : 'no limit') + ')';
        syncMax();
        openDialog($('limits-dialog'), $('limits-rate-kind'));
    }


    function syncMax() {
        $('limits-max').querySelector('[data-max-custom]').hidden =
            $('limits-max-kind').value !== 'custom';
    }


    function onLimits(ev) {
        var o = state.orgInfo;
        var org = state.org;
        var body = {};
        var kind = $('limits-max-kind').value;
        var n = $('limits-max-n').value.trim();

        ev.preventDefault();
        say('limits-error', '');

        try {
            readLimits('limits', o, body);

            if (kind === 'custom' && (!/^[1-9][0-9]{0,9}$/.test(n)
                                      || Number(n) > 1000000000))
            {
                throw 'The most active keys is a whole number from 1 to '
                      + '1000000000.';
            }

        } catch (e) {
            say('limits-error', e);
            return;
        }

        if (kind !== 'keep') {
            body.max_keys = kind === 'default' ? null
                            : kind === 'none' ? 0 : Number(n);
        }

        if (Object.keys(body).length === 0) {
            closeDialog($('limits-dialog'));
            say('notice', 'Nothing changed.');
            return;
        }

        send(ev, 'limits', api('PATCH', path(), body).then(function (no) {
            closeDialog($('limits-dialog'));

            if (org === state.org) {
                state.orgInfo = no;
                $('org-info').textContent = orgSummary(no);
            }

            say('notice', 'Limits of ' + org + ' saved.');
        }));
    }


    function orgSummary(o) {
        var parts = ['New keys start with ' + o.key_prefix + '_'];

        parts.push(o.active_keys + ' active key'
                   + (o.active_keys === 1 ? '' : 's')
                   + (o.max_keys ? ' of at most ' + o.max_keys : ''));

        if (o.rate_limit) {
            parts.push('shared rate limit ' + o.rate_limit.rate + ', burst '
                       + o.rate_limit.burst);
        }

        if (o.quota) {
            parts.push('shared quota ' + quotaText(o.quota));
        }

        return parts.join(' \u00b7 ') + '.';
    }


    function onOrg(ev) {
        var org = $('org').value.trim();
        var bad = validOrg(org);

        ev.preventDefault();

        if (bad) {
            say('error', bad);
            $('org').focus();
            return;
        }

        state.org = org;
        store(ORG, org);
        state.page = 1;
        state.eventsPage = 1;
        say('notice', 'Showing organization ' + org + '.');

        loadOrg();

        loadView(state.view).then(function () {
            $(state.view + '-heading').focus();
        });
    }


    /* views: keys, events, tokens; each has #<view>-view, #tab-<view> */

    var VIEWS = ['keys', 'events', 'tokens'];


    function setView(view) {
        state.view = view;

        VIEWS.forEach(function (v) {
            $(v + '-view').hidden = v !== view;
            $('tab-' + v).setAttribute('aria-pressed', String(v === view));
        });
    }


    function loadView(view) {
        return view === 'keys' ? loadKeys()
               : view === 'events' ? loadEvents() : loadTokens();
    }


    function switchView(view) {
        say('error', '');
        say('notice', '');
        setView(view);

        loadView(view).then(function () {
            $(view + '-heading').focus();
        });
    }


    /* the keys table */

    /*
     * Only the answer to the latest request is shown: a filter changed
     * while an earlier page is on its way (the status, then the
     * environment) must not be overwritten by that earlier answer
     */

    var keysAsked = 0;


    function loadKeys() {
        var table = $('keys-table');
        var asked = ++keysAsked;

        table.setAttribute('aria-busy', 'true');
        $('keys-heading').textContent = 'Keys of ' + state.org;

        return api('GET', path('keys') + query({
            search: state.search,
            status: state.status,
            environment: state.environment,
            page: state.page,
            per_page: PER_PAGE

        })).then(function (data) {
            if (asked === keysAsked) {
                say('error', '');
                renderKeys(data);
            }

        }, function (err) {
            if (err.status !== 401 && asked === keysAsked) {
                say('error', message(err));
            }

        }).then(function () {
            if (asked === keysAsked) {
                table.removeAttribute('aria-busy');
            }
        });
    }


    function renderKeys(data) {
        var body = $('keys-body');
        var keys = data && Array.isArray(data.data) ? data.data : [];

        clear(body);

        state.total = data && data.total_count ? data.total_count : 0;

        keys.forEach(function (k) {
            learnEnvironment(k.environment);
            body.appendChild(keyRow(k));
        });

        $('keys-empty').hidden = keys.length > 0;
        showPager(PAGERS.keys, state.page, state.total);
    }


    /*
     * The pagers: "Page 2 of 3 \u00b7 45 keys", their buttons off at either
     * end; a page turned keeps the focus in its pager
     */

    var PAGERS = {
        keys: { prev: 'prev', info: 'page-info', next: 'next',
                noun: 'key', page: 'page', load: function () {
                    return loadKeys();
                } },
        events: { prev: 'events-prev', info: 'events-info',
                  next: 'events-next', noun: 'event', page: 'eventsPage',
                  load: function () {
                      return loadEvents();
                  } },
        tokens: { prev: 'tokens-prev', info: 'tokens-info',
                  next: 'tokens-next', noun: 'token', page: 'tokensPage',
                  load: function () {
                      return loadTokens();
                  } }
    };


    function showPager(p, page, total) {
        var pages = Math.max(1, Math.ceil(total / PER_PAGE));

        $(p.info).textContent = 'Page ' + page + ' of ' + pages + ' \u00b7 '
                                + total + ' ' + p.noun
                                + (total === 1 ? '' : 's');
        $(p.prev).disabled = page <= 1;
        $(p.next).disabled = page * PER_PAGE >= total;
    }


    function turnPage(p, delta) {
        state[p.page] = Math.max(1, state[p.page] + delta);

        p.load().then(function () {
            var b = $(delta > 0 ? p.next : p.prev);

            /* the button may be disabled now: keep focus in the pager */

            (b.disabled ? $(delta > 0 ? p.prev : p.next) : b).focus();
        });
    }


    function keyRow(k) {
        var open = el('button', {
            type: 'button',
            'class': 'link',
            'data-key-id': k.id,
            'aria-haspopup': 'dialog',
            text: k.name,
            onclick: function () {
                showKey(k);
            }
        });

        return el('tr', { 'data-key-id': k.id },
            el('td', { 'data-label': 'Name' }, open),
            el('td', { 'data-label': 'Prefix', 'class': 'nowrap' },
               el('code', { text: k.prefix + '\u2026' })),
            el('td', { 'data-label': 'Environment', text: k.environment }),
            el('td', { 'data-label': 'Scopes' }, scopesNode(k.scopes)),
            el('td', { 'data-label': 'Rate limit', 'class': 'nowrap',
                       text: rateText(k.rate_limit) }),
            el('td', { 'data-label': 'Status' }, statusNode(k.status)),
            el('td', { 'data-label': 'Created (UTC)', 'class': 'nowrap' },
               timeCell(k.created_at, '')),
            el('td', { 'data-label': 'Last used (UTC)', 'class': 'nowrap' },
               timeCell(k.last_used_at, 'never')),
            el('td', { 'data-label': 'Expires (UTC)', 'class': 'nowrap' },
               timeCell(k.expires_at, 'never')));
    }


    function onFilters(ev) {
        ev.preventDefault();
        state.search = $('search').value.trim();
        state.status = $('status-filter').value;
        state.environment = $('env-filter').value;
        state.page = 1;
        say('notice', '');
        loadKeys();
    }


    /* the event log */

    function loadEvents() {
        return loadList('events', path('events'), function (e) {
            return el('tr', null,
                el('td', { 'data-label': 'When (UTC)', 'class': 'nowrap' },
                   timeCell(e.at, '')),
                el('td', { 'data-label': 'Actor', text: e.actor }),
                el('td', { 'data-label': 'Action',
                           text: ACTIONS.hasOwnProperty(e.action)
                                 ? ACTIONS[e.action] : e.action }),
                el('td', { 'data-label': 'Key' },
                   e.key_name ? e.key_name + ' ' : null,
                   el('code', { text: e.key_id || '' })));

        }).then(null, function (err) {
            if (err.status !== 401) {
                say('error', message(err));
            }
        });
    }


    /* a page of the events or tokens: its rows, "empty" and its pager */

    function loadList(name, rel, row) {
        var p = PAGERS[name];

        return api('GET', rel + query({
            page: state[p.page],
            per_page: PER_PAGE

        })).then(function (data) {
            var body = $(name + '-body');
            var list = data && Array.isArray(data.data) ? data.data : [];

            say('error', '');
            clear(body);

            list.forEach(function (x) {
                body.appendChild(row(x));
            });

            $(name + '-empty').hidden = list.length > 0;
            showPager(p, state[p.page],
                      data && data.total_count ? data.total_count : 0);
        });
    }


    /* rate limit and expiry fields, shared by create and edit */

    function syncRate(prefix) {
        $(prefix + '-rate').querySelector('[data-rate-custom]').hidden =
            $(prefix + '-rate-kind').value !== 'custom';
    }


    /* the quota fields, from their template, before the expiry's */

    function addQuotaFields(prefix, before) {
        var f = $('quota-fields').content.firstElementChild.cloneNode(true);

        Array.prototype.forEach.call(f.querySelectorAll('[data-for]'),
            function (e) {
                e.htmlFor = prefix + '-' + e.getAttribute('data-for');
            });

        [f].concat(Array.prototype.slice.call(
            f.querySelectorAll('[data-id]'))).forEach(function (e) {
                e.id = prefix + '-' + e.getAttribute('data-id');
            });

        before.parentNode.insertBefore(f, before);
    }


    /* a copy of fields whose ids start with "from-", as "to-" */

    function copyFields(src, from, to) {
        var f = src.cloneNode(true);

        [f].concat(Array.prototype.slice.call(f.querySelectorAll('[id]')))
            .forEach(function (e) {
                e.id = to + e.id.slice(from.length);
            });

        Array.prototype.forEach.call(f.querySelectorAll('label[for]'),
            function (e) {
                e.htmlFor = to + e.htmlFor.slice(from.length);
            });

        return f;
    }


    /*
     * The rate limit and quota of a dialog into body where they differ
     * from old's (a key or organization); throws a message for a bad one
     */

    function readLimits(prefix, old, body) {
        var rl = readRate(prefix);
        var quota = readQuota(prefix);

        if (rateChanged(rl, old.rate_limit)) {
            body.rate_limit = rl;
        }

        if (quotaChanged(quota, old.quota)) {
            body.quota = quota;
        }
    }


    function rateChanged(rl, old) {
        return rl === null ? old !== null
               : !old || rl.rate !== old.rate
                 || (rl.burst !== undefined && rl.burst !== old.burst);
    }


    function quotaChanged(q, old) {
        return q === null ? !!old
               : !old || q.limit !== old.limit || q.period !== old.period;
    }


    function syncQuota(prefix) {
        $(prefix + '-quota').querySelector('[data-quota-limit]').hidden =
            $(prefix + '-quota-kind').value === 'none';
    }


    /* null for none, else {limit, period}; throws a message for a bad one */

    function readQuota(prefix) {
        var kind = $(prefix + '-quota-kind').value;
        var n = $(prefix + '-quota-limit').value.trim();

        if (kind === 'none') {
            return null;
        }

        if (!/^[1-9][0-9]{0,12}$/.test(n) || Number(n) > 1e12) {
            throw 'The quota is a whole number of requests from 1 to '
                  + '1000000000000.';
        }

        return { limit: Number(n), period: kind };
    }


    function syncExpiry(prefix) {
        var kind = $(prefix + '-expiry-kind').value;
        var box = $(prefix + '-expiry');

        box.querySelector('[data-expiry-days]').hidden = kind !== 'days';
        box.querySelector('[data-expiry-at]').hidden = kind !== 'at';
    }


    /* undefined: leave it out; throws a message for a bad value */

    function readRate(prefix) {
        var kind = $(prefix + '-rate-kind').value;
        var n = $(prefix + '-rate-n').value.trim();
        var burst = $(prefix + '-rate-burst').value.trim();
        var rl;

        if (kind === 'default') {
            return undefined;
        }

        if (kind === 'none') {
            return null;
        }

        if (!/^[1-9][0-9]{0,6}$/.test(n)) {
            throw 'The rate is a whole number of requests from 1 to 1000000.';
        }

        rl = { rate: n + 'r/' + $(prefix + '-rate-per').value };

        if (burst !== '') {
            if (!/^[1-9][0-9]{0,6}$/.test(burst)) {
                throw 'The burst is a whole number from 1 to 1000000.';
            }

            rl.burst = Number(burst);
        }

        return rl;
    }


    function readExpiry(prefix, body) {
        var kind = $(prefix + '-expiry-kind').value;
        var days, at;

        if (kind === 'never') {
            body.expires_at = null;

        } else if (kind === 'days') {
            days = $(prefix + '-expiry-days').value.trim();

            if (!/^[1-9][0-9]{0,4}$/.test(days)) {
                throw 'The number of days is a whole number from 1.';
            }

            if (prefix === 'create') {
                body.expires_in = Number(days) * 86400;

            } else {
                body.expires_at = new Date(Date.now() + Number(days)
                                           * 86400000).toISOString()
                                  .replace(/\.\d{3}Z$/, 'Z');
            }

        } else if (kind === 'at') {
            at = isoFromLocal($(prefix + '-expiry-at').value);

            if (!at) {
                throw 'Choose the date and time the key expires.';
            }

            body.expires_at = at;
        }
    }


    /*
     * A dialog's form sent: its submit button is off meanwhile, and a
     * refusal shows in the form's error line
     */

    function send(ev, form, request) {
        var submit = ev.submitter || $(form + '-form').querySelector(
            'button[type="submit"]');

        submit.disabled = true;

        return request.then(null, function (err) {
            if (err.status !== 401) {
                say(form + '-error', message(err));
            }

        }).then(function () {
            submit.disabled = false;
        });
    }


    /* create */

    function openCreate() {
        $('create-form').reset();
        say('create-error', '');
        syncRate('create');
        syncQuota('create');
        syncExpiry('create');
        openDialog($('create-dialog'), $('create-name'));
    }


    function onCreate(ev) {
        var body = {};
        var name = $('create-name').value;
        var rl, quota;

        ev.preventDefault();
        say('create-error', '');

        if (!name.trim()) {
            say('create-error', 'A key needs a name.');
            $('create-name').focus();
            return;
        }

        body.name = name;

        if ($('create-description').value) {
            body.description = $('create-description').value;
        }

        if ($('create-environment').value.trim()) {
            body.environment = $('create-environment').value.trim();
        }

        if ($('create-scopes').value.trim()) {
            body.scopes = parseScopes($('create-scopes').value);
        }

        try {
            rl = readRate('create');
            quota = readQuota('create');
            readExpiry('create', body);

        } catch (e) {
            say('create-error', e);
            return;
        }

        if (rl !== undefined) {
            body.rate_limit = rl;
        }

        if (quota) {
            body.quota = quota;
        }

        send(ev, 'create', api('POST', path('keys'), body).then(
            function (k) {
                state.page = 1;
                made('key', k, 'create-dialog', loadKeys);
            }));
    }


    /*
     * A key or token made: the raw one leaves the object, its dialog
     * shuts, its list is read again and the raw one is shown once
     */

    function made(noun, obj, dialog, reload) {
        var raw = obj[noun];
        var Noun = noun.charAt(0).toUpperCase() + noun.slice(1);

        delete obj[noun];
        closeDialog($(dialog));
        reload();
        showSecret(Noun + ' created', Noun + ' \u201c' + obj.name
                   + '\u201d (' + obj.prefix + '\u2026) was created.', raw,
                   null, noun);
    }


    /* the raw key, once */

    function showSecret(title, what, raw, graceText, noun) {
        noun = noun || 'key';
        say('secret-title', title);
        say('secret-noun', noun);
        say('copy-secret', 'Copy ' + noun);
        $('secret-value').setAttribute('aria-label', noun === 'key'
                                       ? 'The new API key'
                                       : 'The new ' + noun);
        $('secret-value').textContent = raw;
        say('copy-status', what);
        $('secret-grace').hidden = !graceText;
        say('secret-grace', graceText);
        openDialog($('secret-dialog'), $('secret-value'));
    }


    function wipeSecret() {
        $('secret-value').textContent = '';
        say('copy-status', '');
        say('secret-grace', '');
    }


    function copySecret() {
        var node = $('secret-value');
        var text = node.textContent;
        var done = function () {
            say('copy-status', 'Copied to the clipboard.');
        };

        if (!text) {
            return;
        }

        if (navigator.clipboard && window.isSecureContext) {
            navigator.clipboard.writeText(text).then(done, function () {
                selectCopy(node, done);
            });
            return;
        }

        selectCopy(node, done);
    }


    /* no clipboard API (plain http): select the key and copy that */

    function selectCopy(node, done) {
        var range = document.createRange();
        var sel = window.getSelection();
        var ok = false;

        range.selectNodeContents(node);
        sel.removeAllRanges();
        sel.addRange(range);

        try {
            ok = document.execCommand('copy');

        } catch (e) {
            ok = false;
        }

        if (ok) {
            sel.removeAllRanges();
            done();

        } else {
            say('copy-status', 'Selected: press Ctrl+C (or \u2318C) to '
                               + 'copy.');
        }
    }


    /* one key: details, actions, usage */

    function showKey(k) {
        state.key = k;
        setGranularity('hour');
        fillKey(k);
        openDialog($('key-dialog'), $('key-edit'));
        loadUsage();
    }


    function fillKey(k) {
        var dl = $('key-details');
        var rows = [
            ['Id', el('code', { text: k.id })],
            ['Prefix', el('code', { text: k.prefix + '\u2026' })],
            ['Status', statusNode(k.status)],
            ['Environment', k.environment],
            ['Description', k.description
                            || el('span', { 'class': 'muted',
                                            text: 'none' })],
            ['Scopes', scopesNode(k.scopes)],
            ['Rate limit', rateText(k.rate_limit)],
            ['Quota', k.quota ? el('span', null, quotaText(k.quota)
                                   + ', resets ',
                                   timeCell(k.quota.resets_at, ''), ' UTC')
                              : quotaText(null)],
            ['Created (UTC)', el('span', null, timeCell(k.created_at, ''),
                                 ' by ' + k.created_by)],
            ['Updated (UTC)', timeCell(k.updated_at, '')],
            ['Last used (UTC)', timeCell(k.last_used_at, 'never')],
            ['Expires (UTC)', timeCell(k.expires_at, 'never')],
            ['Revoked (UTC)', timeCell(k.revoked_at, 'no')]
        ];

        say('key-title', k.name);
        say('key-error', '');
        clear(dl);

        rows.forEach(function (r) {
            dl.appendChild(el('dt', { text: r[0] }));
            dl.appendChild(el('dd', null, r[1]));
        });

        $('key-revoke').hidden = k.status === 'revoked';
        $('key-restore').hidden = k.status !== 'revoked';
        $('key-rotate').disabled = k.status === 'revoked';
    }


    /* after a change: the dialog and the table */

    function keyChanged(k, text) {
        state.key = k;
        fillKey(k);
        say('notice', text);
        loadKeys();
    }


    /*
     * A confirmation: run(grace) does the action and may resolve to a
     * function to call once the confirmation is closed
     */

    function confirmAction(title, text, ok, withGrace, run) {
        var d = $('confirm-dialog');
        var form = $('confirm-form');

        say('confirm-title', title);
        say('confirm-text', text);
        say('confirm-ok', ok);
        say('confirm-error', '');
        $('confirm-ok').className = ok === 'Delete' || ok === 'Revoke'
                                    ? 'danger' : 'primary';
        $('confirm-grace').hidden = !withGrace;
        $('grace').value = '0';

        form.onsubmit = function (ev) {
            ev.preventDefault();
            $('confirm-ok').disabled = true;

            run(Number($('grace').value)).then(function (after) {
                closeDialog(d);

                if (typeof after === 'function') {
                    after();
                }

            }, function (err) {
                if (err.status !== 401) {
                    say('confirm-error', message(err));
                }

            }).then(function () {
                $('confirm-ok').disabled = false;
            });
        };

        /* the safe choice has the focus */

        openDialog(d, withGrace ? $('grace')
                                : form.querySelector('[data-close]'));
    }


    function onRevoke() {
        var k = state.key;

        confirmAction('Revoke \u201c' + k.name + '\u201d?',
            'Requests with this key are refused (401) from now on.  You '
            + 'can restore it later.', 'Revoke', false, function () {
                return api('POST', path('keys', k.id, 'revoke'))
                    .then(function (nk) {
                        keyChanged(nk, 'Key \u201c' + nk.name
                                       + '\u201d revoked.');
                    });
            });
    }


    function onRestore() {
        var k = state.key;

        confirmAction('Restore \u201c' + k.name + '\u201d?',
            'The key works again from the next request on.', 'Restore',
            false, function () {
                return api('POST', path('keys', k.id, 'restore'))
                    .then(function (nk) {
                        keyChanged(nk, 'Key \u201c' + nk.name
                                       + '\u201d restored.');
                    });
            });
    }


    function onRotate() {
        var k = state.key;

        confirmAction('Rotate \u201c' + k.name + '\u201d?',
            'A new key replaces the current one; its id, name and '
            + 'settings stay.  The new key is shown once.', 'Rotate', true,
            function (grace) {
                return api('POST', path('keys', k.id, 'rotate'),
                           { grace_seconds: grace })
                    .then(function (nk) {
                        var raw = nk.key;
                        var until = nk.previous_key_expires_at;

                        delete nk.key;
                        delete nk.previous_key_expires_at;
                        keyChanged(nk, 'Key \u201c' + nk.name
                                       + '\u201d rotated.');

                        return function () {
                            showSecret('Key rotated', 'The new key of '
                                       + '\u201c' + nk.name + '\u201d ('
                                       + nk.prefix + '\u2026).', raw,
                                       until ? 'The previous key keeps '
                                               + 'working until '
                                               + when(until) + ' UTC.'
                                             : 'The previous key no '
                                               + 'longer works.');
                            raw = null;
                        };
                    });
            });
    }


    function onDelete() {
        var k = state.key;

        confirmAction('Delete \u201c' + k.name + '\u201d?',
            'The key is removed for good and every request with it is '
            + 'refused.  This cannot be undone.', 'Delete', false,
            function () {
                return api('DELETE', path('keys', k.id)).then(function () {
                    return function () {
                        state.key = null;
                        closeDialog($('key-dialog'));
                        say('notice', 'Key \u201c' + k.name
                                      + '\u201d deleted.');
                        loadKeys().then(function () {
                            $('keys-heading').focus();
                        });
                    };
                });
            });
    }


    /* edit: only what changed is sent */

    /* the rate and quota fields of a dialog, from a key or organization */

    function fillLimits(prefix, rl, quota) {
        var m = rl ? /^(\d+)r\/([sm])$/.exec(rl.rate) : null;

        $(prefix + '-rate-kind').value = rl ? 'custom' : 'none';
        $(prefix + '-rate-n').value = m ? m[1] : '5';
        $(prefix + '-rate-per').value = m ? m[2] : 's';
        $(prefix + '-rate-burst').value = rl ? rl.burst : '';
        $(prefix + '-quota-kind').value = quota ? quota.period : 'none';
        $(prefix + '-quota-limit').value = quota ? quota.limit : '1000';
        syncRate(prefix);
        syncQuota(prefix);
    }


    function openEdit() {
        var k = state.key;

        $('edit-form').reset();
        say('edit-error', '');
        $('edit-name').value = k.name;
        $('edit-description').value = k.description || '';
        $('edit-scopes').value = (k.scopes || []).join(' ');
        fillLimits('edit', k.rate_limit, k.quota);

        $('edit-expiry-kind').options[0].textContent = 'Keep as it is ('
            + (k.expires_at ? when(k.expires_at) + ' UTC' : 'never') + ')';

        syncExpiry('edit');
        openDialog($('edit-dialog'), $('edit-name'));
    }


    function onEdit(ev) {
        var k = state.key;
        var body = {};
        var scopes;

        ev.preventDefault();
        say('edit-error', '');

        if ($('edit-name').value !== k.name) {
            body.name = $('edit-name').value;
        }

        if ($('edit-description').value !== (k.description || '')) {
            body.description = $('edit-description').value;
        }

        scopes = parseScopes($('edit-scopes').value);

        if (scopes.join(' ') !== (k.scopes || []).join(' ')) {
            body.scopes = scopes;
        }

        try {
            readLimits('edit', k, body);
            readExpiry('edit', body);

        } catch (e) {
            say('edit-error', e);
            return;
        }

        if (Object.keys(body).length === 0) {
            closeDialog($('edit-dialog'));
            say('notice', 'Nothing changed.');
            return;
        }

        send(ev, 'edit', api('PATCH', path('keys', k.id), body).then(
            function (nk) {
                closeDialog($('edit-dialog'));
                keyChanged(nk, 'Key \u201c' + nk.name + '\u201d saved.');
            }));
    }


    /*
     * Management tokens (GET, POST tokens, POST tokens/{id}/revoke): not
     * under an organization; the console's token needs tokens:manage, and
     * a 403 shows the API's detail like any other error
     */

    function loadTokens() {
        var table = $('tokens-table');

        table.setAttribute('aria-busy', 'true');

        return loadList('tokens', 'tokens', tokenRow).then(null,
            function (err) {
                if (err.status !== 401) {
                    clear($('tokens-body'));
                    $('tokens-empty').hidden = true;
                    say('tokens-info', '');
                    $('tokens-prev').disabled = true;
                    $('tokens-next').disabled = true;
                    say('error', message(err));
                }

            }).then(function () {
                table.removeAttribute('aria-busy');
            });
    }


    function tokenRow(t) {
        var revoke = t.status === 'revoked' ? null : el('button', {
            type: 'button',
            'class': 'danger',
            'data-revoke-token': t.id,
            'aria-label': 'Revoke ' + t.name,
            text: 'Revoke',
            onclick: function () {
                onRevokeToken(t);
            }
        });

        return el('tr', { 'data-token-id': t.id },
            el('td', { 'data-label': 'Name', text: t.name }),
            el('td', { 'data-label': 'Prefix', 'class': 'nowrap' },
               el('code', { text: t.prefix + '\u2026' })),
            el('td', { 'data-label': 'Organizations' },
               scopesNode(t.orgs)),
            el('td', { 'data-label': 'Permissions' },
               scopesNode(t.permissions)),
            el('td', { 'data-label': 'Status' }, statusNode(t.status)),
            el('td', { 'data-label': 'Expires (UTC)', 'class': 'nowrap' },
               timeCell(t.expires_at, 'never')),
            el('td', { 'data-label': 'Last used (UTC)', 'class': 'nowrap' },
               timeCell(t.last_used_at, 'never')),
            el('td', { 'data-label': 'Actions' }, revoke));
    }


    function openNewToken() {
        $('token-form').reset();
        say('token-error', '');
        $('token-orgs').value = state.org || '';
        openDialog($('token-dialog'), $('token-name'));
    }


    function onNewToken(ev) {
        var name = $('token-name').value;
        var orgs = parseScopes($('token-orgs').value);
        var days = $('token-days').value.trim();
        var perms = Array.prototype.filter.call(
            $('token-form').querySelectorAll('input[name="permission"]'),
            function (c) {
                return c.checked;
            }).map(function (c) {
                return c.value;
            });
        var bad;

        ev.preventDefault();
        say('token-error', '');

        bad = !name.trim() ? ['A token needs a name.', 'token-name']
              : !orgs.length ? ['Name its organizations, or *.', 'token-orgs']
              : !perms.length ? ['Choose at least one permission.',
                                 'token-permissions']
              : !/^[1-9][0-9]{0,2}$/.test(days) || Number(days) > 730
                ? ['The expiry is a whole number of days from 1 to 730.',
                   'token-days']
              : null;

        if (bad) {
            say('token-error', bad[0]);
            ($(bad[1]).querySelector('input') || $(bad[1])).focus();
            return;
        }

        send(ev, 'token', api('POST', 'tokens', {
            name: name,
            orgs: orgs,
            permissions: perms,
            expires_in: Number(days) * 86400

        }).then(function (t) {
            state.tokensPage = 1;
            made('token', t, 'token-dialog', loadTokens);
        }));
    }


    function onRevokeToken(t) {
        confirmAction('Revoke the token \u201c' + t.name + '\u201d?',
            'Every request with it is refused (401) from the next one on, '
            + 'on every instance.  This cannot be undone.', 'Revoke', false,
            function () {
                return api('POST', 'tokens/' + encodeURIComponent(t.id)
                                   + '/revoke').then(function (nt) {
                    return function () {
                        say('notice', 'Token \u201c' + nt.name
                                      + '\u201d revoked.');
                        loadTokens().then(function () {
                            $('tokens-heading').focus();
                        });
                    };
                });
            });
    }


    /* usage: GET orgs/{org}/keys/{id}/usage?granularity=hour|day */

    function setGranularity(g) {
        state.granularity = g;
        $('usage-hour').setAttribute('aria-pressed', String(g === 'hour'));
        $('usage-day').setAttribute('aria-pressed', String(g === 'day'));
    }


    function loadUsage() {
        var k = state.key;
        var box = $('usage-chart');

        clear(box);
        box.removeAttribute('data-state');
        say('usage-status', 'Loading usage\u2026');

        api('GET', path('keys', k.id, 'usage')
                   + query({ granularity: state.granularity }))
            .then(function (data) {
                if (!state.key || state.key.id !== k.id) {
                    return;
                }

                drawUsage(box, buckets(data));

            }, function (err) {
                if (!state.key || state.key.id !== k.id
                    || err.status === 401)
                {
                    return;
                }

                box.setAttribute('data-state', 'unavailable');

                if (err.status === 404 && err.code === 'not_found') {
                    say('usage-status', 'Usage not available: this server '
                                        + 'does not count usage.');
                    return;
                }

                say('usage-status', 'Usage not available: '
                                    + message(err));
            });
    }


    /* the buckets of an answer, oldest first */

    function buckets(data) {
        var list = Array.isArray(data) ? data
                   : data && Array.isArray(data.data) ? data.data
                   : data && Array.isArray(data.buckets) ? data.buckets : [];

        return list.map(function (b) {
            return {
                at: b.at || b.start || b.from || b.time || b.bucket || '',
                allowed: Number(b.allowed) || 0,
                rate_limited: Number(b.rate_limited) || 0,
                refused: Number(b.refused) || 0
            };

        }).sort(function (a, b) {
            return a.at < b.at ? -1 : a.at > b.at ? 1 : 0;
        });
    }


    function drawUsage(box, list) {
        var W = 640, H = 220, L = 44, R = 8, T = 10, B = 28;
        var kinds = ['allowed', 'rate_limited', 'refused'];
        var labels = { allowed: 'Allowed', rate_limited: 'Rate limited',
                       refused: 'Refused' };
        var totals = { allowed: 0, rate_limited: 0, refused: 0 };
        var max = 0, unit = state.granularity === 'day' ? 'day' : 'hour';
        var chart, title, desc, bw, scale, legend, i, step, summary, ticks;

        list.forEach(function (b) {
            kinds.forEach(function (kd) {
                totals[kd] += b[kd];
            });
            max = Math.max(max, b.allowed + b.rate_limited + b.refused);
        });

        box.setAttribute('data-state', 'chart');
        summary = 'Allowed ' + totals.allowed + ', rate limited '
                  + totals.rate_limited + ', refused ' + totals.refused
                  + ' in ' + list.length + ' ' + unit
                  + (list.length === 1 ? '' : 's') + '.';

        if (!list.length || max === 0) {
            say('usage-status', 'No requests counted for this key yet.');
            box.setAttribute('data-state', 'empty');
            return;
        }

        say('usage-status', summary);

        chart = svg('svg', { 'class': 'chart', viewBox: '0 0 ' + W + ' ' + H,
                             role: 'img',
                             'aria-labelledby': 'usage-svg-title '
                                                + 'usage-svg-desc' });
        title = svg('title', { id: 'usage-svg-title',
                               text: 'Requests per ' + unit });
        desc = svg('desc', { id: 'usage-svg-desc', text: summary });
        chart.appendChild(title);
        chart.appendChild(desc);

        /* y axis: whole, distinct counts, the top one at or over max */

        ticks = yTicks(max);
        scale = (H - T - B) / ticks[ticks.length - 1];
        bw = (W - L - R) / list.length;

        ticks.forEach(function (v) {
            var y = H - B - v * scale;

            chart.appendChild(svg('line', { 'class': v ? 'grid' : 'axis',
                                            x1: L, x2: W - R, y1: y,
                                            y2: y }));
            chart.appendChild(svg('text', { 'class': 'y-tick', x: L - 6,
                                            y: y + 4, 'text-anchor': 'end',
                                            text: String(v) }));
        });

        list.forEach(function (b, n) {
            var y = H - B;
            var x = L + n * bw + bw * 0.1;
            var g = svg('g', {});

            g.appendChild(svg('title', {
                text: (when(b.at) || b.at) + ' UTC: allowed ' + b.allowed
                      + ', rate limited ' + b.rate_limited + ', refused '
                      + b.refused
            }));

            kinds.forEach(function (kd) {
                var h = b[kd] * scale;

                if (h > 0) {
                    y -= h;
                    g.appendChild(svg('rect', { 'class': kd, x: x, y: y,
                                                width: Math.max(1, bw * 0.8),
                                                height: h }));
                }
            });

            chart.appendChild(g);
        });

        /* a few time labels along the x axis */

        step = Math.max(1, Math.ceil(list.length / 6));

        for (i = 0; i < list.length; i += step) {
            chart.appendChild(svg('text', {
                x: L + i * bw + bw / 2, y: H - 8, 'text-anchor': 'middle',
                text: axisLabel(list[i].at)
            }));
        }

        legend = el('ul', { 'class': 'legend' });

        kinds.forEach(function (kd) {
            legend.appendChild(el('li', { 'class': kd,
                                          text: labels[kd] + ': '
                                                + totals[kd] }));
        });

        box.appendChild(chart);
        box.appendChild(legend);
    }


    /*
     * 0 and up to two more ticks a whole step apart (1, 2 or 5 times a
     * power of ten, at least 1), the last at or above max: a key used once
     * gets 0 and 1, not 0, 1, 1
     */

    function yTicks(max) {
        var half = max / 2, p = 1, step, out = [], v;

        while (p * 10 <= half) {
            p *= 10;
        }

        step = [1, 2, 5, 10].map(function (m) { return m * p; })
                            .filter(function (s) { return s >= half; })[0];
        step = Math.max(1, step);

        for (v = 0; v < max; v += step) {
            out.push(v);
        }

        out.push(v);

        return out;
    }


    function axisLabel(iso) {
        var m = /^\d{4}-(\d\d)-(\d\d)T(\d\d):(\d\d)/.exec(iso || '');

        if (!m) {
            return '';
        }

        return state.granularity === 'day' ? m[1] + '-' + m[2]
                                            : m[3] + ':' + m[4];
    }


    /* wiring */

    function start() {
        var dialogs = document.querySelectorAll('dialog');

        $('login-form').addEventListener('submit', onLogin);
        $('org-form').addEventListener('submit', onOrg);
        $('signout').addEventListener('click', function () {
            signOut('The token was removed from this tab.');
        });

        $('tab-keys').addEventListener('click', function () {
            switchView('keys');
        });
        $('tab-events').addEventListener('click', function () {
            switchView('events');
        });
        $('tab-tokens').addEventListener('click', function () {
            switchView('tokens');
        });
        $('new-token').addEventListener('click', openNewToken);
        $('token-form').addEventListener('submit', onNewToken);

        $('filters').addEventListener('submit', onFilters);
        $('status-filter').addEventListener('change', onFilters);
        $('env-filter').addEventListener('change', onFilters);
        Object.keys(PAGERS).forEach(function (name) {
            var p = PAGERS[name];

            $(p.prev).addEventListener('click', function () {
                turnPage(p, -1);
            });
            $(p.next).addEventListener('click', function () {
                turnPage(p, 1);
            });
        });

        $('new-key').addEventListener('click', openCreate);
        $('create-form').addEventListener('submit', onCreate);
        $('edit-form').addEventListener('submit', onEdit);

        $('limits-max').parentNode.insertBefore(
            copyFields($('edit-rate'), 'edit-', 'limits-'), $('limits-max'));

        ['create', 'edit', 'limits'].forEach(function (p) {
            addQuotaFields(p, $(p === 'limits' ? 'limits-max'
                                               : p + '-expiry'));
            $(p + '-rate-kind').addEventListener('change', function () {
                syncRate(p);
            });
            $(p + '-quota-kind').addEventListener('change', function () {
                syncQuota(p);
            });
        });

        $('edit-limits').addEventListener('click', openLimits);
        $('limits-form').addEventListener('submit', onLimits);
        $('limits-max-kind').addEventListener('change', syncMax);

        ['create', 'edit'].forEach(function (p) {
            $(p + '-expiry-kind').addEventListener('change', function () {
                syncExpiry(p);
            });
        });

        $('copy-secret').addEventListener('click', copySecret);
        $('secret-done').addEventListener('click', function () {
            closeDialog($('secret-dialog'));
        });

        $('key-edit').addEventListener('click', openEdit);
        $('key-rotate').addEventListener('click', onRotate);
        $('key-revoke').addEventListener('click', onRevoke);
        $('key-restore').addEventListener('click', onRestore);
        $('key-delete').addEventListener('click', onDelete);
        $('usage-hour').addEventListener('click', function () {
            setGranularity('hour');
            loadUsage();
        });
        $('usage-day').addEventListener('click', function () {
            setGranularity('day');
            loadUsage();
        });

        Array.prototype.forEach.call(dialogs, function (d) {
            Array.prototype.forEach.call(d.querySelectorAll('[data-close]'),
                function (b) {
                    b.addEventListener('click', function () {
                        closeDialog(d);
                    });
                });

            /* Escape: "cancel" comes before the dialog is shut */

            d.addEventListener('cancel', function () {
                if (d.id === 'secret-dialog') {
                    wipeSecret();
                }
            });

            d.addEventListener('close', function () {
                if (d.id === 'secret-dialog') {
                    wipeSecret();
                }

                onDialogClose(d);
            });
        });

        fillEnvironments();

        state.token = stored(TOKEN);
        state.org = stored(ORG);

        if (state.token && state.org && !validOrg(state.org)) {
            showApp();

        } else {
            showLogin('');
        }
    }


    if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', start);

    } else {
        start();
    }
}());
