#!/usr/bin/perl

# The replica of apikey_cache judges a rotated-out secret's grace by
# Redis's clock, learnt from the TIME its follow calls read.  Redis reads
# it somewhere between the call's sending and its reply: taken as read
# when the reply came, the replica's clock was behind Redis's by the
# reply's way back, and an old secret passed there after its grace
# ended.  Here every command and reply between nginx and Redis is held
# 150 ms (the campaign's proxy): requests with the old secret around the
# end of its grace may pass before it, never after (the module before
# this change passed them for about 150 ms after).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);
use Time::Local qw(timegm);

use ApiKey::Test;
use ApiKey::Admin;
use ApiKey::Chaos::Proxy;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

my ($pport, $cport) = ($t->port('proxy'), $t->port('control'));

my $proxy = $t->spawn(sub {
    ApiKey::Chaos::Proxy->new(upstream => '127.0.0.1:' . $t->redis_port,
                              listeners => { a => $pport },
                              control => $cport,
                              log => $t->dir . '/proxy.log')->run;
});

ok(wait_for(10, sub {
       eval { ApiKey::Chaos::Proxy::control($cport, 'pairs') } }),
   'the proxy runs');

(my $conf = admin_config($t, http => <<'EOF')) =~ s/%%REDIS%%/127.0.0.1:$pport/;
apikey_cache zone=keys:1m;
    apikey_redis_timeout 2s;
EOF

$t->run_nginx($conf);

my $a = ApiKey::Admin->new($t, $tok->{ops});
my $port = $t->port(1);

my $k = $a->create('acme', name => 'rotated', rate_limit => undef);
ok(wait_for(10, sub { (gate($port, $k->{key}))[0] == 200 }),
   'the key passes');

ApiKey::Chaos::Proxy::control($cport, 'delay 150 all');

my $r = $a->post("orgs/acme/keys/$k->{id}/rotate", { grace_seconds => 3 });
is($r->{status}, 200, 'rotated with a grace of 3 s');

my ($y, $mo, $d, $h, $mi, $s) = ($r->{json}{previous_key_expires_at} // '')
    =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)Z$/;
my $end = timegm($s, $mi, $h, $d, $mo - 1, $y);

# the old secret, one request after the other, from 1 s before the end
# of its grace to 0.6 s after; its start time by this host's clock,
# which is Redis's (one machine)

sleep($end - 1 - time) if $end - 1 > time;

my @seen;
while (time < $end + 0.6) {
    my $start = time;
    push @seen, [$start, (gate($port, $k->{key}))[0]];
}

my @before = grep { $_->[0] < $end - 0.4 && $_->[1] == 200 } @seen;
my @after = grep { $_->[0] >= $end && $_->[1] == 200 } @seen;

ok(@before, 'the old secret passes in its grace, from the replica ('
            . @before . ' requests)');
is(scalar @after, 0, 'and never once its grace has ended')
    or diag(sprintf '%d passed, the last %.3f s after the end', scalar @after,
            $after[-1][0] - $end);
is(scalar(grep { $_->[0] >= $end && $_->[1] != 401 } @seen), 0,
   'after it, every request is refused 401');

ApiKey::Chaos::Proxy::control($cport, 'heal');

$t->stop_nginx;
$t->error_log_clean;

done_testing;
