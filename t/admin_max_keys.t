#!/usr/bin/perl

# apikey_max_keys counts active keys per organization and holds under
# concurrency: 50 parallel creates against a limit of 10 make exactly 10
# keys.  Revoked, expired and deleted keys free their slot; restore and an
# expiry change that brings a key back need one.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use POSIX ();

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
# 50 at once

my $go = $t->dir . '/go';
my @pids;

for my $i (1 .. 50) {
    push @pids, $t->spawn(sub {
        wait_for(30, sub { -e $go }) or die "no start signal\n";
        my $r = $a->post('orgs/race/keys', { name => "racer $i" });
        POSIX::_exit($r->{status} == 201 ? 0
                     : $r->{status} == 400
                       && ($r->{json}{code} // '') eq 'key_limit_reached' ? 1
                     : 2);
    });
}

open my $fh, '>', $go or die;
close $fh;

my @rc = $t->wait_children(@pids);

is(scalar(grep { $_ == 0 } @rc), 10, '50 parallel creates: 10 created');
is(scalar(grep { $_ == 1 } @rc), 40, '40 key_limit_reached');
is(scalar(grep { $_ > 1 || $_ < 0 } @rc), 0, 'nothing else');

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

$t->error_log_clean;

done_testing;
