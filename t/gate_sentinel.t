#!/usr/bin/perl

# apikey_redis sentinel:NAME: a real primary, a replica and three
# redis-sentinels on loopback.  The workers find the primary through the
# Sentinels, wait for a replica after a revocation, move to the new
# primary after a failover (apikey_redis_up moving with them), and never
# use the old primary when it comes back with stale data.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Path qw(make_path);
use Test::More;
use Time::HiRes qw(sleep time);

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;

my $sentinel_bin = ApiKey::Test::which('redis-sentinel')
    or plan(skip_all => 'redis-sentinel is not installed');

my $dir = $t->dir;

# the primary keeps an append-only file, so that it comes back after the
# failover with the data it had: the stale primary to be avoided

$t->run_redis(args => ['--appendonly', 'yes']);

my $p1 = $t->redis_port;
my $p2 = $t->port('replica');
my @sp = map { $t->port("sentinel$_") } 1 .. 3;

sub spawn_server {
    my ($name, @cmd) = @_;
    my $pid = $t->_spawn("$dir/$name.log", @cmd);
    $t->{children}{$pid} = 1;
    return $pid;
}

# one command to the Redis or Sentinel at a port; undef if it fails

sub at {
    my ($port, @cmd) = @_;
    my $r = bless { redis_port => $port, dir => $dir }, 'ApiKey::Test';
    my $v = eval { $r->redis(@cmd) };
    $r->_redis_close;
    return $v;
}

# cut the module's connections to a Redis, and only those: the Sentinels'
# links (named sentinel-...) and the replication link stay, else the
# Sentinels could take the primary for down and fail over again

sub kill_module_clients {
    my ($port) = @_;
    my $list = at($port, 'CLIENT', 'LIST', 'TYPE', 'normal') // '';
    my $n = 0;

    for (split /\n/, $list) {
        my ($id) = /\bid=(\d+)/ or next;
        next if /\bname=sentinel-/ || /\bcmd=client\|list\b/;
        $n += at($port, 'CLIENT', 'KILL', 'ID', $id) // 0;
    }

    return $n;
}

sub primary_port {
    my $a = at($sp[0], 'SENTINEL', 'get-master-addr-by-name', 'mymaster');
    return ref $a ? $a->[1] : 0;
}

make_path("$dir/replica");
spawn_server('replica', 'redis-server', '--port', $p2, '--bind', '127.0.0.1',
             '--save', '', '--appendonly', 'no', '--dir', "$dir/replica",
             '--replicaof', '127.0.0.1', $p1, '--logfile', '');

ok(wait_for(10, sub { (at($p2, 'INFO', 'replication') // '')
                      =~ /master_link_status:up/ }),
   'the replica follows the primary');

for my $i (0 .. 2) {
    make_path("$dir/s$i");
    open my $fh, '>', "$dir/s$i/sentinel.conf" or die $!;
    print $fh "port $sp[$i]\nbind 127.0.0.1\ndir $dir/s$i\n"
              . "sentinel monitor mymaster 127.0.0.1 $p1 2\n"
              . "sentinel down-after-milliseconds mymaster 1000\n"
              . "sentinel failover-timeout mymaster 5000\n";
    close $fh;

    spawn_server("sentinel$i", $sentinel_bin, "$dir/s$i/sentinel.conf");
}

ok(wait_for(20, sub {
       !grep {
           my $s = at($_, 'SENTINEL', 'sentinels', 'mymaster');
           my $r = at($_, 'SENTINEL', 'replicas', 'mymaster');
           !(ref $s && @$s == 2 && ref $r && @$r == 1);
       } @sp
   }), 'the three Sentinels know the replica and each other');

is(primary_port(), $p1, 'the Sentinels name the primary');

my $tok = write_tokens($t, ops => '*');
my $tokens = ApiKey::Admin::tokens_file($t);
my $sentinels = join ' ', map { "sentinel=127.0.0.1:$_" } @sp;

my $conf = <<"EOF";

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis sentinel:mymaster $sentinels;
    apikey_redis_timeout 200ms;
    apikey_admin_tokens $tokens;

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        location / {
            apikey on;
            add_header X-Status \$apikey_status always;
            empty_gif;
        }

        location /admin/ {
            apikey_admin;
        }

        location = /metrics {
            apikey_metrics;
            allow 127.0.0.1;
            deny all;
        }
    }
}

EOF

###############################################################################
# configuration errors

(my $bad = $conf) =~ s/ sentinel=[^;]*;/;/;
my ($rc, $out) = $t->nginx_test($bad);
isnt($rc, 0, 'sentinel:NAME without sentinel= is refused');
like($out, qr/needs at least one "sentinel=host:port"/, 'with a clear message');

($bad = $conf) =~ s/sentinel:mymaster/127.0.0.1:$p1/;
($rc, $out) = $t->nginx_test($bad);
isnt($rc, 0, 'sentinel= with a plain address is refused');
like($out, qr/needs "sentinel:NAME"/, 'with a clear message');

###############################################################################

$t->run_nginx($conf);

my $port = $t->port(1);
my @workers = $t->worker_pids;
my $admin = ApiKey::Admin->new($t, $tok->{ops});

sub status { (http_get($port, '/', { 'X-API-Key' => $_[0] }))[0] // 0 }

my $k = $admin->create('acme', name => 'sentinel', rate_limit => undef);
my $r = $admin->create('acme', name => 'to revoke', rate_limit => undef);

ok(wait_for(10, sub { status($k->{key}) == 200 }),
   'a key passes, checked on the primary the Sentinels named');
is(status($t->raw_key), 401, 'an unknown key is 401');
like($t->error_log, qr/redis primary of "mymaster" is 127\.0\.0\.1:$p1/,
     'the primary it learnt is logged');

# a revocation waits for the replica: WAIT on the primary

my $waits = sub {
    ((at($p1, 'INFO', 'commandstats') // '') =~ /cmdstat_wait:calls=(\d+)/)[0]
        // 0
};
my $w0 = $waits->();
is($admin->post("orgs/acme/keys/$r->{id}/revoke", undef)->{status}, 200,
   'revoke');
is($waits->() - $w0, 1, 'the revocation was followed by one WAIT');
is(status($r->{key}), 401, 'the revoked key is refused');

# a change no replica confirms (the replica stopped): its outcome is not
# known, for a failover now would lose it; a retry with the same
# Idempotency-Key tells that it stands

my $q = $admin->create('acme', name => 'unconfirmed', rate_limit => undef);
my $replica_pid = (grep { /redis-server/ } map {
    my $pid = $_;
    open my $fh, '<', "/proc/$pid/cmdline" or ();
    my $cmd = join ' ', split /\0/, <$fh> // '';
    $cmd =~ /--port $p2\b/ ? ($pid) : ();
} keys %{$t->{children}})[0];

SKIP: {
    skip 'the replica\'s pid is not known', 4 unless $replica_pid;

    kill 'STOP', $replica_pid;
    my $u = $admin->post("orgs/acme/keys/$q->{id}/revoke", undef,
                         headers => { 'Idempotency-Key' => 'unconfirmed-1' });
    kill 'CONT', $replica_pid;

    is($u->{status}, 503, 'no replica confirmed the revocation: 503');
    like($u->{body}, qr/"outcome_unknown"/, 'outcome_unknown');

    my $again;
    ok(wait_for(10, sub {
           $again = $admin->post("orgs/acme/keys/$q->{id}/revoke", undef,
                        headers => { 'Idempotency-Key' => 'unconfirmed-1' });
           $again->{status} == 200;
       }), 'the retry with the Idempotency-Key: 200')
        or diag($again->{status} . ' ' . $again->{body});
    is(status($q->{key}), 401, 'the key is revoked');
}

###############################################################################
# the primary dies: the Sentinels promote the replica

kill 'KILL', $t->redis_pid;
waitpid($t->redis_pid, 0);
my $killed = time;

# requests all along: the window of 503s is the failover's own, and a
# little more (a Sentinel's down-after of 500 ms flapped on a busy machine:
# it took the new primary for down and failed back to the stale one)

my ($promoted, $served, $last503);

wait_for(30, sub {
    my $st = status($k->{key});
    my $now = time;

    $last503 = $now if $st == 503;
    $promoted //= $now if primary_port() == $p2;
    $served = $now if $promoted && $st == 200;

    return $served;
});

ok($promoted, 'the Sentinels promoted the replica')
    or diag('after ' . (time - $killed) . ' s');
ok($served, 'gatekept requests are served again');
ok($served && $promoted && $served - $promoted <= 1,
   'within 1 s of the promotion')
    or diag(sprintf 'promotion %.2f s after the kill, served %.2f s after it',
                    ($promoted // 0) - $killed,
                    ($served // 0) - ($promoted // 0));
ok(!$last503 || $last503 - $killed <= $promoted - $killed + 1,
   sprintf('503s only until the promotion and a second more (%.2f s, '
           . 'promoted after %.2f s)', ($last503 // $killed) - $killed,
           ($promoted // 0) - $killed));

is_deeply([$t->worker_pids], \@workers, 'no worker died');

# apikey_redis_up follows the move: the new primary's node is up, and the
# old one is off the list (each connection that moved took it off)

my $up = '';
ok(wait_for(10, sub {
       my $body = (http_get($port, '/metrics'))[2] // '';
       $up = join ' ', sort $body
                 =~ /^(apikey_redis_up\{connection="gate",.*)$/mg;
       $up eq "apikey_redis_up{connection=\"gate\",node=\"127.0.0.1:$p2\"} 1";
   }), 'apikey_redis_up: the gate on the new primary, the old one gone')
    or diag($up);

# revoke on the new primary, then bring the old one back with its stale
# data, where the key is still valid

# the admin connection may still be finding the new primary: 503 until
# then.  The new primary is alone (its ROLE shows no replica: the old one
# is dead), but the deployment had a replica: the revocation is not
# confirmed, for the new primary failing too would lose it

my ($revoked, $first);
ok(wait_for(5, sub {
       my $r = $admin->post("orgs/acme/keys/$k->{id}/revoke", undef);
       $first //= $r if $r->{body} =~ /outcome_unknown|already_revoked/
                        || $r->{status} == 200;
       $revoked = $r->{status} == 400 && $r->{body} =~ /already_revoked/;
   }), 'revoke on the new primary');
is($first && $first->{status}, 503,
   'the revocation on a primary alone is 503')
    or diag($first ? "$first->{status} $first->{body}" : 'no answer');
like($first && $first->{body}, qr/"outcome_unknown"/, 'outcome_unknown');
is(status($k->{key}), 401, 'refused at once');

$t->start_redis;

my $role = at($p1, 'ROLE');
my $g = at($p1, 'HGET', 'apikey:{' . $t->key_hash($k->{key}) . '}', 'g');
ok(ref $role && $role->[0] eq 'master' && ($g // '') =~ /^0 /,
   'the old primary is back as a primary, with the key not revoked')
    or diag('role ' . (ref $role ? $role->[0] : '?') . ', g ' . ($g // '-'));

my (%seen, $kills, $cut);
my $until = time + 4;

while (time < $until) {
    $seen{status($k->{key})}++;

    # reconnects, to make the workers ask the Sentinels again

    if (!$kills++ || rand() < 0.1) {
        $cut += kill_module_clients($p2);
    }

    sleep 0.02;
}

ok($cut, 'the workers\' connections to the new primary were cut')
    or diag('none found to cut');

ok(!$seen{200}, 'the old primary is never used: the revoked key stays refused')
    or diag(join ', ', map { "$_: $seen{$_}" } keys %seen);
ok($seen{401}, 'it is refused as revoked');

$t->error_log_clean;

done_testing;
