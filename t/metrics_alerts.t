#!/usr/bin/perl

# The alert rules of docs/metrics.md, as written there: promtool checks
# them, and "promtool test rules" runs them on series shaped as the
# module's: an instance whose checks fail, whose connections fail and
# whose replica lags gets one ApiKeyRedisUnreachable, not one per series;
# an instance whose replica alone lags gets one too; a healthy one none.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;

my $promtool = ApiKey::Test::which('promtool')
    or plan(skip_all => 'promtool (Debian package prometheus) is not installed');

my $t = ApiKey::Test->new;
my $dir = $t->dir;

open my $fh, '<', "$FindBin::Bin/../docs/metrics.md" or die "metrics.md: $!";
my $doc = do { local $/; <$fh> };
close $fh;

my ($rules) = $doc =~ /^```yaml\n(groups:\n.*?)^```$/ms;
ok($rules, 'docs/metrics.md has the alert rules') or BAIL_OUT('no rules');

sub write_file {
    my ($name, $text) = @_;
    open my $out, '>', "$dir/$name" or die "$name: $!";
    print $out $text;
    close $out;
}

write_file('rules.yml', $rules);

my $out = `$promtool check rules $dir/rules.yml 2>&1`;
is($?, 0, 'promtool check rules passes') or diag($out);

write_file('test.yml', <<'EOF');
rule_files: [rules.yml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      # a: Redis gone; checks answered unavailable and unverified, the
      # connection failing, the replica lagging
      - series: 'apikey_checks_total{instance="a:8080",job="nginx",status="unavailable"}'
        values: '0+10x40'
      - series: 'apikey_checks_total{instance="a:8080",job="nginx",status="unverified"}'
        values: '0+10x40'
      - series: 'apikey_checks_total{instance="a:8080",job="nginx",status="ok"}'
        values: '0+10x40'
      - series: 'apikey_redis_errors_total{instance="a:8080",job="nginx",kind="connection"}'
        values: '0+5x40'
      - series: 'apikey_redis_errors_total{instance="a:8080",job="nginx",kind="timeout"}'
        values: '0+5x40'
      - series: 'apikey_replica_lag_seconds{instance="a:8080",job="nginx"}'
        values: '0+15x40'
      # b: healthy
      - series: 'apikey_checks_total{instance="b:8080",job="nginx",status="ok"}'
        values: '0+10x40'
      - series: 'apikey_redis_errors_total{instance="b:8080",job="nginx",kind="connection"}'
        values: '0x40'
      - series: 'apikey_replica_lag_seconds{instance="b:8080",job="nginx"}'
        values: '0x40'
      # c: the replica alone lags (its reader cannot reach Redis)
      - series: 'apikey_checks_total{instance="c:8080",job="nginx",status="ok"}'
        values: '0+10x40'
      - series: 'apikey_replica_lag_seconds{instance="c:8080",job="nginx"}'
        values: '30+15x40'
    alert_rule_test:
      - eval_time: 5m
        alertname: ApiKeyRedisUnreachable
        exp_alerts:
          - exp_labels:
              instance: a:8080
              severity: page
            exp_annotations:
              summary: "nginx on a:8080 cannot check API keys"
          - exp_labels:
              instance: c:8080
              severity: page
            exp_annotations:
              summary: "nginx on c:8080 cannot check API keys"
      - eval_time: 30s
        alertname: ApiKeyRedisUnreachable
        exp_alerts: []
EOF

$out = `cd $dir && $promtool test rules test.yml 2>&1`;
is($?, 0, 'one ApiKeyRedisUnreachable per instance that cannot check keys,'
          . ' none for a healthy one') or diag($out);

done_testing;
