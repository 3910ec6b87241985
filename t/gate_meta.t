#!/usr/bin/perl

# A key's meta: set on create and update through the admin API, shown in
# the key object, kept in the gatekeeper's record, and read by
# $apikey_meta and $apikey_meta_NAME with no Redis call more: the
# upstream gets X-Plan from proxy_set_header, with and without the
# replica of apikey_cache, and a change reaches both.  Bad meta is 400
# invalid_field; meta never holds a control character, so no header can
# be split by it.

use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use JSON::PP;

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');
my $tokens = ApiKey::Admin::tokens_file($t);

# one instance without the replica (ports 1, 2), one with it (3, 4)

sub conf {
    my ($port, $echo, $http) = @_;

    return <<"EOF";

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%REDIS%%;
    apikey_admin_tokens $tokens;
    $http

    server {
        listen 127.0.0.1:%%PORT_$port%%;
        server_name localhost;

        location /admin/ {
            apikey_admin;
        }

        location /api/ {
            apikey on;
            proxy_pass http://127.0.0.1:%%PORT_$echo%%/echo;
            proxy_set_header X-Plan \$apikey_meta_plan;
            proxy_set_header X-Seats \$apikey_meta_seats;
            proxy_set_header X-Tags \$apikey_meta_tags;
            proxy_set_header X-None \$apikey_meta_none;
            proxy_set_header X-Meta \$apikey_meta;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_$echo%%;
        server_name localhost;

        access_log off;

        location /echo {
            return 200 "plan=\$http_x_plan|seats=\$http_x_seats|tags=\$http_x_tags|none=\$http_x_none|meta=\$http_x_meta";
        }
    }
}

EOF
}

$t->run_nginx(conf(1, 2, ''));
$t->run_nginx(conf(3, 4, 'apikey_cache zone=keys:4m;'), name => 'cached');

my $adm = ApiKey::Admin->new($t, $tok->{ops});
my $json = JSON::PP->new->canonical;

my $meta = { plan => 'pro', seats => 5, tags => ['a', 'b'],
             nested => { 'x y' => 'Ünï' } };
my $k = $adm->post('orgs/acme/keys', { name => 'with meta', meta => $meta });

is($k->{status}, 201, 'a key made with meta');
is_deeply($k->{json}{meta}, $meta, 'the key object shows it');
is_deeply($adm->get("orgs/acme/keys/$k->{json}{id}")->{json}{meta}, $meta,
          'GET shows it');

my $plain = $adm->post('orgs/acme/keys', { name => 'no meta' });
is_deeply($plain->{json}{meta}, {}, 'a key without meta has {}');

# what the upstream gets, through either instance

sub upstream {
    my ($port, $key) = @_;
    my ($status, $h, $body) = http_get($port, '/api/x', { 'X-API-Key' => $key });
    return ($status // 0) . ' ' . ($body // '');
}

for ([1, 'without the replica'], [3, 'with the replica']) {
    my ($p, $what) = @{$_};
    my $port = $t->port($p);

    ok(wait_for(10, sub { upstream($port, $k->{json}{key}) =~ /^200 / }),
       "$what: the key passes");

    my $got = upstream($port, $k->{json}{key});
    my ($m) = $got =~ /\|meta=(.*)$/;

    like($got, qr/^200 plan=pro\|seats=5\|tags=\["a","b"\]\|none=\|/,
         "$what: \$apikey_meta_NAME: a string as text, others as JSON,"
         . ' a missing field empty');
    is_deeply(decode_json($m // '{}'), $meta,
              "$what: \$apikey_meta is the whole object");
    is(upstream($port, $plain->{json}{key}),
       '200 plan=|seats=|tags=|none=|meta={}',
       "$what: a key without meta: {} and empty fields");
}

# a change reaches both instances; {} removes meta

my $r = $adm->patch("orgs/acme/keys/$k->{json}{id}",
                    { meta => { plan => 'enterprise' } });
is_deeply($r->{json}{meta}, { plan => 'enterprise' }, 'meta replaced');

for (1, 3) {
    my $port = $t->port($_);
    ok(wait_for(5, sub { upstream($port, $k->{json}{key})
                         =~ /^200 plan=enterprise\|seats=\|/ }),
       "port $_: the new meta reaches the upstream within a second");
}

$r = $adm->patch("orgs/acme/keys/$k->{json}{id}", { name => 'renamed' });
is_deeply($r->{json}{meta}, { plan => 'enterprise' },
          'an update of another field keeps meta');

$r = $adm->patch("orgs/acme/keys/$k->{json}{id}", { meta => {} });
is_deeply($r->{json}{meta}, {}, 'meta {} removes it');
is($t->redis('HEXISTS', "apikey:key:$k->{json}{id}", 'meta'), 0,
   'and the record keeps no meta field');
ok(wait_for(5, sub { upstream($t->port(3), $k->{json}{key})
                     eq '200 plan=|seats=|tags=|none=|meta={}' }),
   'the replica learns of it');

# rotation keeps meta in the new secret

$r = $adm->patch("orgs/acme/keys/$k->{json}{id}", { meta => { plan => 'x' } });
$r = $adm->post("orgs/acme/keys/$k->{json}{id}/rotate", {});
is($r->{status}, 200, 'rotated');
ok(wait_for(5, sub { upstream($t->port(1), $r->{json}{key}) =~ /^200 plan=x\|/ }),
   'the new secret carries meta');

# bad meta

my $big = { map { ("f$_" => 'x' x 40) } 1 .. 30 };

for ([[1, 2], 'an array'], ['plan', 'a string'], [undef, 'null'],
     [{ Plan => 1 }, 'an upper-case name'], [{ '' => 1 }, 'an empty name'],
     [{ 'x' x 33 => 1 }, 'a name of 33 characters'],
     [{ 'a-b' => 1 }, 'a name with a dash'],
     [{ plan => "pro\r\nX-Evil: 1" }, 'a string with CR LF'],
     [{ plan => ["a\tb"] }, 'a tab in a nested string'],
     [{ o => { "a\nb" => 1 } }, 'a newline in a nested name'],
     [{ plan => "\x{85}" }, 'a C1 control character'],
     [$big, 'over 1 KiB'])
{
    my ($v, $what) = @$_;
    $r = $adm->post('orgs/acme/keys', { name => 'bad', meta => $v });
    is_admin_problem($r, 400, 'invalid_field', "$what: 400");
    like($r->{json}{detail} // '', qr/^meta must be a JSON object of at most 1024 bytes/,
         "$what: the rule");
}

my $edge = { map { ("f$_" => 'x' x 40) } 1 .. 20 };
my $len = length($json->encode($edge));
$r = $adm->post('orgs/acme/keys', { name => 'edge', meta => $edge });
is($r->{status}, 201, "meta of $len bytes is taken");

$t->error_log_clean;

done_testing;
