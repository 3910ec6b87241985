#!/usr/bin/perl

# The web console in a real browser: t/console/run.js drives headless
# Chromium (puppeteer-core, pinned in t/package-lock.json, as is the
# axe-core it runs over every page and dialog it opens) through sign-in,
# create (the raw key read from its dialog and used at the gate), edit,
# rotate, revoke, restore, delete, search, filters and pages over 45
# keys, key quotas, the organization's limits, the event log, the Tokens
# page (a management token made, shown once, used and revoked; a token
# without tokens:manage or orgs:write sees the 403), keyboard use,
# phone width, and the CSP against injected script; no raw key or token
# may stay in the page or in web storage, or reach a log.  Screenshots
# go to build/console/.
#
# It needs Chromium (Debian's chromium, in the Makefile's test packages;
# CHROMIUM names another binary) and t/node_modules (npm ci --prefix t,
# which make test runs and this test runs when they are missing).  Without
# them it fails, saying what is missing, unless TEST_APIKEY_SKIP_BROWSER=1
# says to skip it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Path qw(make_path);
use File::Temp qw(tempdir);
use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More;

use ApiKey::Test;
use ApiKey::Admin;

my $root = $ApiKey::Test::ROOT;
my $chromium = $ENV{CHROMIUM} || '/usr/bin/chromium';
my @modules = map { "$root/t/node_modules/$_/package.json" }
                  qw(puppeteer-core axe-core);
my $shots = "$root/build/console";

# the browser test takes about 25 s on two shared cores; npm ci about 30 s

my $NPM_TIMEOUT = 600;
my $RUN_TIMEOUT = 300;

my $t = ApiKey::Test->new;

# run.js prints the raw keys it saw: outside the directory scanned for them

my $tmp = tempdir('apikey-console-XXXXXXXX', TMPDIR => 1, CLEANUP => 1);

sub missing {
    my ($what) = @_;

    plan(skip_all => "$what (TEST_APIKEY_SKIP_BROWSER is set)")
        if $ENV{TEST_APIKEY_SKIP_BROWSER};

    fail("the browser test can run: $what");
    diag('install it (make test does), or set TEST_APIKEY_SKIP_BROWSER=1 '
         . 'to skip this test');
    done_testing;
    exit;
}

my $node = ApiKey::Test::which('node')
    or missing('no node (Debian package nodejs)');

missing("no Chromium at $chromium (Debian package chromium)")
    unless -x $chromium;

if (grep { !-f } @modules) {
    my $npm = ApiKey::Test::which('npm')
        or missing('no t/node_modules and no npm to install it');

    my $r = run($NPM_TIMEOUT, $npm, 'ci', '--prefix', "$root/t",
                '--no-audit', '--no-fund');

    missing("npm ci --prefix t failed:\n$r->{out}$r->{err}")
        if grep { !-f } @modules;
}

$t->run_redis;

my $tok = write_tokens($t, ops => '*');

# Organization demo (the screenshots) answers usage from a stand-in, so
# that the chart is drawn whether or not this build has the usage route;
# acme's goes to the admin API.

my @buckets = map {
    sprintf('{"at":"2026-11-22T%02d:00:00Z","allowed":%d,"rate_limited":%d,'
            . '"refused":%d}', $_, 40 + 30 * sin($_ / 3) + $_ * 2,
            $_ % 7 == 3 ? 12 : $_ % 5 == 0 ? 4 : 0, $_ % 6 == 2 ? 3 : 0)
} 0 .. 23;

my $usage = '{"granularity":"hour","data":[' . join(',', @buckets) . ']}';

$t->run_nginx(admin_config($t, admin => 'apikey_admin_console on; '
                                        . 'apikey_max_keys 500; '
                                        . 'apikey_environments production '
                                        . 'preview staging;',
                           server => <<"EOF"));

        location ~ ^/admin/orgs/demo/keys/[^/]+/usage\$ {
            default_type application/json;
            return 200 '$usage';
        }
EOF

make_path($shots);

my $port = $t->port(1);

local $ENV{CONSOLE_URL} = "http://127.0.0.1:$port/admin/";
local $ENV{CONSOLE_TOKEN} = $tok->{ops};
local $ENV{CONSOLE_GATE} = "http://127.0.0.1:$port/api/";
local $ENV{CONSOLE_SHOTS} = $shots;
local $ENV{CHROMIUM} = $chromium;

my $r = run($RUN_TIMEOUT, $node, "$root/t/console/run.js");

ok(!$r->{timeout}, "the browser test finished in $RUN_TIMEOUT s");

my ($done, @secrets);

for my $line (split /\n/, $r->{out}) {
    my $j = eval { JSON::PP->new->utf8->decode($line) };

    unless (ref $j eq 'HASH') {
        diag("run.js: $line");
        next;
    }

    if (exists $j->{ok}) {
        ok($j->{ok}, $j->{name}) or diag($j->{diag} // '');

    } elsif (defined $j->{secret}) {
        push @secrets, $j->{secret};

    } elsif ($j->{done}) {
        $done = 1;
    }
}

ok($done, 'run.js ran to its end') or diag($r->{err});
is($r->{rc}, 0, 'run.js exits 0') or diag($r->{err});

ok(@secrets >= 3, 'run.js saw the raw keys it made');

for my $s (@secrets) {
    $t->log_contains_no($s, 'a raw key ' . substr($s, 0, 8));
}

for my $png (qw(keys-table create-dialog key-dialog keys-phone)) {
    ok(-s "$shots/$png.png", "screenshot build/console/$png.png");
}

$t->error_log_clean;

done_testing;

###############################################################################

# Runs a command in its own process group, bounded by $timeout seconds
# (then the whole group is killed); stdout and stderr go to files.

sub run {
    my ($timeout, @cmd) = @_;
    my ($out, $err) = ("$tmp/out", "$tmp/err");
    my $timed_out;

    my $pid = fork;
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        setpgrp(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or POSIX::_exit(127);
        open STDERR, '>', $err or POSIX::_exit(127);
        exec @cmd or POSIX::_exit(127);
    }

    unless (wait_for($timeout, sub { waitpid($pid, WNOHANG) == $pid })) {
        kill 'KILL', -$pid;
        waitpid($pid, 0);
        $timed_out = 1;
    }

    return { rc => $? >> 8, timeout => $timed_out,
             out => ApiKey::Test::_slurp($out),
             err => ApiKey::Test::_slurp($err) };
}
