#!/usr/bin/perl

# Reloads that add or remove each of the module's http-level directives
# (apikey_metrics, apikey_cache, apikey_rate_lease, a zone size): the new
# workers answer every request, none crashes, and what each directive
# serves works after it came back.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;

my $t = ApiKey::Test->new;
$t->run_redis;

my $base = <<'EOF';

%%TEST_GLOBALS%%
load_module %%MODULE%%;
worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%REDIS%%;
    %%HTTP%%

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

        %%METRICS%%
    }
}

EOF

my $metrics = "location = /metrics { apikey_metrics; allow 127.0.0.1; "
              . "deny all; }";

my %variant = (
    plain   => { http => '', metrics => '' },
    metrics => { http => '', metrics => $metrics },
    cache   => { http => 'apikey_cache zone=replica:1m;', metrics => '' },
    cache2m => { http => 'apikey_cache zone=replica:2m;', metrics => '' },
    lease   => { http => "apikey_cache zone=replica:1m;\n"
                         . "    apikey_rate_lease 100ms;", metrics => '' },
    all     => { http => "apikey_cache zone=replica:1m;\n"
                         . "    apikey_rate_lease 100ms;",
                 metrics => $metrics },
);

sub conf {
    my ($v) = @_;
    (my $c = $base) =~ s/%%HTTP%%/$variant{$v}{http}/;
    $c =~ s/%%METRICS%%/$variant{$v}{metrics}/;
    return $c;
}

my $port = $t->port(1);
my $k = $t->create_key(rate => '1000r/s', burst => 1000);

# every step adds or removes one thing; both directions for each

my @steps = qw(metrics plain cache plain lease plain cache lease cache
               cache2m cache all plain all metrics lease metrics);

$t->run_nginx(conf('plain'));

my $prev = 'plain';

for my $v (@steps) {
    $t->write_config(conf($v));

    ok($t->reload_nginx, "reload $prev -> $v replaces the workers");

    # each worker in turn: several connections, so both get some

    my %n;
    for (1 .. 20) {
        my ($st) = http_get($port, '/', { 'X-API-Key' => $k->{key} },
                            timeout => 5);
        $n{$st // 'none'}++;
    }

    is_deeply(\%n, { 200 => 20 }, "$prev -> $v: every request answered 200")
        or diag(explain \%n);

    if ($variant{$v}{metrics}) {
        my ($st, undef, $body) = http_get($port, '/metrics');
        ok($st == 200 && $body =~ /^apikey_checks_total\{status="ok"\} \d+/m,
           "$prev -> $v: the metrics are served");
    }

    $prev = $v;
}

unlike($t->error_log, qr/exited on signal/, 'no worker crashed');

$t->stop_nginx;
$t->log_contains_no($k->{key});
$t->error_log_clean;

done_testing;
