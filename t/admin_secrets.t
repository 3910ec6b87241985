#!/usr/bin/perl

# Raw keys and hashes stay secret: a raw key appears only in the create
# and rotate answers; no list, get, event or other answer holds a raw key
# or a hash; nothing of them or of admin tokens reaches nginx's logs (at
# debug level), and no raw key or token reaches Redis.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*', ci => 'acme');

(my $conf = admin_config($t))
    =~ s/error_log error.log info;/error_log error.log debug;/;
$t->run_nginx($conf);

my $a = ApiKey::Admin->new($t, $tok->{ops});
my $port = $t->port(1);

$t->monitor_start;

my (@raw, @bodies);

my $r = $a->post('orgs/acme/keys', { name => 'secret', scopes => ['a:b'] });
my $k = $r->{json};
push @raw, $k->{key};
my $create_body = $r->{body};

gate($port, $k->{key});
gate($port, $k->{key}, 'x') for 1 .. 3;

$r = $a->post("orgs/acme/keys/$k->{id}/rotate", { grace_seconds => 60 });
push @raw, $r->{json}{key};
my $rotate_body = $r->{body};

gate($port, $raw[1]);
gate($port, $raw[0]);

my $other = $a->create('acme', name => 'other');
push @raw, $other->{key};

push @bodies, map { $_->{body} }
    $a->get('orgs/acme/keys'),
    $a->get('orgs/acme/keys?search=secret'),
    $a->get('orgs/acme/keys?status=active&per_page=100'),
    $a->get("orgs/acme/keys/$k->{id}"),
    $a->patch("orgs/acme/keys/$k->{id}", { name => 'still secret' }),
    $a->post("orgs/acme/keys/$k->{id}/revoke", undef),
    $a->post("orgs/acme/keys/$k->{id}/restore", undef),
    $a->get('orgs/acme/events'),
    $a->post('orgs/acme/keys', { name => '' }),
    $a->delete("orgs/acme/keys/$other->{id}");

# a raw key pasted into a URL by mistake: the access log has it, but it
# is not sent to Redis

my $pasted = $a->create('acme', name => 'pasted');

$r = $a->get("orgs/acme/keys?search=$pasted->{key}");
is_deeply([map { $_->{id} } @{$r->{json}{data}}], [$pasted->{id}],
          'a raw key as search finds its key by the display prefix');
is_admin_problem($a->get("orgs/acme/keys/$pasted->{key}"), 404,
                 'key_not_found', 'a raw key as id');
is_admin_problem($a->delete("orgs/acme/keys/$pasted->{key}"), 404,
                 'key_not_found', 'a raw key as id to delete');

my $monitor = $t->monitor_stop;

unlike($monitor, qr/\Q$pasted->{key}\E/,
       'the pasted key was not sent to Redis');

my @hashes = map { $t->key_hash($_) } @raw;

like($create_body, qr/\Q$raw[0]\E/, 'create answers with the raw key');
like($rotate_body, qr/\Q$raw[1]\E/, 'rotate answers with the new raw key');
unlike($rotate_body, qr/\Q$raw[0]\E/, 'but not with the old one');

for my $body ($create_body, $rotate_body, @bodies) {
    unlike($body, qr/[0-9a-f]{64}/, 'no hash in an answer');
}

for my $body (@bodies) {
    unlike($body, qr/ak_[0-9A-Za-z]{40}/, 'no raw key in other answers');
}

for my $raw (@raw) {
    unlike($monitor, qr/\Q$raw\E/, 'no raw key sent to Redis');
}

like($monitor, qr/\Q$hashes[0]\E/, 'Redis saw the hash (the capture works)');

my $dump = $t->redis_dump;

for my $raw (@raw) {
    unlike($dump, qr/\Q$raw\E/, 'no raw key stored');
}

for my $token (values %$tok) {
    unlike($monitor . $dump, qr/\Q$token\E/, 'no admin token in Redis');
}

# nginx itself dumps request headers at debug level (as the harness's
# log_contains_no, skip those lines); the module's own lines must be clean

my $logs = $t->error_log . $t->read_file('access.log');
$logs =~ s/^.*\[debug\].* http header: ".*$//mg;

like($t->error_log, qr/\[debug\]/, 'the error log is at debug level');

for my $h (@hashes) {
    unlike($logs, qr/\Q$h\E/, 'no hash in the nginx logs');
}

for my $name (sort keys %$tok) {
    unlike($logs, qr/\Q$tok->{$name}\E/, "no token $name in the nginx logs");

    my $line = $t->dir . '/tokens';
    open my $fh, '<', $line or die;
    my ($thash) = map { (split /:/)[1] } grep { /^\Q$name\E:/ } <$fh>;
    unlike($logs, qr/\Q$thash\E/, "no hash of token $name in the logs");
}

$t->log_contains_no($_, 'a raw key') for @raw;
$t->log_contains_no($_, 'an admin token') for values %$tok;

$t->error_log_clean;

done_testing;
