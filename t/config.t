#!/usr/bin/perl

# nginx -t with the module: bad configurations fail with a message that
# says what is wrong; a good one passes (which also proves load_module).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;

my $t = ApiKey::Test->new;

my $template = <<'EOF';

%%TEST_GLOBALS%%
load_module %%MODULE%%;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    %%HTTP%%

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        location / {
            %%LOCATION%%
        }
    }

    %%HTTP_END%%
}

EOF

sub conf {
    my ($http, $location, $http_end) = @_;
    (my $c = $template) =~ s/%%HTTP%%/$http/;
    $c =~ s/%%LOCATION%%/$location/;
    $c =~ s/%%HTTP_END%%/$http_end \/\/ ''/e;
    return $c;
}

my $redis = 'apikey_redis 127.0.0.1:6379;';

my @bad = (
    ['apikey on without apikey_redis', '', 'apikey on;',
     qr/"apikey" requires "apikey_redis"/],
    ['apikey on at http level without apikey_redis', 'apikey on;', '',
     qr/"apikey" requires "apikey_redis"/],
    ['apikey_redis with a bad port', 'apikey_redis 127.0.0.1:notaport;',
     'apikey on;', qr/invalid port in "127\.0\.0\.1:notaport"/],
    ['apikey_redis with port 0', 'apikey_redis 127.0.0.1:0;', 'apikey on;',
     qr/invalid port in "127\.0\.0\.1:0"/],
    ['apikey_redis with an unknown host', 'apikey_redis no.such.host.invalid:6379;',
     'apikey on;', qr/host not found in "no\.such\.host\.invalid:6379"/],
    ['apikey_redis unix: without a path', 'apikey_redis unix:;', 'apikey on;',
     qr/no path in the unix domain socket/],
    ['apikey_redis with an unknown parameter',
     'apikey_redis 127.0.0.1:6379 foo=bar;', 'apikey on;',
     qr/unknown parameter "foo=\.\.\." in "apikey_redis": give db=\.\.\. sentinel=\.\.\. user=\.\.\. password=\.\.\. namespace=\.\.\. sentinel_password=\.\.\./],
    ['apikey_redis with a bad db', 'apikey_redis 127.0.0.1:6379 db=x;',
     'apikey on;', qr/invalid parameter "db=\.\.\."/],
    ['apikey_redis with an empty namespace',
     'apikey_redis 127.0.0.1:6379 namespace=;', 'apikey on;',
     qr/invalid parameter "namespace=\.\.\."/],
    ['apikey_redis with a misspelt password= (never echoed)',
     'apikey_redis 127.0.0.1:6379 pasword=s3cr3t-pw;', 'apikey on;',
     qr/unknown parameter "pasword=\.\.\."(?!.*s3cr3t-pw)/s],
    ['apikey_redis with password= twice (never echoed)',
     'apikey_redis 127.0.0.1:6379 password=s3cr3t-pw password=other-pw;',
     'apikey on;',
     qr/duplicate parameter "password=\.\.\."(?!.*(?:s3cr3t|other)-pw)/s],
    ['apikey_redis user= without password=',
     'apikey_redis 127.0.0.1:6379 user=u;', 'apikey on;',
     qr/"user=" of "apikey_redis" needs "password="/],
    ['duplicate apikey_redis', "$redis\n    apikey_redis 127.0.0.1:6380;",
     'apikey on;', qr/"apikey_redis" directive is duplicate/],
    ['apikey_redis in a location', '', "$redis apikey on;",
     qr/"apikey_redis" directive is not allowed here/],
    ['bad apikey_fail_mode', $redis, 'apikey on; apikey_fail_mode half;',
     qr/invalid value "half": give "closed" or "open"/],
    ['apikey_rate_headers off with others', $redis,
     'apikey on; apikey_rate_headers off draft;',
     qr/"apikey_rate_headers" directive takes "off" alone/],
    ['apikey_rate_headers with a repeat', $redis,
     'apikey on; apikey_rate_headers draft draft;',
     qr/duplicate parameter "draft"/],
    ['apikey_rate_headers with an unknown value', $redis,
     'apikey on; apikey_rate_headers modern;',
     qr/invalid parameter "modern": give "off", or "draft", "legacy" or both/],
    ['apikey_redis_timeout not a time', "$redis apikey_redis_timeout abc;",
     'apikey on;', qr/"apikey_redis_timeout" directive invalid value/],
    ['apikey_redis_timeout 0', "$redis apikey_redis_timeout 0;", 'apikey on;',
     qr/"apikey_redis_timeout" must be more than 0/],
    ['apikey_redis_timeout in a location', $redis,
     'apikey on; apikey_redis_timeout 1s;',
     qr/"apikey_redis_timeout" directive is not allowed here/],
    ['apikey neither on nor off', $redis, 'apikey maybe;',
     qr/it must be "on" or "off"/],
    ['bad apikey_header', $redis, 'apikey on; apikey_header "bad header";',
     qr/invalid header name "bad header"/],
    ['duplicate apikey_header', $redis,
     'apikey on; apikey_header X-A; apikey_header X-B;',
     qr/"apikey_header" directive is duplicate/],
    ['bad apikey_scope', $redis, 'apikey on; apikey_scope "Bad Scope";',
     qr/invalid scope "Bad Scope"/],
    ['empty apikey_environment', $redis, 'apikey on; apikey_environment "";',
     qr/invalid environment name ""/],
);

for my $case (@bad) {
    my ($name, $http, $location, $message) = @$case;

    my ($rc, $out) = $t->nginx_test(conf($http, $location));

    isnt($rc, 0, "nginx -t rejects: $name");
    like($out, qr/\[emerg\] .*$message.* in \S*nginx\.conf:\d+/,
         "with a message naming the problem and the line: $name")
        or diag($out);
}

###############################################################################

my @good = (
    ['every gatekeeper directive',
     'apikey_redis 127.0.0.1:6379 db=3 user=u password=p namespace=x:; '
     . 'apikey_redis_timeout 250ms; apikey_rate_headers legacy;',
     'apikey on; apikey_header X-Key; apikey_bearer on; '
     . 'apikey_environment preview; apikey_scope content:read a.b_c-d; '
     . 'apikey_fail_mode open; apikey_hide_header off; '
     . 'apikey_rate_headers draft legacy;'],
    ['apikey on at http level before apikey_redis',
     'apikey on; apikey_redis 127.0.0.1:6379;', ''],
    ['apikey_redis after the server that uses it', '', 'apikey on;', $redis],
    ['a unix socket', 'apikey_redis unix:%%PREFIX%%/redis.sock;', 'apikey on;'],
    ['an IPv6 address', 'apikey_redis [::1]:6379;', 'apikey on;'],
    ['the module loaded but unused', '', 'apikey off;'],
    ['apikey_rate_headers off', $redis, 'apikey on; apikey_rate_headers off;'],
);

for my $case (@good) {
    my ($name, $http, $location, $http_end) = @$case;

    my ($rc, $out) = $t->nginx_test(conf($http, $location, $http_end));
    is($rc, 0, "nginx -t accepts: $name") or diag($out);
    like($out, qr/test is successful/, "nginx -t says so: $name");
}

done_testing;
