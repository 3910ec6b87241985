#!/usr/bin/perl

# A dropped connection to a live Redis fails no request: the worker makes
# a new connection at once and sends the checks that were in flight again.
# CLIENT KILL of the module's connections while wrk drives a gatekept
# location must leave wrk with no non-2xx response.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);

use ApiKey::Test;

my $t = ApiKey::Test->new;
my $wrk = ApiKey::Test::which('wrk') or plan(skip_all => 'wrk is not installed');
$t->run_redis;

$t->run_nginx(<<'EOF');

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%REDIS%%;

    # what is tested is that the checks in flight are sent again, not how
    # fast: under the sanitizers on a busy machine a reconnect and the
    # re-sent checks took over the default 100 ms (7 of 47,917 requests)
    apikey_redis_timeout 1s;

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        access_log off;

        location / {
            apikey on;
            empty_gif;
        }
    }
}

EOF

my $port = $t->port(1);
my $k = $t->create_key(rate => undef);

is((http_get($port, '/', { 'X-API-Key' => $k->{key} }))[0], 200,
   'the key passes');

sub received {
    return ($t->redis('INFO', 'stats') =~ /total_connections_received:(\d+)/)[0];
}

# wrk in the background for 4 s; CLIENT KILL every 250 ms meanwhile

sub hammer_and_kill {
    my ($kills) = @_;

    my $out = "$t->{dir}/wrk.txt";
    my $pid = $t->spawn(sub {
        open STDOUT, '>', $out or die "$out: $!";
        exec $wrk, '-t', 2, '-c', 16, '-d', '4s',
             '-H', "X-API-Key: $k->{key}", "http://127.0.0.1:$port/";
    });

    sleep 0.5;

    my $killed = 0;

    for (1 .. $kills) {
        $killed += $t->redis('CLIENT', 'KILL', 'TYPE', 'normal',
                             'SKIPME', 'yes');
        sleep 0.25;
    }

    $t->wait_children($pid);

    open my $fh, '<', $out or die "$out: $!";
    local $/;
    my $report = <$fh>;

    return ($report, $killed);
}

my $before = received();
my ($report, $killed) = hammer_and_kill(10);

my ($requests) = $report =~ /(\d+) requests in/;
my ($non2xx) = $report =~ /Non-2xx or 3xx responses: (\d+)/;
my ($errors) = $report =~ /Socket errors: (.*)/;

ok($requests && $requests > 1000, 'wrk ran') or diag($report);
ok($killed >= 10, "the module's connections were killed ($killed)");
ok(received() - $before >= 10, 'and the workers reconnected each time');
is($non2xx // 0, 0, 'no request failed through the kills')
    or diag($report);
ok(!defined $errors, 'no socket errors') or diag($errors);

like($t->error_log, qr/\[warn\].*redis gate connection to \S+ lost: .*reconnecting/,
     'the drops are logged as warnings');
unlike($t->error_log, qr/\[error\].*redis/,
       'no redis error: nothing failed');

$t->error_log_clean;

done_testing;
