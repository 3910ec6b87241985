#!/usr/bin/perl

# Checks a worker starts in one pass of its event loop share one Redis
# script call, and each request still gets its own answer: the worker is
# stopped, requests are written on fresh connections, and the worker is let
# go, so that it accepts them all (multi_accept) and reads them in one pass.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Select;
use IO::Socket::INET;
use Test::More;

use ApiKey::Test;

my $t = ApiKey::Test->new;
$t->run_redis;
$t->run_nginx(<<'EOF');

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 1;

events {
    multi_accept on;
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%REDIS%%;

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        apikey on;

        location / {
            empty_gif;
        }

        location /preview {
            apikey_environment preview;
            empty_gif;
        }

        location /write {
            apikey_scope content:write;
            empty_gif;
        }

        location /open {
            apikey_fail_mode open;
            add_header X-Status $apikey_status always;
            empty_gif;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_2%% http2;
        server_name localhost;

        apikey on;

        location / {
            empty_gif;
        }
    }
}

EOF

my $port = $t->port(1);
my ($worker) = $t->worker_pids;

ok($worker, 'one worker') or BAIL_OUT('no worker');

# Writes each [path, key] on its own connection while the worker is
# stopped, then lets it go; returns the responses in the same order, and
# how many script calls Redis ran for them.

sub together {
    my @reqs = @_;
    my @socks;

    my $calls = $t->redis_commandstats->{evalsha} // 0;

    kill 'STOP', $worker;

    for my $r (@reqs) {
        my ($path, $key) = @$r;
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port")
            or do { kill 'CONT', $worker; die "connect: $!\n" };
        syswrite($s, "GET $path HTTP/1.0\r\nHost: localhost\r\n"
                     . "X-API-Key: $key\r\n\r\n");
        push @socks, $s;
    }

    kill 'CONT', $worker;

    my @resp = map { [http_request($port, '', socket => $_)] } @socks;

    return (\@resp, ($t->redis_commandstats->{evalsha} // 0) - $calls);
}

sub code_of {
    my ($resp) = @_;
    return $resp->[0] == 200 ? 'ok' : ($resp->[2] =~ /"code":"(\w+)"/)[0];
}

###############################################################################

my $ok = $t->create_key(rate => '100r/s', burst => 100);
my $revoked = $t->create_key(revoked => 1);
my $expired = $t->create_key(expires_at => time - 60);
my $reader = $t->create_key(scopes => ['content:read']);
my $writer = $t->create_key(scopes => ['content:write'], env => 'preview');
my $unknown = $t->raw_key;

my @cases = (
    ['/', $ok->{key}, 'ok'],
    ['/', $unknown, 'invalid_api_key'],
    ['/', $revoked->{key}, 'revoked_api_key'],
    ['/', $expired->{key}, 'expired_api_key'],
    ['/preview', $reader->{key}, 'environment_mismatch'],
    ['/write', $reader->{key}, 'insufficient_scope'],
    ['/write', $writer->{key}, 'ok'],
    ['/preview', $writer->{key}, 'ok'],
    ['/preview', $ok->{key}, 'environment_mismatch'],
    ['/', $ok->{key}, 'ok'],
);

my ($resp, $calls) = together(map { [$_->[0], $_->[1]] } @cases);

is($calls, 1, scalar(@cases) . ' checks in one pass: one script call');

for my $i (0 .. $#cases) {
    my ($path, undef, $want) = @{$cases[$i]};
    is(code_of($resp->[$i]), $want, "check $i ($path): $want");
}

is($resp->[0][1]{'ratelimit-remaining'} + $resp->[9][1]{'ratelimit-remaining'},
   99 + 98, 'two checks of one key in a call take a token each');

###############################################################################

# one key, burst 3, no refill to speak of: of 8 checks in one call, the
# first 3 pass

my $tight = $t->create_key(rate => '1r/m', burst => 3);

($resp, $calls) = together(map { ['/', $tight->{key}] } 1 .. 8);

is($calls, 1, '8 checks of one key: one script call');
is(scalar(grep { $_->[0] == 200 } @$resp), 3, 'burst 3: 3 pass');
is(scalar(grep { code_of($_) eq 'rate_limited' } @$resp), 5,
   'the other 5 are rate_limited');
ok(!grep({ !defined $_->[1]{'retry-after'} } grep { $_->[0] == 429 } @$resp),
   'each 429 carries Retry-After');

###############################################################################

# more checks than one call carries are split over calls; a slow refill
# (one token a minute), so that no token comes back between the calls
# and each check's remaining count is its own

my $many = $t->create_key(rate => '1r/m', burst => 1000);

($resp, $calls) = together(map { ['/', $many->{key}] } 1 .. 100);

is(scalar(grep { $_->[0] == 200 } @$resp), 100, '100 checks in one pass pass');
is($calls, 2, 'in two script calls of at most 64 checks');

my %left = map { $_->[1]{'ratelimit-remaining'} => 1 } @$resp;
is(scalar(keys %left), 100, 'each took its own token');

###############################################################################

# Redis refusing writes (here: no replica for min-replicas-to-write) fails
# the checks that would write, each on its own; the others in the same call
# keep their answers, also where the fail mode is open

$t->redis('CONFIG', 'SET', 'min-replicas-to-write', '1');

($resp, $calls) = together(['/open', $revoked->{key}], ['/open', $unknown],
                           ['/open', $ok->{key}], ['/', $expired->{key}],
                           ['/', $ok->{key}], ['/preview', $reader->{key}]);

$t->redis('CONFIG', 'SET', 'min-replicas-to-write', '0');

is($calls, 1, 'writes refused: 6 checks in one script call');
is(code_of($resp->[0]), 'revoked_api_key', 'a revoked key is still 401');
is(code_of($resp->[1]), 'invalid_api_key', 'an unknown key is still 401');
is($resp->[2][0], 200, 'a good key on a fail-open location passes');
is($resp->[2][1]{'x-status'}, 'unverified', 'as unverified');
is(code_of($resp->[3]), 'expired_api_key', 'an expired key is still 401');
is(code_of($resp->[4]), 'auth_unavailable',
   'a good key on a fail-closed location: 503');
is(code_of($resp->[5]), 'environment_mismatch',
   'a key of another environment is still 403');
like($t->error_log, qr/redis gate script failed: "?NOREPLICAS/,
     'the refusal is logged');

is(code_of((together(['/', $ok->{key}]))[0][0]), 'ok',
   'writes allowed again: the good key passes');

###############################################################################

# A check whose request goes away while it is queued is left out of the
# call: over HTTP/2 a client opens streams 1 and 3 and resets stream 1 in
# the same read, so that stream 1's check is queued and detached before the
# pass ends.  Stream 3 is answered; stream 1's key is never used.

sub h2_frame {
    my ($type, $flags, $stream, $payload) = @_;
    my $len = length $payload;
    return pack('CnCCN', $len >> 16, $len & 0xffff, $type, $flags, $stream)
           . $payload;
}

# HPACK: GET, https, /, :authority localhost, x-api-key as literals
sub h2_get {
    my ($key) = @_;
    return "\x82\x87\x84\x01\x09localhost"
           . "\x00\x09x-api-key" . chr(length $key) . $key;
}

# reads frames until a HEADERS frame on the stream; returns its first
# header byte (0x88 is :status 200), or undef after a bounded wait
sub h2_status {
    my ($s, $stream) = @_;
    my $sel = IO::Select->new($s);
    my $deadline = time + 10;
    my $buf = '';

    while ((my $left = $deadline - time) > 0) {
        last unless $sel->can_read($left);
        last unless sysread($s, $buf, 65536, length $buf);

        my $p = 0;

        while ($p + 9 <= length $buf) {
            my ($l1, $l2, $type, undef, $id) =
                unpack('CnCCN', substr($buf, $p, 9));
            my $len = ($l1 << 16) | $l2;
            last if $p + 9 + $len > length $buf;
            return ord substr($buf, $p + 9, 1)
                if $type == 1 && ($id & 0x7fffffff) == $stream;
            $p += 9 + $len;
        }
    }

    return undef;
}

my $gone = $t->create_key(rate => undef);
my $kept = $t->create_key(rate => undef);

for my $round (1 .. 3) {
    kill 'STOP', $worker;

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $t->port(2))
        or do { kill 'CONT', $worker; die "connect: $!\n" };

    syswrite($s, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                 . h2_frame(4, 0, 0, '')
                 . h2_frame(1, 0x5, 1, h2_get($gone->{key}))
                 . h2_frame(1, 0x5, 3, h2_get($kept->{key}))
                 . h2_frame(3, 0, 1, pack('N', 8)));

    kill 'CONT', $worker;

    is(h2_status($s, 3), 0x88, "HTTP/2 round $round: stream 3 gets 200");
    close $s;
}

ok(defined $t->last_used($kept), 'the answered stream\'s key was used');
ok(!defined $t->last_used($gone), 'the reset stream\'s check never ran');
is(kill(0, $worker), 1, 'the worker lives');

###############################################################################

$t->log_contains_no($_->{key}) for $ok, $revoked, $expired, $reader, $writer;
$t->error_log_clean;

done_testing;
