#!/usr/bin/perl

# POST .../rotate: a new raw key, the old one refused at once, or with
# grace_seconds working until previous_key_expires_at (never past the
# key's own expiry); a second rotation ends an earlier grace; revoke and
# restore cover the key in grace; a revoked key cannot be rotated.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

$t->run_nginx(admin_config($t));

my $a = ApiKey::Admin->new($t, $tok->{ops});
my $port = $t->port(1);

sub st { (gate($port, $_[0]))[0] }

###############################################################################
# no grace

my $k = $a->create('acme', name => 'rotate me', scopes => ['a:b'],
                   rate_limit => { rate => '10r/s' });
my $path = "orgs/acme/keys/$k->{id}";

is(st($k->{key}), 200, 'the first key works');

my $r = $a->post("$path/rotate", undef);
is($r->{status}, 200, 'rotate: 200') or diag($r->{body});

my $n = $r->{json};
like($n->{key}, qr/^ak_[0-9A-Za-z]{49}$/, 'a new raw key');
isnt($n->{key}, $k->{key}, 'another one');
is($n->{prefix}, substr($n->{key}, 0, 8), 'the prefix of the new key');
is($n->{id}, $k->{id}, 'the id stays');
is($n->{name}, 'rotate me', 'the name stays');
is_deeply($n->{scopes}, ['a:b'], 'scopes stay');
is_deeply($n->{rate_limit}, { rate => '10r/s', burst => 10 },
          'rate limit stays');
is($n->{previous_key_expires_at}, undef, 'no grace: null');
like($n->{last_used_at}, qr/Z$/, 'last use is kept');

is(st($k->{key}), 401, 'the old key is refused at once');
my ($st, $h) = gate($port, $k->{key});
is($h->{'x-apikey-status'}, 'invalid', 'as invalid');
($st, $h) = gate($port, $n->{key});
is($st, 200, 'the new key works at once');
is($h->{'x-apikey-prefix'}, $n->{prefix}, 'with its prefix');
is($h->{'x-apikey-id'}, $k->{id}, 'and the same id');

is($t->redis('EXISTS', 'apikey:{' . hash_of($k->{key}) . '}'), 0,
   'the old secret is gone');

###############################################################################
# grace

$r = $a->post("$path/rotate", { grace_seconds => 4 });
my $g = $r->{json};
my $started = time;

ok(defined $g->{previous_key_expires_at}, 'grace: previous_key_expires_at');
is(epoch($g->{previous_key_expires_at}) - epoch($g->{updated_at}), 4,
   '4 s after the rotation');

is(st($n->{key}), 200, 'the previous key works in grace');
is(st($g->{key}), 200, 'and so does the new one');

($st, $h) = gate($port, $n->{key});
is($h->{'x-apikey-prefix'}, $n->{prefix}, 'the previous key keeps its prefix');

my $hash = hash_of($n->{key});
my $pttl = $t->redis('PTTL', "apikey:{$hash}");
ok($pttl > 60000 && $pttl <= 65000,
   'Redis expires it a minute after grace')
    or diag("pttl $pttl");

# revoke and restore act on both secrets

$a->post("$path/revoke", undef);
is(st($n->{key}), 401, 'revoked: the key in grace is refused');
is(st($g->{key}), 401, 'revoked: the current key is refused');
($st, $h) = gate($port, $n->{key});
is($h->{'x-apikey-status'}, 'revoked', 'as revoked');

is_admin_problem($a->post("$path/rotate", undef), 400, 'key_revoked',
                 'a revoked key cannot be rotated');

$a->post("$path/restore", undef);
is(st($n->{key}), 200, 'restored: the key in grace works again')
    if time < $started + 2;
is(st($g->{key}), 200, 'restored: the current key works');

# the previous key stops at the end of grace (bounded wait); both keys
# draw from the key's one bucket (10r/s), so poll at half that rate

my $gone = wait_for(15, sub {
    Time::HiRes::sleep(0.2);
    st($n->{key}) == 401;
});
ok($gone, 'the previous key is refused once grace is over');
ok(time >= $started + 2, 'not before its end');
($st, $h) = gate($port, $n->{key});
is($h->{'x-apikey-status'}, 'invalid', 'as invalid');
is(st($g->{key}), 200, 'the current key goes on');

###############################################################################
# a second rotation ends an earlier grace

$r = $a->post("$path/rotate", { grace_seconds => 3600 });
my $g2 = $r->{json};
is(st($g->{key}), 200, 'first grace running');

$r = $a->post("$path/rotate", { grace_seconds => 3600 });
my $g3 = $r->{json};

is(st($g->{key}), 401, 'the key in the first grace is refused at once');
is(st($g2->{key}), 200, 'the newest previous key is in grace');
is(st($g3->{key}), 200, 'the new key works');
is($t->redis('EXISTS', 'apikey:{' . hash_of($g->{key}) . '}'), 0,
   'its secret is deleted');

$r = $a->post("$path/rotate", { grace_seconds => 0 });
is(st($g2->{key}), 401, 'grace_seconds 0 ends the grace too');
is(st($g3->{key}), 401, 'and the rotated-out key is refused');
is(st($r->{json}{key}), 200, 'only the newest key works');

###############################################################################
# grace never past the key's own expiry

my $e = $a->create('acme', name => 'expiring', expires_in => 120);
$r = $a->post("orgs/acme/keys/$e->{id}/rotate", { grace_seconds => 604800 });
is($r->{json}{previous_key_expires_at}, $e->{expires_at},
   'grace ends at expires_at');
is($r->{json}{expires_at}, $e->{expires_at}, 'expiry stays');

###############################################################################
# the bucket goes with the key

my $b = $a->create('acme', name => 'bucket',
                   rate_limit => { rate => '1r/m', burst => 1 });
is(st($b->{key}), 200, 'the one token is taken');
is(st($b->{key}), 429, 'the bucket is empty');
$r = $a->post("orgs/acme/keys/$b->{id}/rotate", undef);
is(st($r->{json}{key}), 429, 'rotation does not refill it');

###############################################################################
# refused

for my $c ([-1, 'negative'], [604801, 'over a week'], ['5', 'a string'],
           [1.5, 'a fraction'], [undef, 'null'])
{
    is_admin_problem($a->post("orgs/acme/keys/$e->{id}/rotate",
                              { grace_seconds => $c->[0] }),
                     400, 'invalid_field', "grace_seconds $c->[1]");
}

is_admin_problem($a->post("orgs/acme/keys/$e->{id}/rotate",
                          { grace => 5 }),
                 400, 'unknown_field', 'an unknown field');
is_admin_problem($a->post('orgs/acme/keys/k_nope/rotate', undef), 404,
                 'key_not_found', 'an unknown id');
is_admin_problem($a->post("orgs/beta/keys/$e->{id}/rotate", undef), 404,
                 'key_not_found', 'another org');

$t->log_contains_no($_->{key}, 'rotated keys') for $n, $g, $g2, $g3;
$t->error_log_clean;

done_testing;

###############################################################################

sub hash_of { $t->key_hash($_[0]) }

sub epoch {
    my ($s) = @_;
    my ($y, $mo, $d, $h, $mi, $se) =
        ($s // '') =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)Z$/ or return 0;
    require Time::Local;
    return Time::Local::timegm($se, $mi, $h, $d, $mo - 1, $y);
}
