#!/usr/bin/perl

# DELETE orgs/{org}/keys/{id}: 204, then 404 everywhere, 401
# invalid_api_key at the gatekeeper on the very next request, and nothing
# of the key left in Redis (record, secrets including one in grace, index
# entries).

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

$t->run_nginx(admin_config($t));

my $a = ApiKey::Admin->new($t, $tok->{ops});
my $port = $t->port(1);

my $keep = $a->create('acme', name => 'keep');
my $k = $a->create('acme', name => 'delete me');
my $path = "orgs/acme/keys/$k->{id}";

my $n = $a->post("$path/rotate", { grace_seconds => 3600 })->{json};

is((gate($port, $k->{key}))[0], 200, 'the key in grace works');
is((gate($port, $n->{key}))[0], 200, 'the current key works');

my $r = $a->delete($path);
is($r->{status}, 204, 'delete: 204');
is($r->{body}, '', 'no body');

is((gate($port, $k->{key}))[0], 401, 'the key in grace is refused');
my ($st, $h) = gate($port, $n->{key});
is($st, 401, 'the current key is refused');
is($h->{'x-apikey-status'}, 'invalid', 'as invalid');

is_admin_problem($a->get($path), 404, 'key_not_found', 'get after delete');
is_admin_problem($a->delete($path), 404, 'key_not_found', 'delete twice');
is_admin_problem($a->patch($path, { name => 'x' }), 404, 'key_not_found',
                 'patch after delete');
is_admin_problem($a->post("$path/restore", undef), 404, 'key_not_found',
                 'restore after delete');

my $dump = $t->redis_dump;
(my $rest = $dump) =~ s/^\S+:events \(list\).*$//mg;
unlike($rest, qr/\Q$k->{id}\E/, 'the id is left only in the event log');
for my $raw ($k->{key}, $n->{key}) {
    my $hash = $t->key_hash($raw);
    unlike($dump, qr/$hash/, 'no secret of the key is left');
}

like($dump, qr/\Q$keep->{id}\E/, 'the other key is untouched');
is((gate($port, $keep->{key}))[0], 200, 'and works');

my $l = $a->get('orgs/acme/keys')->{json};
is($l->{total_count}, 1, 'one key left in the list');
is($a->get('orgs/acme/keys?search=delete')->{json}{total_count}, 0,
   'not found by a search');

is_admin_problem($a->delete("orgs/beta/keys/$keep->{id}"), 404,
                 'key_not_found', 'delete from another org');
is((gate($port, $keep->{key}))[0], 200, 'does not touch the key');

my $hk = $t->create_key(org => 'acme');
is($a->delete("orgs/acme/keys/$hk->{id}")->{status}, 204,
   'a key written without the admin API');
is((gate($port, $hk->{key}))[0], 401, 'is refused after delete');

$t->error_log_clean;

done_testing;
