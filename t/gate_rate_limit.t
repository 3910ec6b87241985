#!/usr/bin/perl

# The token bucket holds across workers and nginx instances: a 5r/s burst-5
# key hammered for 4 s lets 5 + 5 * 4 = 25 requests through (give or take
# two), whether one instance with two workers or two instances share it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);

use ApiKey::Test;

my $t = ApiKey::Test->new;
$t->run_redis;

my $conf = <<'EOF';

%%TEST_GLOBALS%%
load_module %%MODULE%%;
worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%REDIS%%;

    log_format workers '$pid $status';

    server {
        listen 127.0.0.1:%%PORT_LISTEN%% reuseport;
        server_name localhost;

        access_log access.log workers;

        location /gated {
            apikey on;
            proxy_pass http://127.0.0.1:%%PORT_LISTEN%%/echo;
        }

        location /echo {
            return 200 "ok\n";
        }
    }
}

EOF

(my $conf_a = $conf) =~ s/%%PORT_LISTEN%%/%%PORT_1%%/g;
(my $conf_b = $conf) =~ s/%%PORT_LISTEN%%/%%PORT_2%%/g;

$t->run_nginx($conf_a, name => 'a');
$t->run_nginx($conf_b, name => 'b');

# Four clients start together and send requests back to back until the
# time is up; returns { status => count } over all of them.

sub hammer {
    my ($key, $seconds, @ports) = @_;

    return $t->hammer(key => $key, path => '/gated', seconds => $seconds,
                      start => time + 1,
                      ports => [ map { $ports[$_ % @ports] } 0 .. 3 ]);
}

sub within {
    my ($got, $want, $slack, $name) = @_;
    ok(abs(($got // 0) - $want) <= $slack, $name)
        or diag("got " . ($got // 0) . ", want $want +- $slack");
}

###############################################################################

my $k = $t->create_key(rate => '5r/s', burst => 5);
my $n = hammer($k->{key}, 4, $t->port(1));

within($n->{200}, 25, 2, 'one instance, 2 workers: 5 + 5 * 4 s pass');
ok($n->{429} && $n->{429} > 25, 'the rest is 429');
is_deeply([sort grep { $_ != 200 && $_ != 429 } keys %$n], [],
          'nothing but 200 and 429');

my %served = map { (split ' ')[0] => 1 }
             grep { / 200$/ } split /\n/, $t->read_file('access.log', 'a');
is(scalar keys %served, 2, 'both workers let requests through');

$k = $t->create_key(rate => '5r/s', burst => 5);
$n = hammer($k->{key}, 4, $t->port(1), $t->port(2));

within($n->{200}, 25, 2, 'two instances share the bucket: 25 pass in all');

my %by_instance = map {
    my $name = $_;
    ($name => scalar grep { / 200$/ }
              split /\n/, $t->read_file('access.log', $name))
} qw(a b);
ok($by_instance{b} > 0, 'the second instance let requests through too');

$k = $t->create_key(rate => '60r/m', burst => 2);
$n = hammer($k->{key}, 4, $t->port(1), $t->port(2));

within($n->{200}, 6, 2, '60r/m burst 2: 2 + 1 * 4 s pass');

$t->log_contains_no($k->{key}, 'rate limited key');
$t->error_log_clean;

done_testing;
