#!/usr/bin/perl

# Request bodies of the admin API: 64 KiB at most (413 body_too_large, with
# Content-Length or chunked), application/json only (415), strict JSON
# (400 invalid_json: truncated, trailing data, duplicate keys, invalid
# UTF-8, NUL, deep nesting, not an object), numbers out of range (400
# invalid_field), and bodies nginx kept in a temporary file.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

$t->run_nginx(admin_config($t, admin => 'client_body_buffer_size 1k;'));

my $a = ApiKey::Admin->new($t, $tok->{ops});
my $port = $t->port(1);

sub post { $a->post('orgs/acme/keys', @_) }

###############################################################################
# size

my $json = '{"name":"padded"}';
my $max = $json . (' ' x (65536 - length $json));

is(length $max, 65536, 'a body of exactly 64 KiB');
is(post($max)->{status}, 201, 'is accepted (read from a temporary file)');

is_admin_problem(post($max . ' '), 413, 'body_too_large', '64 KiB + 1');
is_admin_problem(post('x' x 200000), 413, 'body_too_large', '200 kB');
is_admin_problem($a->patch('orgs/acme/keys/k_' . ('x' x 22), $max . ' '), 413,
                 'body_too_large', 'PATCH of 64 KiB + 1');

is_admin_problem(chunked($max . ' '), 413, 'body_too_large',
                 'chunked 64 KiB + 1');

my $r = chunked('{"name":"chunked"}');
is($r->{status}, 201, 'a small chunked body') or diag($r->{body});

###############################################################################
# content type

for my $type ('text/plain', 'application/x-www-form-urlencoded',
              'application/jsonx', 'application/json-patch+json', 'json')
{
    is_admin_problem(post('{"name":"x"}', type => $type), 415,
                     'unsupported_media_type', "Content-Type: $type");
}

is_admin_problem(post('{"name":"x"}', type => undef), 415,
                 'unsupported_media_type', 'no Content-Type');

for my $type ('application/json; charset=utf-8', 'APPLICATION/JSON',
              'Application/Json;charset=UTF-8', 'application/json ')
{
    is(post('{"name":"x"}', type => $type)->{status}, 201,
       "Content-Type: $type");
}

is_admin_problem($a->post('orgs/acme/keys/k_' . ('x' x 22) . '/revoke', '{}',
                          type => 'text/plain'),
                 415, 'unsupported_media_type', 'on revoke too');

###############################################################################
# malformed JSON

my @invalid = (
    ['{"name":"x"', 'truncated'],
    ['{"name":', 'truncated after a colon'],
    ['{"name":"x"} x', 'trailing data'],
    ['{"name":"x"}{}', 'two values'],
    ["{'name':'x'}", 'single quotes'],
    ['{name:"x"}', 'unquoted key'],
    ['{"name":"x",}', 'trailing comma'],
    ['{"name":"a","name":"b"}', 'a duplicate key'],
    ['{"name":"x","rate_limit":{"rate":"1r/s","rate":"2r/s"}}',
     'a duplicate key inside'],
    [qq({"name":"\xff"}), 'invalid UTF-8'],
    [qq({"name":"\xc0\xaf"}), 'overlong UTF-8'],
    [qq({"name":"\xed\xa0\x80"}), 'an encoded surrogate'],
    [qq({"na\xffme":"x"}), 'invalid UTF-8 in a key'],
    ['{"name":"a\u0000b"}', 'NUL'],
    ['{"name":"\ud800"}', 'a lone surrogate escape'],
    ['{"name":"x",' . ('"a":[' x 1) . ('[' x 5000) . (']' x 5001) . '}',
     'nesting 5000 deep'],
    ['[' x 30000, 'an opening bracket flood'],
    ['[]', 'an array'],
    ['"name"', 'a string'],
    ['null', 'null'],
    ['42', 'a number'],
    ['{"name":"x"', 'no closing brace'],
    ["\xef\xbb\xbf{\"name\":\"x\"}", 'a byte order mark'],
    ['{"name":NaN}', 'NaN'],
    ['{"name":"x","expires_in":0x10}', 'hex number'],
    ['{"name":"x","expires_in":0600}', 'leading zero'],
);

for my $c (@invalid) {
    is_admin_problem(post($c->[0]), 400, 'invalid_json',
                     "invalid_json: $c->[1]");
}

###############################################################################
# numbers

for my $c (['99999999999999999999999', 'a huge integer'],
           ['-99999999999999999999999', 'a huge negative integer'],
           ['1e400', 'a huge real'],
           ['-1e400', 'a huge negative real'])
{
    is_admin_problem(post(qq({"name":"x","expires_in":$c->[0]})), 400,
                     'invalid_field', "invalid_field: $c->[1]");
}

for my $c (['9223372036854775807', 'the largest integer'],
           ['-9223372036854775808', 'the smallest integer'],
           ['1e300', 'a large real'], ['60.0', 'a real'],
           ['true', 'a boolean'])
{
    is_admin_problem(post(qq({"name":"x","expires_in":$c->[0]})), 400,
                     'invalid_field', "expires_in: $c->[1]");
    is_admin_problem(post(qq({"name":"x","rate_limit":)
                          . qq({"rate":"1r/s","burst":$c->[0]}})),
                     400, 'invalid_field', "burst: $c->[1]");
}

###############################################################################
# what is valid

$r = post('{"name":"\ud83d\udd11 key"}');
is($r->{status}, 201, 'an escaped surrogate pair') or diag($r->{body});
is($r->{json}{name}, "\x{1f511} key", 'decoded');

$r = post("\n\t {\"name\" : \"spaces\" } \r\n");
is($r->{status}, 201, 'whitespace around JSON');

is_admin_problem(post(''), 400, 'invalid_field',
                 'an empty create body is an empty object: name required');

my $id = $r->{json}{id};

is($a->post("orgs/acme/keys/$id/revoke", '')->{status}, 200,
   'revoke without a body');
is($a->post("orgs/acme/keys/$id/restore", '{}')->{status}, 200,
   'restore with {}');
is_admin_problem($a->post("orgs/acme/keys/$id/revoke", '{"why":"x"}'), 400,
                 'unknown_field', 'revoke with an unknown field');
is_admin_problem($a->post("orgs/acme/keys/$id/revoke", '{"name":"x"}'), 400,
                 'invalid_field', 'revoke with a key field');

$r = $a->request('GET', "orgs/acme/keys/$id", body => 'x' x 100000,
                 type => 'text/plain');
is($r->{status}, 200, 'a body on GET is discarded');

$t->error_log_clean;

done_testing;

###############################################################################

sub chunked {
    my ($body) = @_;

    my $req = "POST /admin/orgs/acme/keys HTTP/1.1\r\nHost: localhost\r\n"
              . "Connection: close\r\nAuthorization: Bearer $tok->{ops}\r\n"
              . "Content-Type: application/json\r\n"
              . "Transfer-Encoding: chunked\r\n\r\n";

    for (my $i = 0; $i < length $body; $i += 10000) {
        my $c = substr($body, $i, 10000);
        $req .= sprintf("%x\r\n%s\r\n", length $c, $c);
    }

    $req .= "0\r\n\r\n";

    my ($st, $h, $b) = http_request($port, $req);
    my $j = eval { JSON::PP->new->utf8->decode($b) };

    return { status => $st // 0, headers => $h, body => $b, json => $j };
}
