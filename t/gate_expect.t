#!/usr/bin/perl

# Expect: 100-continue at the gatekeeper: every refusal is the first and
# only answer, with no "100 Continue" before it, so that the client
# uploads nothing; an allowed request whose body is read does get
# "100 Continue", then its answer once the body is sent.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Select;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(time);

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

        apikey on;

        location / {
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /preview {
            apikey_environment preview;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }

        location /write {
            apikey_scope content:write;
            proxy_pass http://127.0.0.1:%%PORT_2%%/echo;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_2%%;
        server_name localhost;

        access_log off;

        location /echo {
            return 200 "got $content_length\n";
        }
    }
}

EOF

my $port = $t->port(1);

# Sends a POST announcing a 10-byte body with Expect: 100-continue, and no
# body; returns the socket and what came back until the end of the first
# response head (bounded), or undef if nothing came.

sub expect_post {
    my ($path, $key) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => 5)
        or die "connect: $!";

    syswrite($s, "POST $path HTTP/1.1\r\nHost: localhost\r\n"
                 . "Content-Length: 10\r\nExpect: 100-continue\r\n"
                 . "Connection: close\r\n"
                 . (defined $key ? "X-API-Key: $key\r\n" : '')
                 . "\r\n");

    return ($s, read_head($s));
}

sub read_head {
    my ($s) = @_;

    my $sel = IO::Select->new($s);
    my $deadline = time + 5;
    my $got = '';

    while (index($got, "\r\n\r\n") < 0) {
        my $left = $deadline - time;
        last if $left <= 0 || !$sel->can_read($left);
        last unless sysread($s, $got, 4096, length $got);
    }

    return length $got ? $got : undef;
}

sub first_line { (($_[0] // '') =~ /^([^\r\n]*)/)[0] }

# one refusal: the final status first, never "100 Continue"

sub refused {
    my ($path, $key, $status, $what) = @_;

    my ($s, $head) = expect_post($path, $key);
    close $s;

    like(first_line($head), qr{^HTTP/1\.1 $status },
         "$what: the first line is the final $status")
        or diag(defined $head ? $head : '(nothing in 5 s)');
    unlike($head // '', qr{^HTTP/1\.1 100 }m,
           "$what: no 100 Continue");
}

my $ok = $t->create_key(rate => undef, scopes => ['content:read']);
my $revoked = $t->create_key(revoked => 1);
my $slow = $t->create_key(rate => '1r/m', burst => 1);

refused('/', undef, 401, 'no key');
refused('/', $t->raw_key, 401, 'unknown key');
refused('/', 'not-a-key', 401, 'malformed key');
refused('/', $revoked->{key}, 401, 'revoked key');
refused('/preview', $ok->{key}, 403, 'other environment');
refused('/write', $ok->{key}, 403, 'lacking a scope');

is((http_get($port, '/', { 'X-API-Key' => $slow->{key} }))[0], 200,
   '1r/m burst-1 key: the token is taken');
refused('/', $slow->{key}, 429, 'rate limited');

###############################################################################

# the control: an allowed request whose body is read is invited to send it

my ($s, $head) = expect_post('/', $ok->{key});
like(first_line($head), qr{^HTTP/1\.1 100 Continue$},
     'allowed: 100 Continue first')
    or diag(defined $head ? $head : '(nothing in 5 s)');

syswrite($s, '0123456789');
my ($st, undef, $body) = http_request($port, '', socket => $s, timeout => 5);
is($st, 200, 'allowed: the body sent, then 200');
is($body, "got 10\n", 'allowed: the upstream got the body');

###############################################################################

$t->stop_redis;

refused('/', $ok->{key}, 503, 'Redis stopped');

$t->log_contains_no($_->{key}, 'Expect')
    for $ok, $revoked, $slow;
$t->error_log_clean;

done_testing;
