#!/usr/bin/perl

# Idempotency-Key on every POST (SPEC section 5): a retry with the same
# key, token and body within 24 h gets the first outcome again (status and
# body, a create's or rotate's raw key included) and changes nothing; the
# same key with another body is 422 idempotency_key_reused; parallel
# requests with one key make one change.  A change whose reply was lost
# (Redis frozen past apikey_admin_timeout, or the connection reset after
# the command reached Redis) answers 503 outcome_unknown, and the retry
# tells what happened.  Nothing in Redis or the logs shows a raw key or an
# Idempotency-Key.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*', other => '*');

my $one = <<'EOF';

        location /one/ {
            apikey_admin;
            apikey_max_keys 1;
        }
EOF

$t->run_nginx(admin_config($t, server => $one));

my $port = $t->port(1);
my $adm = ApiKey::Admin->new($t, $tok->{ops});
my $oth = ApiKey::Admin->new($t, $tok->{other});

my (@raw, @idem);

sub post {
    my ($a, $path, $body, $key) = @_;
    push @idem, $key if defined $key && length $key > 8;
    return $a->post($path, $body,
                    defined $key ? (headers => { 'Idempotency-Key' => $key })
                                 : ());
}

sub keys_named {
    my ($org, $name) = @_;
    my $l = $adm->get("orgs/$org/keys?per_page=100")->{json}{data} || [];
    return scalar grep { $_->{name} eq $name } @$l;
}

###############################################################################
# the header

for my $bad (['', 'empty'], ['x' x 256, '256 characters'],
             ['a b', 'a space'], ["caf\xc3\xa9", 'not ASCII'],
             ["a\tb", 'a tab'])
{
    is_admin_problem(post($adm, 'orgs/acme/keys', { name => 'bad idem' },
                          $bad->[0]),
                     400, 'invalid_idempotency_key',
                     "Idempotency-Key $bad->[1]");
}

my $r = $adm->request('POST', 'orgs/acme/keys', body => { name => 'bad idem' },
                      raw_headers => "Idempotency-Key: a\r\n"
                                     . "Idempotency-Key: b\r\n");
is_admin_problem($r, 400, 'invalid_idempotency_key', 'given twice');
is(keys_named('acme', 'bad idem'), 0, 'none of those made a key');

is(post($adm, 'orgs/acme/keys', { name => 'long idem' }, '~' x 255)
   ->{status}, 201, '255 visible characters are fine');

###############################################################################
# create

my $k1 = 'create-' . int(rand 1e12);
my $first = post($adm, 'orgs/acme/keys', { name => 'idem create',
                                           scopes => ['read'] }, $k1);

is($first->{status}, 201, 'a create with an Idempotency-Key');
push @raw, $first->{json}{key};

my $again = post($adm, 'orgs/acme/keys', { name => 'idem create',
                                           scopes => ['read'] }, $k1);

is($again->{status}, 201, 'its retry: 201 again');
is($again->{body}, $first->{body}, 'the same body, raw key included');
is($again->{headers}{location}, $first->{headers}{location},
   'the same Location');
is(keys_named('acme', 'idem create'), 1, 'one key made');
is((gate($port, $first->{json}{key}))[0], 200, 'and its raw key works');

# the body as JSON, not as bytes

$again = post($adm, 'orgs/acme/keys',
              '{ "scopes" : [ "read" ],  "name" : "idem create" }', $k1);
is($again->{body}, $first->{body}, 'members in another order: a retry');

# another body, another route: refused

is_admin_problem(post($adm, 'orgs/acme/keys', { name => 'something else' },
                      $k1),
                 422, 'idempotency_key_reused', 'the same key, another body');
is_admin_problem(post($adm, "orgs/acme/keys/$first->{json}{id}/revoke",
                      undef, $k1),
                 422, 'idempotency_key_reused', 'the same key, another route');
is(keys_named('acme', 'something else'), 0, 'nothing made');
is($adm->get("orgs/acme/keys/$first->{json}{id}")->{json}{status}, 'active',
   'nothing revoked');

# another token: its own keys

my $o = post($oth, 'orgs/acme/keys', { name => 'idem create',
                                       scopes => ['read'] }, $k1);
is($o->{status}, 201, 'the same key from another token');
isnt($o->{json}{id}, $first->{json}{id}, 'is another request');
push @raw, $o->{json}{key};

###############################################################################
# revoke and restore: the retry changes nothing

my $k = $adm->create('acme', name => 'idem revoke');
push @raw, $k->{key};

my $k2 = 'revoke-' . int(rand 1e12);
my $rv = post($adm, "orgs/acme/keys/$k->{id}/revoke", undef, $k2);
is($rv->{status}, 200, 'a revoke with an Idempotency-Key');

is($adm->post("orgs/acme/keys/$k->{id}/restore", undef)->{status}, 200,
   'restored without one');

my $rv2 = post($adm, "orgs/acme/keys/$k->{id}/revoke", undef, $k2);
is($rv2->{status}, 200, 'the revoke retried: 200');
is($rv2->{body}, $rv->{body}, 'with the first answer');
is($adm->get("orgs/acme/keys/$k->{id}")->{json}{status}, 'active',
   'and the key stays restored: the retry changed nothing');
is((gate($port, $k->{key}))[0], 200, 'and passes');

###############################################################################
# rotate

my $k3 = 'rotate-' . int(rand 1e12);
my $rot = post($adm, "orgs/acme/keys/$k->{id}/rotate", {}, $k3);
is($rot->{status}, 200, 'a rotate with an Idempotency-Key');
push @raw, $rot->{json}{key};

my $rot2 = post($adm, "orgs/acme/keys/$k->{id}/rotate", {}, $k3);
is($rot2->{body}, $rot->{body}, 'its retry: the same new raw key');
is((gate($port, $rot->{json}{key}))[0], 200, 'which works');
is((gate($port, $k->{key}))[0], 401, 'the old one does not');
is($adm->get("orgs/acme/events?per_page=100")->{json}{data}[0]{action},
   'rotated', 'one rotation logged');
is(scalar(grep { $_->{action} eq 'rotated' }
          @{$adm->get('orgs/acme/events?per_page=100')->{json}{data}}),
   1, 'and only one');

###############################################################################
# an error outcome is the first outcome too

my $solo = ApiKey::Admin->new($t, $tok->{ops}, base => '/one/');
my $first_solo = $solo->create('solo', name => 'the one');
push @raw, $first_solo->{key};

my $k4 = 'limit-' . int(rand 1e12);
is_admin_problem(post($solo, 'orgs/solo/keys', { name => 'second' }, $k4),
                 400, 'key_limit_reached', 'refused: the organization is full');

$solo->delete("orgs/solo/keys/$first_solo->{id}");

is_admin_problem(post($solo, 'orgs/solo/keys', { name => 'second' }, $k4),
                 400, 'key_limit_reached',
                 'retried once a slot is free: still the first outcome');
is(post($solo, 'orgs/solo/keys', { name => 'second' }, $k4 . 'x')->{status},
   201, 'a new key makes it');

###############################################################################
# parallel requests with one key: one change, one answer

my $k5 = 'parallel-' . int(rand 1e12);
my %answers;

$answers{$_}++ for parallel($t, 8, sub {
    my $x = post($adm, 'orgs/par/keys', { name => 'at once' }, $k5);
    return "$x->{status} $x->{body}";
}, together => 1);

my ($answer) = keys %answers;
is(scalar keys %answers, 1, '8 parallel creates with one key: one answer')
    or diag(join "\n", keys %answers);
like($answer, qr/^201 /, 'a 201');
is(keys_named('par', 'at once'), 1, 'one key made');
push @raw, $1 if $answer =~ /"key":"([^"]+)"/;

###############################################################################
# what Redis keeps

my @recs = grep { /^apikey:idem:[0-9a-f]{64}$/ } @{$t->redis('KEYS', '*')};
ok(@recs >= 6, 'a record per Idempotency-Key') or diag("@recs");

my $ttl = $t->redis('TTL', $recs[0]);
ok($ttl > 86000 && $ttl <= 86400, 'kept for 24 hours') or diag($ttl);

my $dump = $t->redis_dump;

for my $s (@raw, @idem) {
    ok(index($dump, $s) < 0, 'not in Redis: ' . substr($s, 0, 12) . '...');
}

###############################################################################
# lost outcomes: Redis frozen past the admin timeout

# one worker, whose admin connection is made first: a connection still in
# its handshake is held to apikey_redis_timeout

$t->write_config(admin_config($t, server => $one, workers => 1,
                              http => 'apikey_admin_timeout 1s;'));
$t->reload_nginx or die 'reload failed';

is($adm->get('orgs/lost/keys')->{status}, 200, 'the admin connection is made');

my $k6 = 'frozen-' . int(rand 1e12);

$t->freeze_redis;
$r = post($adm, 'orgs/lost/keys', { name => 'lost in a freeze' }, $k6);
$t->thaw_redis;

is_admin_problem($r, 503, 'outcome_unknown', 'Redis frozen: outcome unknown');

ok(wait_for(10, sub { keys_named('lost', 'lost in a freeze') == 1 }),
   'the create ran once Redis thawed');

$r = post($adm, 'orgs/lost/keys', { name => 'lost in a freeze' }, $k6);
is($r->{status}, 201, 'the retry tells: created');
is((gate($port, $r->{json}{key}))[0], 200, 'with the raw key nobody got');
is(keys_named('lost', 'lost in a freeze'), 1, 'still one key');
push @raw, $r->{json}{key};

###############################################################################
# lost outcomes: the connection reset after the command reached Redis

my $pport = $t->port('proxy');
my $armed = $t->dir . '/armed';

reset_proxy($t, port => $pport, file => $armed);

(my $via = admin_config($t, server => $one, workers => 1))
    =~ s/%%REDIS%%/127.0.0.1:$pport/;
$t->write_config($via);
$t->reload_nginx or die 'reload failed';

is($adm->get('orgs/lost/keys')->{status}, 200, 'nginx talks through the proxy');

for my $case (['create', 'orgs/lost/keys', { name => 'lost in a reset' }],
              ['rotate', "orgs/acme/keys/$k->{id}/rotate", {}])
{
    my $key = "reset-$case->[0]-" . int(rand 1e12);

    open my $fh, '>', $armed or die;
    close $fh;
    $r = post($adm, $case->[1], $case->[2], $key);
    unlink $armed;

    is_admin_problem($r, 503, 'outcome_unknown',
                     "$case->[0]: reset after sending: outcome unknown");

    $r = post($adm, $case->[1], $case->[2], $key);
    is($r->{status}, $case->[0] eq 'create' ? 201 : 200,
       "$case->[0]: the retry tells it was made") or diag($r->{body});
    is((gate($port, $r->{json}{key}))[0], 200, "with a raw key that works");
    push @raw, $r->{json}{key} // ();
}

is(keys_named('lost', 'lost in a reset'), 1, 'one key made');
is(scalar(grep { $_->{action} eq 'rotated' }
          @{$adm->get('orgs/acme/events?per_page=100')->{json}{data}}),
   2, 'one more rotation');

like($t->error_log, qr/outcome of create lost\/k_\w+ is unknown/,
     'the unknown outcome is logged, with the key id');

for my $s (@raw, @idem) {
    $t->log_contains_no($s);
}

$t->error_log_clean;

done_testing;
