#!/usr/bin/perl

# Redis down, frozen or back: the fail modes, failing fast once the
# connection is known broken, reconnecting without a reload, a worker that
# never blocks on Redis, clients that leave while Redis is pending, and
# the apikey_redis parameters (unix socket, password, user, db, namespace).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep time);

use ApiKey::Test;

# generous, so that a busy machine does not blur "at once" and "after the
# timeout"
my $timeout = 1;

my $t = ApiKey::Test->new;
$t->run_redis;

my $conf = <<'EOF';

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%REDIS%%;
    apikey_redis_timeout %%TIMEOUT%%;

    log_format times '$uri $status $request_time';

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        access_log access.log times;
        add_header X-Status $apikey_status always;

        location /gated {
            apikey on;
            proxy_pass http://127.0.0.1:%%PORT_1%%/plain;
        }

        location /open {
            apikey on;
            apikey_fail_mode open;
            proxy_pass http://127.0.0.1:%%PORT_1%%/plain;
        }

        location /plain {
            return 200 "plain\n";
        }
    }
}

EOF

(my $main = $conf) =~ s/%%TIMEOUT%%/${timeout}s/;
$t->run_nginx($main);

my $port = $t->port(1);

sub gated {
    my ($key, $path) = @_;
    my $start = time;
    my @r = http_get($port, $path // '/gated', { 'X-API-Key' => $key });
    return (@r, time - $start);
}

sub median { my @s = sort { $a <=> $b } @_; $s[@s / 2] }

# a request written and left pending on the returned socket
sub send_gated {
    my ($key) = @_;
    my $s = IO::Socket::INET->new("127.0.0.1:$port") or die "connect: $!";
    print $s "GET /gated HTTP/1.0\r\nHost: localhost\r\nX-API-Key: $key\r\n\r\n";
    return $s;
}

my $k = $t->create_key(rate => undef);
my @workers = $t->worker_pids;

is((gated($k->{key}))[0], 200, 'Redis up: key passes');

###############################################################################

$t->stop_redis;

my ($st, $h, $body, $took) = gated($k->{key});
is_problem([$st, $h, $body], 503, 'auth_unavailable',
           'Redis stopped: 503 auth_unavailable');
is($h->{'x-status'}, 'unavailable', 'Redis stopped: $apikey_status unavailable');
is($h->{'retry-after'}, 1, 'Redis stopped: 503 carries Retry-After: 1');

my @took = map { (gated($k->{key}))[3] } 1 .. 10;
note("fail fast: @took");
ok(median(@took) < $timeout / 2,
   'Redis stopped: requests fail at once, not after the timeout')
    or diag("took: @took");

($st, $h) = gated($k->{key}, '/open');
is($st, 200, 'fail_mode open: Redis stopped, request passes');
is($h->{'x-status'}, 'unverified', 'fail_mode open: $apikey_status unverified');

is_problem([http_get($port, '/open')], 401, 'missing_api_key',
           'fail_mode open: a missing key is still refused');
is_problem([http_get($port, '/open', { 'X-API-Key' => 'ak_nonsense' })], 401,
           'invalid_api_key', 'fail_mode open: a malformed key is still refused');

$t->start_redis;
my $back = time;
$k = $t->create_key(rate => undef);

my $passed = wait_for(5, sub { (gated($k->{key}))[0] == 200 });
my $after = time - $back;
ok($passed, 'Redis back on the same port: key passes again');
note("back after $after s");
ok($after < 1, 'Redis back: passes within 1 s') or diag("took $after s");
is_deeply([$t->worker_pids], \@workers, 'without a reload or a new worker');

###############################################################################

# Redis answers, but not as expected

$t->redis('SCRIPT', 'FLUSH');
my $evals = $t->redis_commandstats->{eval} // 0;
is((gated($k->{key}))[0], 200, 'script cache flushed: key passes (NOSCRIPT)');
is($t->redis_commandstats->{eval}, $evals + 1, 'by sending the script once');
is((gated($k->{key}))[0], 200, 'next request passes');
is($t->redis_commandstats->{eval}, $evals + 1, 'without sending it again');

my $broken = $t->create_key;
$t->redis('DEL', "apikey:{$broken->{hash}}");
$t->redis('SET', "apikey:{$broken->{hash}}", 'not a hash');
is_problem([gated($broken->{key})], 503, 'auth_unavailable',
           'script error reply (-ERR WRONGTYPE): 503 auth_unavailable');
is((gated($k->{key}))[0], 200, 'after an error reply, a good key passes');

###############################################################################

$t->freeze_redis;

my $s = send_gated($k->{key});
ok(wait_for(5, sub { $t->redis_unread > 0 }),
   'frozen Redis: the request\'s command is pending in Redis');

my $t0 = time;
my @plain = http_get($port, '/plain');
my $plain_took = time - $t0;
is($plain[0], 200, 'frozen Redis: an ungated location answers');
ok($plain_took < $timeout / 2,
   'frozen Redis: the worker does not block on Redis')
    or diag("plain took $plain_took s");

is_problem([http_request($port, '', socket => $s)], 503, 'auth_unavailable',
           'frozen Redis: 503 on timeout');

my $gated_took = ($t->read_file('access.log') =~ m{^/gated 503 (\S+)$}mg)[-1]
    // 0;
note("plain $plain_took s, gated $gated_took s");
ok($gated_took >= $timeout * 0.9 && $gated_took < $timeout * 3,
   'frozen Redis: 503 comes after about apikey_redis_timeout')
    or diag("gated took $gated_took s");

$t->thaw_redis;

ok(wait_for(5, sub { (gated($k->{key}))[0] == 200 }),
   'Redis thawed: key passes again');
is_deeply([$t->worker_pids], \@workers, 'no worker died through all of this');

###############################################################################

# Clients that leave while their Redis reply is pending.  A long timeout,
# so that the client is surely gone first; one instance only, so that the
# bytes pending in Redis are its own.

$t->stop_nginx;
(my $patient = $conf) =~ s/%%TIMEOUT%%/60s/;
$t->run_nginx($patient, name => 'patient');
$port = $t->port(1);
@workers = $t->worker_pids('patient');

ok(wait_for(5, sub { (gated($k->{key}))[0] == 200 }),
   'timeout 60s: key passes');

sub gone { scalar(() = $t->error_log('patient') =~ /prematurely closed/g) }

for my $end ('thaw', 'stop') {
    my $gone = gone();

    $t->freeze_redis;
    $s = send_gated($k->{key});
    wait_for(5, sub { $t->redis_unread > 0 });
    close $s;

    ok(wait_for(10, sub { gone() > $gone }),
       "frozen Redis: nginx notices the client left ($end)");

    if ($end eq 'thaw') {
        # the reply comes for a request that is gone
        $t->thaw_redis;

    } else {
        # the connection breaks with the gone request's command queued
        $t->stop_redis;
        is((gated($k->{key}))[0], 503, 'Redis stopped: 503');
        $t->start_redis;
        $k = $t->create_key(rate => undef);
    }

    ok(wait_for(5, sub { (gated($k->{key}))[0] == 200 }),
       "client gone, Redis $end: the next request passes");
}

is_deeply([$t->worker_pids('patient')], \@workers,
          'no worker died through all of this');
$t->stop_nginx('patient');

###############################################################################

# unix socket; password, ACL user, db and namespace on a second Redis

my $conf2 = <<'EOF';

%%TEST_GLOBALS%%
load_module %%MODULE%%;
worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%ADDRESS%%;

    server {
        listen 127.0.0.1:%%PORT_3%%;
        server_name localhost;

        location / {
            apikey on;
            proxy_pass http://127.0.0.1:%%PORT_3%%/plain;
        }

        location /plain {
            return 200 "plain\n";
        }
    }
}

EOF

sub conf_for { (my $c = $conf2) =~ s/%%ADDRESS%%/$_[0]/; $c }

$t->run_nginx(conf_for('unix:%%REDIS_SOCK%%'), name => 'unix');
$k = $t->create_key;
ok(wait_for(5, sub {
    (http_get($t->port(3), '/', { 'X-API-Key' => $k->{key} }))[0] == 200
}), 'apikey_redis unix:/path works');
$t->stop_nginx('unix');

my $t2 = ApiKey::Test->new;
$t2->run_redis(password => 'sekret', db => 3);
$t2->redis('ACL', 'SETUSER', 'gate', 'on', '>gatepw', '~*', '&*', '+@all');

my $ns = $t2->create_key(namespace => 'myns:');
my $plain_ns = $t2->create_key;

$t2->redis('SELECT', 0);
my $db0 = $t2->create_key(namespace => 'myns:');
$t2->redis('SELECT', 3);

sub via {
    my ($key) = @_;
    return (http_get($t2->port(3), '/', { 'X-API-Key' => $key->{key} }))[0];
}

$t2->run_nginx(conf_for('%%REDIS%% db=3 password=sekret namespace=myns:'),
               name => 'auth');
is(via($ns), 200, 'password=, db= and namespace=: key passes');
is(via($plain_ns), 401, 'namespace=: a key of another namespace fails');
is(via($db0), 401, 'db=: a key of another db fails');
$t2->stop_nginx('auth');

$t2->run_nginx(conf_for('%%REDIS%% user=gate password=gatepw db=3 '
                        . 'namespace=myns:'), name => 'acl');
is(via($ns), 200, 'user= and password=: ACL user works');
$t2->stop_nginx('acl');

$t2->run_nginx(conf_for('%%REDIS%% password=wrong-pw-Zq9 db=3 namespace=myns:'),
               name => 'badpass');
is(via($ns), 503, 'wrong password: 503');
like($t2->error_log('badpass'), qr/AUTH.*failed/,
     'wrong password: the error log says AUTH failed');
unlike($t2->error_log('badpass'), qr/wrong-pw-Zq9|sekret/,
       'the password is not logged');
$t2->stop_nginx('badpass');

$t->log_contains_no($_->{key}) for $k, $broken;
$t2->log_contains_no($ns->{key});
$t->error_log_clean;
$t2->error_log_clean;

done_testing;
