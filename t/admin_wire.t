#!/usr/bin/perl

# The admin API on the wire with real clients' habits: a refusal never
# sends "100 Continue" to an "Expect: 100-continue" request (an accepted
# one does), and the Location of a new key is built from the location's
# own path and the key id, never from the request line.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Select;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(time);

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*', acme => 'acme');

# a second server keeps slashes as sent: its paths may start with "//"

$t->run_nginx(admin_config($t, server => <<'EOF', http => <<'EOF'));
        location ~ ^/v(\d+)/admin/ {
            apikey_admin;
        }
EOF
    server {
        listen 127.0.0.1:%%PORT_2%%;
        merge_slashes off;

        location ~ /z/admin/ {
            apikey_admin;
        }
    }
EOF

my $port = $t->port(1);
my $auth = "Authorization: Bearer $tok->{ops}\r\n";

# sends the head of a request with "Expect: 100-continue" and a body it
# does not send; returns the first status line that comes back (bounded)

sub first_line {
    my ($head, $type, $length) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => 5)
        or die "connect: $!";

    syswrite($s, $head . "Expect: 100-continue\r\n"
                 . 'Content-Length: ' . ($length // 17) . "\r\n"
                 . 'Content-Type: ' . ($type // 'application/json') . "\r\n"
                 . "Connection: close\r\n\r\n");

    my $sel = IO::Select->new($s);
    my $deadline = time + 5;
    my $buf = '';

    while ($buf !~ /\r\n/ && time < $deadline) {
        last unless $sel->can_read($deadline - time);
        last unless sysread($s, $buf, 4096, length $buf);
    }

    my ($line) = $buf =~ /^([^\r\n]*)/;
    return ($line // '', $s);
}

###############################################################################
# Expect: 100-continue

for my $case (
    ['no token', "POST /admin/orgs/acme/keys HTTP/1.1\r\nHost: x\r\n", 401],
    ['wrong org', "POST /admin/orgs/other/keys HTTP/1.1\r\nHost: x\r\n"
                  . "Authorization: Bearer $tok->{acme}\r\n", 403],
    ['no route', "POST /admin/orgs/acme/nothing HTTP/1.1\r\nHost: x\r\n"
                 . $auth, 404],
    ['wrong method', "PUT /admin/orgs/acme/keys HTTP/1.1\r\nHost: x\r\n"
                     . $auth, 405],
    ['unknown key id', "PATCH /admin/orgs/acme/keys/sk_live HTTP/1.1\r\n"
                       . "Host: x\r\n" . $auth, 404],
    ['bad query', "GET /admin/orgs/acme/keys?page=0 HTTP/1.1\r\n"
                  . "Host: x\r\n" . $auth, 400],
    ['unknown query', "GET /admin/orgs/acme/events?search=x HTTP/1.1\r\n"
                      . "Host: x\r\n" . $auth, 400])
{
    my ($what, $head, $status) = @$case;
    my ($line) = first_line($head);

    like($line, qr{^HTTP/1\.1 $status }, "$what: $status at once, "
                                          . 'no 100 Continue first');
}

# 413 and 415 are decided from the headers alone

for my $case (['too large', 'application/json', 70000, 413],
              ['not JSON', 'text/plain', 17, 415])
{
    my ($what, $type, $length, $status) = @$case;
    my ($line) = first_line("POST /admin/orgs/acme/keys HTTP/1.1\r\n"
                            . "Host: x\r\n$auth", $type, $length);

    like($line, qr{^HTTP/1\.1 $status }, "$what: $status at once, "
                                           . 'no 100 Continue first');
}

# accepted: 100 Continue, then the body, then 201

my ($line, $s) = first_line("POST /admin/orgs/acme/keys HTTP/1.1\r\n"
                            . "Host: x\r\n$auth");
is($line, 'HTTP/1.1 100 Continue', 'an accepted create gets 100 Continue');

syswrite($s, '{"name":"expect"}');
my ($st) = http_request($port, '', socket => $s);
is($st, 201, 'and 201 once the body is sent');

###############################################################################
# Location

sub create_at {
    my ($target, $at) = @_;

    my $body = '{"name":"where"}';
    my ($st, $h) = http_request($at // $port,
        "POST $target HTTP/1.1\r\nHost: x\r\n$auth"
        . "Content-Type: application/json\r\n"
        . 'Content-Length: ' . length($body) . "\r\nConnection: close\r\n\r\n"
        . $body);

    return ($st, $h->{location} // '');
}

my ($loc);

# a prefix location's own path, whatever the request line held; a regex
# location has no path of its own: the request's, up to "/orgs/", with
# one leading slash and escaped

for my $case (
    ['/admin/orgs/acme/keys', '/admin/',
     'the location, orgs/<org>/keys/<id>'],
    ['//evil.example/%2e%2e/admin/orgs/acme/keys', '/admin/',
     '//evil.example/%2e%2e/ names no other host'],
    ['/admin/orgs/acme/keys#frag', '/admin/',
     'a "#" in the request line stays out'],
    ['/admin//orgs/acme/keys?x=1', '/admin/',
     'slashes and query of the request line stay out'],
    ['/admin%2Forgs%2Facme/keys', '/admin/',
     'percent-encoded slashes stay out'],
    ['/%2F%2Fevil.example/%2e%2e/admin/orgs/acme/keys', '/admin/',
     'an encoded //evil.example names no other host'],
    ['/v1/admin/orgs/acme/keys', '/v1/admin/',
     'regex location: the path up to /orgs/'],
    ['/v1/admin/a%23b%3Fc/orgs/acme/keys', '/v1/admin/a%23b%3Fc/',
     'regex location: "#" and "?" in the path stay escaped'])
{
    my ($target, $path, $what) = @$case;

    ($st, $loc) = create_at($target);
    is($st, 201, "created through $target");
    like($loc, qr{^\Q$path\Eorgs/acme/keys/k_[0-9A-Za-z]{22}$},
         "Location: $what") or diag($loc);
}

# slashes kept as sent: the path up to "/orgs/" may start with "//", a
# "%2F" or a backslash, which clients resolve as another host

my $kept = $t->port(2);

for my $case (['//evil.example/z/admin/', 'slashes'],
              ['/%2Fevil.example/z/admin/', 'an encoded slash'],
              ['/%5Cevil.example/z/admin/', 'an encoded backslash'],
              ['/\\evil.example/z/admin/', 'a backslash'])
{
    my ($base, $what) = @$case;

    ($st, $loc) = create_at("${base}orgs/acme/keys", $kept);
    is($st, 201, "created under a path starting with $what");
    like($loc, qr{^/(?![/\\])[^#?\\]*/z/admin/orgs/acme/keys/k_\w{22}$},
         "$what: Location starts with one \"/\" and no backslash")
        or diag($loc);
}

$t->error_log_clean;

done_testing;
