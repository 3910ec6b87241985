#!/usr/bin/perl

# What a Sentinel says is checked and escaped: a port past 65535 is no
# port (65536 + P used to become port P), a host that is not an address
# is not resolved in the worker, and the text it sent is logged escaped,
# so that a name with a newline forges no log line.  A Sentinel that
# answers properly is followed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;
use ApiKey::FakeRedis;

my $t = ApiKey::Test->new;
$t->run_redis;

my $real = $t->redis_port;

sub bulk { '$' . length($_[0]) . "\r\n$_[0]\r\n" }

sub master {
    my ($ip, $port) = @_;
    return "*6\r\n" . join '', map { bulk($_) }
           'ip', $ip, 'port', $port, 'config-epoch', '1';
}

my $fake = ApiKey::FakeRedis->start($t, sub {
    my ($cmd) = @_;

    return "*3\r\n" . bulk('subscribe') . bulk('+switch-master') . ":1\r\n"
        if uc $cmd eq 'SUBSCRIBE';

    return "-ERR unknown\r\n" unless uc $cmd eq 'SENTINEL';

    open my $fh, '<', $t->dir . '/answer' or return "-ERR no answer\r\n";
    local $/;
    my ($ip, $port) = split /\t/, <$fh>;
    return master($ip, $port);
});

sub answer {
    open my $fh, '>', $t->dir . '/answer' or die "answer: $!";
    print $fh join "\t", @_;
    close $fh;
}

answer('127.0.0.1', 65536 + $real);

$t->run_nginx(<<"EOF2");

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis sentinel:main sentinel=127.0.0.1:${\ $fake->port };

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        location / {
            apikey on;
            proxy_pass http://127.0.0.1:%%PORT_1%%/echo;
        }

        location /echo {
            return 200 "ok\\n";
        }
    }
}

EOF2

my $port = $t->port(1);
my $k = $t->create_key(rate => undef);

sub gate { (http_get($port, '/', { 'X-API-Key' => $k->{key} }))[0] }

is(gate(), 503, 'port 65536 + P: no primary');
ok(wait_for(5, sub {
       $t->error_log =~ /did not name the primary of "main": not an address and port/
   }), 'the answer is refused as no port');

answer("10.0.0.1\n2026/12/07 00:00:00 [notice] 1#1: forged", $real);
ok(wait_for(5, sub { gate() == 503 && $t->error_log =~ /forged/ }),
   'a name with a newline: no primary');
unlike($t->error_log, qr/^2026\/12\/07 00:00:00 \[notice\]/m,
       'it forges no log line');
like($t->error_log, qr/"10\.0\.0\.1\\x0a2026/, 'it is logged escaped');

answer('redis.invalid', $real);
ok(wait_for(5, sub { gate() == 503 && $t->error_log =~ /redis\.invalid/ }),
   'a host name: no primary, nothing resolved');

answer('127.0.0.1', $real);
ok(wait_for(5, sub { gate() == 200 }), 'a proper answer is followed');

$t->stop_nginx;
$t->error_log_clean;

done_testing;
