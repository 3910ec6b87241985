#!/usr/bin/perl

# apikey_max_keys counts active keys per organization and holds under
# concurrency: 50 parallel creates against a limit of 10 make exactly 10
# keys, on a busy machine too (two processes spin meanwhile, and Redis
# stalls for 300 ms as they start: admin calls wait apikey_admin_timeout,
# not the gatekeeper's 100 ms, so none needs a retry).  Through a
# connection that is reset after some of the creates reached Redis,
# clients that retry with their Idempotency-Key still end with exactly 10
# keys made, each raw key received by one client, and 40 refused.
# Revoked, expired and deleted keys free their slot; restore and an
# expiry change that brings a key back need one.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time);

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

$t->run_nginx(admin_config($t, http => 'apikey_max_keys 10;',
                            server => <<'EOF2'));

        location /one/ {
            apikey_admin;
            apikey_max_keys 1;
            apikey_default_ttl 2s;
        }

        location /unlimited/ {
            apikey_admin;
            apikey_max_keys 0;
        }
EOF2

my $a = ApiKey::Admin->new($t, $tok->{ops});
my $port = $t->port(1);

###############################################################################
# 50 at once, on a busy machine, each with its Idempotency-Key: a 503 is
# retried with it (none is expected)

# 50 clients that start together and create a key each in $org through
# $adm, retrying a 503 with the same Idempotency-Key; Redis frozen for
# $stall seconds as they start, if given; returns the final answers,
# "status code key tries"

sub race {
    my ($adm, $org, $stall) = @_;

    $t->freeze_redis if $stall;

    return parallel($t, 50, sub {
        my ($i) = @_;
        my $idem = "race-$org-$i-" . int(rand 1e9);
        my ($r, $tries);

        for (1 .. 20) {
            $tries = $_;
            # under the sanitizers 50 creates in a row take seconds
            $r = $adm->post("orgs/$org/keys", { name => "racer $i" },
                            headers => { 'Idempotency-Key' => $idem },
                            http => { timeout => 60 });
            last unless $r->{status} == 503;
            Time::HiRes::sleep(0.05 * $tries);
        }

        # no status: the client's own error (connect, timeout) after them
        return join ' ', $r->{status}, $r->{json}{code} // '-',
                         $r->{json}{key} // '-', $tries,
                         $r->{status} ? () : substr($r->{body}, 0, 200);
    }, together => 1, started => sub {
        return unless $stall;
        Time::HiRes::sleep($stall);
        $t->thaw_redis;
    });
}


sub spin {
    my ($seconds) = @_;
    return map {
        $t->spawn(sub { my $end = time + $seconds; 1 while time < $end })
    } 1 .. 2;
}

# each worker's admin connection is made on first use, its handshake held
# to apikey_redis_timeout: a burst of reads makes them first

$t->wait_children(map {
    $t->spawn(sub { $a->get('orgs/race/keys') })
} 1 .. 20);

my @spin = spin(4);
my @rc = race($a, 'race', 0.3);
$t->wait_children(@spin);

is(scalar(grep { /^201 / } @rc), 10, '50 parallel creates: 10 created');
is(scalar(grep { /^400 key_limit_reached / } @rc), 40,
   '40 key_limit_reached');
is(scalar(grep { !/^(201|400 key_limit_reached) / } @rc), 0, 'nothing else')
    or diag(join "\n", grep { !/^(201|400 key_limit_reached) / } @rc);
is(scalar(grep { !/ 1$/ } @rc), 0, 'none needed a retry')
    or diag(join "\n", grep { !/ 1$/ } @rc);

my $l = $a->get('orgs/race/keys?per_page=100')->{json};
is($l->{total_count}, 10, 'the org has 10 keys');
is($a->get('orgs/race/events?per_page=100')->{json}{total_count}, 10,
   'and 10 created events');

is_admin_problem($a->post('orgs/race/keys', { name => 'eleventh' }), 400,
                 'key_limit_reached', 'the eleventh key');
is($a->create('other', name => 'x')->{org}, 'other',
   'the limit is per organization');

###############################################################################
# slots come back

my @ids = map { $_->{id} } @{$l->{data}};

$a->post("orgs/race/keys/$ids[0]/revoke", undef);
is($a->post('orgs/race/keys', { name => 'after revoke' })->{status}, 201,
   'a revoked key frees its slot');
is_admin_problem($a->post("orgs/race/keys/$ids[0]/restore", undef), 400,
                 'key_limit_reached', 'restore into a full org');

$a->delete("orgs/race/keys/$ids[1]");
is($a->post('orgs/race/keys', { name => 'after delete' })->{status}, 201,
   'a deleted key frees its slot');

my $u = ApiKey::Admin->new($t, $tok->{ops}, base => '/unlimited/');
is($u->post('orgs/race/keys', { name => 'no limit here' })->{status}, 201,
   'apikey_max_keys 0: no limit');

# expiry: a 2 s key in an org of one

my $one = ApiKey::Admin->new($t, $tok->{ops}, base => '/one/');
my $k = $one->create('solo', name => 'short-lived');

is_admin_problem($one->post('orgs/solo/keys', { name => 'second' }), 400,
                 'key_limit_reached', 'limit of one');

ok(wait_for(10, sub { (gate($port, $k->{key}))[0] == 401 }),
   'the key expires');
my $k2 = $one->create('solo', name => 'second');
ok($k2->{id}, 'an expired key frees its slot');

is_admin_problem($one->patch("orgs/solo/keys/$k->{id}",
                             { expires_at => undef }),
                 400, 'key_limit_reached',
                 'bringing the expired key back needs a slot');
is($one->get("orgs/solo/keys/$k->{id}")->{json}{status}, 'expired',
   'and it stays expired');

$one->post("orgs/solo/keys/$k2->{id}/revoke", undef);
is($one->patch("orgs/solo/keys/$k->{id}", { expires_at => undef })
     ->{json}{status}, 'active', 'once there is a slot it comes back');

###############################################################################
# the same, through a connection reset after every other create reached
# Redis: lost outcomes, recovered by the retries

my $pport = $t->port('proxy');
reset_proxy($t, port => $pport, every => 2,
            match => qr/:org:lossy:events\r\n/);

(my $lossy = admin_config($t, http => 'apikey_max_keys 10;'))
    =~ s/%%REDIS%%/127.0.0.1:$pport/;
$lossy =~ s/%%PORT_1%%/%%PORT_2%%/g;
$t->run_nginx($lossy, name => 'lossy');

my $b = ApiKey::Admin->new($t, $tok->{ops}, port => $t->port(2));

@rc = race($b, 'lossy');

my @made = map { (split / /)[2] } grep { /^201 / } @rc;
my %distinct = map { $_ => 1 } @made;

is(scalar @made, 10, 'lost outcomes: 10 creates answered 201');
is(scalar keys %distinct, 10, 'with 10 distinct raw keys');
is(scalar(grep { /^400 key_limit_reached / } @rc), 40,
   'and 40 key_limit_reached');
is($a->get('orgs/lossy/keys?per_page=100')->{json}{total_count}, 10,
   'the organization has 10 keys');
is(scalar(grep { (gate($port, $_))[0] == 200 } @made), 10,
   'every raw key a client received works');
like($t->error_log('lossy'), qr/outcome of create lossy\/k_\w+ is unknown/,
     'outcomes were lost on the way');

$t->log_contains_no($_) for @made;

$t->error_log_clean;

done_testing;
