#!/usr/bin/perl

# The admin directives at nginx -t: valid values pass; invalid ones,
# repeats and missing requirements fail with a message naming the
# directive or the value.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;

write_tokens($t, ops => '*');

my @ok = (
    'apikey_key_prefix acme;',
    'apikey_key_prefix a;',
    'apikey_key_prefix abcdefghijklmnop;',
    'apikey_environments live;',
    'apikey_environments a b c.d e_f-g;',
    'apikey_default_rate 10r/m;',
    'apikey_default_rate 1000000r/s burst=1000000;',
    'apikey_default_rate 1r/s burst=1;',
    'apikey_max_keys 0;',
    'apikey_max_keys 1000;',
    'apikey_default_ttl 2s;',
    'apikey_default_ttl 30d;',
    'apikey_max_ttl 1y;',
    'apikey_default_ttl 1h; apikey_max_ttl 1h;',
    'apikey_admin_timeout 5s;',
    'apikey_admin_timeout 250ms;',
);

my @bad = (
    ['apikey_key_prefix AK;', 'prefix'],
    ['apikey_key_prefix 1ak;', 'prefix'],
    ['apikey_key_prefix ak_;', 'prefix'],
    ['apikey_key_prefix abcdefghijklmnopq;', 'prefix'],
    ['apikey_key_prefix ak; apikey_key_prefix ak;', 'duplicate'],
    ['apikey_environments live live;', 'duplicate environment'],
    ['apikey_environments "a b";', 'environment'],
    ['apikey_environments a; apikey_environments b;', 'duplicate'],
    ['apikey_default_rate 5r/h;', 'rate'],
    ['apikey_default_rate 0r/s;', 'rate'],
    ['apikey_default_rate 1000001r/s;', 'rate'],
    ['apikey_default_rate 5;', 'rate'],
    ['apikey_default_rate 5r/s burst=0;', 'burst'],
    ['apikey_default_rate 5r/s burst=x;', 'burst'],
    ['apikey_default_rate 5r/s burst=1000001;', 'burst'],
    ['apikey_default_rate 5r/s nodelay;', 'invalid parameter'],
    ['apikey_default_rate 5r/s; apikey_default_rate 5r/s;', 'duplicate'],
    ['apikey_max_keys -1;', 'apikey_max_keys'],
    ['apikey_max_keys many;', 'apikey_max_keys'],
    ['apikey_default_ttl 0;', 'apikey_default_ttl'],
    ['apikey_default_ttl soon;', 'apikey_default_ttl'],
    ['apikey_max_ttl 0s;', 'apikey_max_ttl'],
    ['apikey_default_ttl 2h; apikey_max_ttl 1h;', 'longer'],
    ['apikey_admin_tokens ' . $t->dir . '/tokens;', 'duplicate'],
    ['apikey_admin_timeout 0;', 'must be more than 0'],
    ['apikey_admin_timeout soon;', 'apikey_admin_timeout'],
    ['apikey_admin_timeout 1s; apikey_admin_timeout 2s;', 'duplicate'],
);

for my $d (@ok) {
    my ($rc, $out) = $t->nginx_test(conf($d));
    is($rc, 0, "passes: $d") or diag($out);
}

for my $c (@bad) {
    my ($rc, $out) = $t->nginx_test(conf($c->[0]));
    isnt($rc, 0, "fails: $c->[0]");
    like($out, qr/\Q$c->[1]\E/i, "saying $c->[1]") or diag($out);
}

my ($rc, $out) = $t->nginx_test(conf('', admin => 'apikey_admin;'));
isnt($rc, 0, 'apikey_admin twice fails');
like($out, qr/duplicate/, 'as a duplicate');

($rc, $out) = $t->nginx_test(conf('apikey_admin;'));
isnt($rc, 0, 'apikey_admin outside a location fails');

($rc, $out) = $t->nginx_test(conf('', admin => 'apikey_admin on;'));
isnt($rc, 0, 'apikey_admin takes no argument');

($rc, $out) = $t->nginx_test(conf('', admin => 'apikey_admin_timeout 1s;'));
isnt($rc, 0, 'apikey_admin_timeout in a location fails');
like($out, qr/not allowed here/, 'as not allowed there');

###############################################################################
# a token file others may write: loaded, with a warning naming the fix, as
# ssh does

my $tokens = $t->dir . '/tokens';

# nginx -t logs it to the error log of the test (-e error.log)

sub conftest_log {
    open my $fh, '<', $t->dir . '/conftest/error.log' or return '';
    local $/;
    return <$fh> // '';
}

for my $m ([0664, 'its group'], [0646, 'anyone'], [0666, 'anyone']) {
    chmod $m->[0], $tokens;
    ($rc, $out) = $t->nginx_test(conf(''));
    my $mode = sprintf '%04o', $m->[0];
    is($rc, 0, "a token file of mode $mode is loaded") or diag($out);
    my $warn = qr/\[warn\].*token file "\Q$tokens\E" is writable by /
               . qr/\Q$m->[1]\E \(mode $mode\).*chmod go-w \Q$tokens\E/;
    like(conftest_log(), qr/$warn/,
         "with a [warn] naming the file and the fix ($mode)")
        or diag(conftest_log());
}

chmod 0644, $tokens;
($rc, $out) = $t->nginx_test(conf(''));
is($rc, 0, 'mode 0644: loaded');
unlike(conftest_log(), qr/\[warn\].*token file/, 'with no warning');

# at start, in the error log

chmod 0666, $tokens;
$t->run_redis;
$t->run_nginx(conf(''));
like($t->error_log . $t->read_file('stderr.log'),
     qr/\[warn\].*token file "\Q$tokens\E" is writable by anyone/,
     'the warning is logged when nginx starts');
$t->stop_nginx;
chmod 0644, $tokens;

done_testing;

###############################################################################

sub conf {
    my ($http, %o) = @_;
    return admin_config($t, http => $http, %o);
}
