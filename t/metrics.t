#!/usr/bin/perl

# apikey_metrics: counters in shared memory, summed over the workers, in
# the Prometheus text format; valid for promtool; no key, org or name in a
# label; kept through a HUP reload.

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
my $tokens = ApiKey::Admin::tokens_file($t);

$t->run_nginx(<<"EOF");

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

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        location / {
            apikey on;
            empty_gif;
        }

        location = /metrics {
            apikey_metrics;
        }

        location /admin/ {
            apikey_admin;
        }
    }
}

EOF

my $port = $t->port(1);
my $admin = ApiKey::Admin->new($t, $tok->{ops});

sub get {
    my ($path, $key) = @_;
    return (http_get($port, $path, defined $key ? { 'X-API-Key' => $key }
                                                : {}))[0];
}

sub scrape {
    my ($st, $h, $body) = http_get($port, '/metrics');
    return ($st, $h, $body);
}

# name{labels} value lines into { 'name{labels}' => value }

sub series {
    my ($body) = @_;
    my %s;

    for (split /\n/, $body) {
        next if /^#/ || !length;
        my ($k, $v) = /^(\S+) (\S+)$/ or return undef;
        $s{$k} = $v;
    }

    return \%s;
}

###############################################################################

my ($st, $h, $body) = scrape();
is($st, 200, 'metrics: 200');
like($h->{'content-type'}, qr{^text/plain; version=0\.0\.4},
     'the Prometheus text format');

my $before = series($body);
is($before->{'apikey_checks_total{status="ok"}'}, 0, 'no check yet');
is_deeply([grep { /^apikey_admin_requests_total/ } keys %$before], [],
          'no admin request yet: no sample of one');
like($body, qr/^# TYPE apikey_admin_requests_total counter$/m,
     'but the family is declared');
promtool_ok($body, 'before any request');

my $ok = $t->create_key(org => 'acme-metrics', name => 'metrics key',
                        rate => undef);
my $one = $t->create_key(org => 'acme-metrics', rate => '1r/m', burst => 1);
my $revoked = $t->create_key(org => 'acme-metrics', revoked => 1);

get('/', $ok->{key}) for 1 .. 5;
get('/') for 1 .. 2;
get('/', $t->raw_key);
get('/', $revoked->{key});
get('/', $one->{key}) for 1 .. 3;

($st, $h, $body) = scrape();
my $s = series($body);
ok($s, 'every line is a comment or a sample') or diag($body);

is_deeply([map { $s->{"apikey_checks_total{status=\"$_\"}"} }
           qw(ok missing invalid revoked limited forbidden)],
          [6, 2, 1, 1, 2, 0],
          'checks by status, summed over both workers');

is($s->{'apikey_redis_calls_total{connection="gate"}'},
   $s->{'apikey_redis_script_duration_seconds_count'},
   'every gate call has its duration');
# 10 checks need Redis: 5 ok, the unknown key, the revoked key, 3 limited

ok($s->{'apikey_redis_calls_total{connection="gate"}'} >= 1
   && $s->{'apikey_redis_calls_total{connection="gate"}'} <= 10,
   'at most one gate call per check that needs Redis');
is($s->{'apikey_batch_checks_sum'}, 10,
   'checks per call add up to the checks that went to Redis');
is($s->{'apikey_batch_checks_bucket{le="+Inf"}'},
   $s->{'apikey_batch_checks_count'}, 'the +Inf bucket is the count');

# bounded labels: no key id, org, name or prefix anywhere (route comes
# with the first admin request, below)

my %labels;
$labels{$1} = 1 while $body =~ /[{,]([a-z_]+)="/g;
is_deeply([sort keys %labels], [qw(connection kind le node status version)],
          'only bounded labels');
is_deeply([sort grep { /^apikey_redis_up\{/ } keys %$s],
          ['apikey_redis_up{connection="gate",node="127.0.0.1:'
           . $t->redis_port . '"}'],
          'the node label: the configured Redis');
ok(defined $s->{apikey_gate_duration_seconds_count}
   && defined $s->{apikey_lease_asks_total}
   && defined $s->{apikey_tally_flushes_total}
   && defined $s->{apikey_start_time_seconds},
   'the operator series are on the page (and promtool sees them)');

for my $secret ($ok->{id}, 'acme-metrics', 'metrics key', $ok->{prefix},
                $ok->{key})
{
    unlike($body, qr/\Q$secret\E/, "no \"$secret\" in the metrics");
}

promtool_ok($body, 'after requests');

sub promtool_ok {
    my ($text, $when) = @_;

    SKIP: {
        my $promtool = ApiKey::Test::which('promtool')
            or skip('promtool (Debian package prometheus) is not installed',
                    2);

        my $file = "$t->{dir}/metrics.txt";
        open my $fh, '>', $file or die "$file: $!";
        print $fh $text;
        close $fh;

        my $out = `$promtool check metrics < $file 2>&1`;
        is($?, 0, "promtool check metrics $when: exit 0") or diag($out);
        is($out, '', "promtool check metrics $when: no problem reported")
            or diag($out);
    }
}

# the scrape configuration and alert rules of docs/metrics.md

SKIP: {
    my $promtool = ApiKey::Test::which('promtool')
        or skip('promtool (Debian package prometheus) is not installed', 2);

    my $doc = ApiKey::Test::_slurp("$FindBin::Bin/../docs/metrics.md");
    my ($config) = $doc =~ /```yaml\n(scrape_configs:.*?)```/s;
    my ($rules) = $doc =~ /```yaml\n(groups:.*?)```/s;

    for (['config', $config], ['rules', $rules]) {
        my ($what, $text) = @$_;
        my $file = "$t->{dir}/$what.yml";
        open my $fh, '>', $file or die "$file: $!";
        print $fh $text // '';
        close $fh;

        my $out = `$promtool check $what $file 2>&1`;
        ok(defined $text && $? == 0, "docs/metrics.md: the $what passes "
                                     . "promtool check $what")
            or diag($out);
    }
}

# admin requests, by operation and status

$admin->create('acme-metrics', name => 'by the admin API');
$admin->get('orgs/acme-metrics/keys');
$admin->get('orgs/acme-metrics/nothing');
$admin->get("orgs/acme-metrics/keys/$ok->{id}", token => 'wrong');

$s = series((scrape())[2]);
is_deeply([map { $s->{"apikey_admin_requests_total{$_}"} }
           'route="create",status="201"', 'route="list",status="200"',
           'route="none",status="404"', 'route="none",status="401"'],
          [1, 1, 1, 1], 'admin requests by route and status');
is(scalar(grep { /^apikey_admin_requests_total/ } keys %$s), 4,
   'and none that did not happen');

# the admin API's time by route: histograms with a label of their own

$body = (scrape())[2];
like($body, qr/^apikey_admin_request_duration_seconds_count\{route="create"\} 1$/m,
     'admin time by route');
promtool_ok($body, 'with admin requests');

# a HUP reload keeps the zone and its counters

$t->reload_nginx;

$s = series((scrape())[2]);
is($s->{'apikey_checks_total{status="ok"}'}, 6,
   'a reload keeps the counters');

get('/', $ok->{key});
$s = series((scrape())[2]);
is($s->{'apikey_checks_total{status="ok"}'}, 7,
   'and the new workers count on');

is((http_request($port, "POST /metrics HTTP/1.0\r\nHost: localhost\r\n"
                        . "Content-Length: 0\r\n\r\n"))[0], 405,
   'POST: 405');

$t->error_log_clean;

done_testing;
