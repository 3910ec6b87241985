package ApiKey::HTTP;

# The tests' HTTP client: one request per connection, raw, so that tests
# can send duplicate headers, and the check of an RFC 9457 problem
# answer.  ApiKey::Test exports these too.
#
#   my ($status, $headers, $body) = http_get($port, '/', { 'X-API-Key' => $k });
#   is_problem([$status, $headers, $body], 401, 'invalid_api_key', 'refused');

use strict;
use warnings;

use Exporter qw(import);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time);

our @EXPORT = qw(http_get http_request is_problem);

use ApiKey::Test::Util qw($WAIT);

# HTTP client: one request per connection, raw, so that tests can send
# duplicate headers.  Returns (status, {lowercase name => value, or array
# ref of values when repeated}, body); status is undef on timeout or a
# broken connection.  http_request($port, $raw, socket => $s) reads the
# answer to a request already written on $s.

sub http_get {
    my ($port, $path, $headers, %opt) = @_;

    my $req = "GET $path HTTP/1.0\r\nHost: localhost\r\n";

    for my $name (sort keys %{$headers || {}}) {
        my $v = $headers->{$name} // next;
        $req .= "$name: $_\r\n" for ref $v ? @$v : ($v);
    }

    return http_request($port, "$req\r\n", %opt);
}


sub http_request {
    my ($port, $req, %opt) = @_;

    my $timeout = $opt{timeout} // $WAIT;
    my $s = $opt{socket} || IO::Socket::INET->new(
                PeerAddr => "127.0.0.1:$port", Timeout => $timeout)
        or return (undef, {}, "connect: $!");

    syswrite($s, $req) if length $req;

    my $sel = IO::Select->new($s);
    my $deadline = time + $timeout;
    my $resp = '';

    while (1) {
        my $left = $deadline - time;
        return (undef, {}, "timeout after ${timeout}s: $resp")
            if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($s, $resp, 65536, length $resp);
        last unless $n;
    }

    close $s;

    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    my ($status_line, @lines) = split /\r\n/, $head // '';
    my ($status) = ($status_line // '') =~ m{^HTTP/\d\.\d (\d{3})};
    my %h;

    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $k = lc $k;
        $h{$k} = exists $h{$k} ? [ref $h{$k} ? @{$h{$k}} : $h{$k}, $v] : $v;
    }

    return ($status, \%h, $body // '');
}



my %title = (401 => 'Unauthorized', 403 => 'Forbidden',
             429 => 'Too Many Requests', 503 => 'Service Unavailable');

# One subtest: an RFC 9457 problem response with this status and code.

sub is_problem {
    my ($resp, $status, $code, $name) = @_;
    my ($st, $h, $body) = @$resp;

    subtest $name => sub {
        is($st, $status, "status $status");
        like($h->{'content-type'} // '', qr{^application/problem\+json(;|$)},
             'Content-Type application/problem+json');

        my $j = eval { JSON::PP->new->decode($body) };
        ok(ref $j eq 'HASH', 'body is a JSON object') or diag($body);
        $j = {} unless ref $j eq 'HASH';

        is($j->{type}, 'about:blank', 'type about:blank');
        is($j->{title}, $title{$status}, 'title');
        is($j->{status}, $status, 'status field');
        like($body, qr/"status"\s*:\s*$status\s*[,}]/,
             'status field is a number');
        is($j->{code}, $code, "code $code");
        like($j->{detail} // '', qr/\S/, 'a detail');
    };
}


1;
