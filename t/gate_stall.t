#!/usr/bin/perl

# A stall is not an outage: when Redis stops answering for longer than
# apikey_redis_timeout, the requests that waited that long get the fail
# mode's answer, but the connection is kept (it is not broken, only
# slow), so that the first request after the stall passes at once; the
# calls that went out are answered by Redis when it resumes.  Only a
# silence of a second or more with calls waiting gives the connection up.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);

use ApiKey::Test;

my $t = ApiKey::Test->new;
$t->run_redis;
$t->run_nginx(<<'EOF');

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%REDIS%%;

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        location / {
            apikey on;
            proxy_pass http://127.0.0.1:%%PORT_1%%/echo;
        }

        location /echo {
            return 200 "ok\n";
        }
    }
}

EOF

my $port = $t->port(1);
my $k = $t->create_key(rate => undef);

sub get { (http_get($port, '/', { 'X-API-Key' => $k->{key} }, @_))[0] }

# the ids of the nginx worker's connections (not the test's own)

sub nginx_clients {
    my $me = $t->redis('CLIENT', 'ID');
    return join ',', sort { $a <=> $b }
           grep { $_ != $me }
           map { /\bid=(\d+)/ ? $1 : () } split /\n/, $t->redis('CLIENT',
                                                               'LIST');
}

is(get(), 200, 'a key passes');
my $before = nginx_clients();
ok($before, "the worker is connected ($before)");

for my $stall (0.3, 0.6) {

    # a request in the stall times out, and the stall ends

    $t->freeze_redis;
    my $start = time;
    my $st = get(timeout => 5);
    my $took = time - $start;
    sleep($stall - $took) if $took < $stall;
    $t->thaw_redis;

    is($st, 503, "a ${stall} s stall: the request that waited got 503");
    ok($took < 0.5, sprintf('after the timeout, not the stall (%.3f s)',
                            $took));

    is(get(), 200, "the stall over: the next request passes at once");
    is(nginx_clients(), $before, 'on the same connection');
}

unlike($t->error_log, qr/redis gate connection to \S+ failed/,
       'no connection failed');
like($t->error_log, qr/\[warn\].*a call to \S+ timed out/,
     'a timed out call is logged as a warning');

$t->stop_nginx;
$t->error_log_clean;

done_testing;
