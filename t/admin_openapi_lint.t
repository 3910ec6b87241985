#!/usr/bin/perl

# docs/openapi.yaml passes both OpenAPI linters with no error and no
# warning: Redocly CLI with its recommended rules, and Spectral with
# t/.spectral.yaml.  The linters are the versions pinned in
# t/package-lock.json, installed in t/node_modules by npm ci --prefix t,
# which this test runs itself when they are missing; it skips without npm
# or when the registry cannot be reached.  Both linters answer in JSON and
# the counts are read from it: neither exits non-zero on a warning.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Temp qw(tempdir);
use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More;

use ApiKey::Test;

my $root = $ApiKey::Test::ROOT;
my $bin = "$root/t/node_modules/.bin";
my @linters = ("$bin/redocly", "$bin/spectral");

# npm ci takes about 15 s on two shared cores, a lint about 2 s

my $NPM_TIMEOUT = 600;
my $LINT_TIMEOUT = 300;

my $tmp = tempdir('apikey-lint-XXXXXXXX', TMPDIR => 1, CLEANUP => 1);

# neither linter may report home or wait for a prompt

$ENV{REDOCLY_TELEMETRY} = 'off';
$ENV{REDOCLY_SUPPRESS_UPDATE_NOTICE} = 'true';
$ENV{NO_UPDATE_NOTIFIER} = '1';

if (grep { !-x } @linters) {
    my $npm = ApiKey::Test::which('npm');

    plan(skip_all => 'no npm to install the linters (t/package.json)')
        unless $npm;

    my $r = run($NPM_TIMEOUT, $npm, 'ci', '--prefix', "$root/t",
                '--no-audit', '--no-fund');
    my $out = "$r->{out}$r->{err}";

    if ($r->{timeout}) {
        plan(skip_all => "npm ci --prefix t did not finish in $NPM_TIMEOUT s"
                         . ' (registry unreachable?)');
    }

    if ($r->{rc} != 0
        && $out =~ /\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT
                       |ENETUNREACH|EHOSTUNREACH|ESOCKETTIMEDOUT
                       |ERR_SOCKET_TIMEOUT|EPROXY)\b
                     |npm\ error\ network/x)
    {
        plan(skip_all => "npm registry unreachable (" . ($1 // 'network')
                         . "), linters not "
                         . 'installed: npm ci --prefix t');
    }

    is($r->{rc}, 0, 'npm ci --prefix t installs the pinned linters')
        or diag($out);

    if (grep { !-x } @linters) {
        fail('npm ci installs both linters in t/node_modules/.bin');
        done_testing;
        exit;
    }
}

chdir $root or die "$root: $!";

###############################################################################
# Redocly: {"totals": {"errors", "warnings", "ignored"}, "problems": [...]}

my $r = run($LINT_TIMEOUT, "$bin/redocly", 'lint', '--format=json',
            'docs/openapi.yaml');

ok(!$r->{timeout}, 'redocly lint finished');
is($r->{rc}, 0, 'redocly lint exits 0') or diag($r->{err});

my $redocly = decode('redocly', $r->{out}, $r);
my $totals = $redocly->{totals} // {};

for my $n (qw(errors warnings ignored)) {
    is($totals->{$n}, 0, "redocly: 0 $n");
}

is_deeply([map { problem($_->{severity}, $_->{ruleId}, $_->{message},
                         $_->{location}[0]{start}{line}) }
           @{$redocly->{problems} // []}],
          [], 'redocly: no problem reported');

###############################################################################
# Spectral: a list of results, severity 0 error, 1 warning, 2 info, 3 hint;
# written to a file, as it prints a summary line after the JSON

$r = run($LINT_TIMEOUT, "$bin/spectral", 'lint', '--format=json',
         "--output=$tmp/spectral.json", '--ruleset=t/.spectral.yaml',
         'docs/openapi.yaml');

ok(!$r->{timeout}, 'spectral lint finished');
is($r->{rc}, 0, 'spectral lint exits 0') or diag($r->{err});

my $spectral = decode('spectral',
                      ApiKey::Test::_slurp("$tmp/spectral.json"), $r);
my @results = ref $spectral eq 'ARRAY' ? @$spectral : ();
my @severity = qw(error warning info hint);

for my $s (0, 1) {
    is(scalar(grep { $_->{severity} == $s } @results), 0,
       "spectral: 0 $severity[$s]s");
}

is_deeply([map { problem($severity[$_->{severity}], $_->{code},
                         $_->{message}, $_->{range}{start}{line} + 1) }
           grep { $_->{severity} <= 1 } @results],
          [], 'spectral: no error or warning reported');

diag(problem($severity[$_->{severity}], $_->{code}, $_->{message},
             $_->{range}{start}{line} + 1))
    for grep { $_->{severity} > 1 } @results;

done_testing;

###############################################################################

# Runs a command in its own process group, bounded by $timeout seconds
# (then the whole group is killed); stdout and stderr go to files.

sub run {
    my ($timeout, @cmd) = @_;
    my ($out, $err) = ("$tmp/out", "$tmp/err");
    my ($rc, $timed_out);

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

    $rc = $? >> 8;

    return { rc => $rc, timeout => $timed_out,
             out => ApiKey::Test::_slurp($out),
             err => ApiKey::Test::_slurp($err) };
}


sub decode {
    my ($name, $text, $r) = @_;

    my $json = eval { JSON::PP->new->decode($text) };

    ok(defined $json, "$name answers in JSON")
        or diag("$@$text\n$r->{out}$r->{err}");

    return $json // {};
}


sub problem {
    my ($severity, $rule, $message, $line) = @_;

    return "docs/openapi.yaml:" . ($line // '?') . ": $severity: $rule: "
           . ($message // '');
}
