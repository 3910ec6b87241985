#!/usr/bin/perl

# The data layout carries a version (NS "layout", docs/data-model.md):
# none or "1" is the layout this module reads.  A Redis whose data a newer
# layout holds is not misread: each connection's handshake finds out,
# each worker logs one [error] naming the layout and the fix, the
# gatekeeper answers the fail mode, the admin API 503 store_unavailable,
# and the replica is never loaded from it.  Once the layout is one the
# module knows, it works again without a reload.

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

my $conf = admin_config($t, http => 'apikey_cache zone=keys:1m;',
                        api => 'add_header X-Status $apikey_status always;');

my $a = ApiKey::Admin->new($t, $tok->{ops});
my $port = $t->port(1);

# a known layout: "1", as a migration back would leave it

$t->redis('SET', 'apikey:layout', '1');
$t->run_nginx($conf);

my $k = $a->create('acme', name => 'works');
ok(wait_for(10, sub { (gate($port, $k->{key}))[0] == 200 }),
   'layout 1: the key passes');

# a newer layout, met by every new connection: the workers' connections
# are dropped, and nginx restarted, so that the replica loads anew

$t->redis('SET', 'apikey:layout', "2\n[forged]");
$t->stop_nginx;
$t->run_nginx($conf, name => 'newer');

# the same port: the configuration names %%PORT_1%%
my %st;
for (1 .. 20) {
    my ($s, $h) = http_get($port, '/api/', { 'X-API-Key' => $k->{key} });
    $st{($s // 0) . ' ' . ($h->{'x-status'} // '')}++;
    Time::HiRes::sleep(0.05);
}

is_deeply([keys %st], ['503 unavailable'],
          'a newer layout: the key gets the fail mode, never invalid')
    or diag(explain \%st);

is($a->post('orgs/acme/keys', { name => 'not now' })->{json}{code},
   'store_unavailable', 'the admin API: 503 store_unavailable');

my $log = $t->error_log('newer');
my @err = grep { /\[error\].*holds its keys in data layout/ } split /\n/, $log;

ok(@err >= 1 && @err <= 2, 'one [error] a worker, however many attempts ('
                           . @err . ')')
    or diag($log);
like($err[0] // '', qr/redis at 127\.0\.0\.1:\d+ holds its keys in data layout "2\\x0a\[forged\]", which this module does not know \(it reads layout 1\): upgrade the module/,
     'it names the layout, escaped, and the fix');
unlike($log, qr/keys loaded/, 'the replica was never loaded');

# back to a known layout: the next connection works

$t->redis('DEL', 'apikey:layout');

ok(wait_for(15, sub { (gate($port, $k->{key}))[0] == 200 }),
   'no layout key: layout 1, the key passes again');
ok(wait_for(10, sub { $t->error_log('newer') =~ /keys loaded/ }),
   'and the replica is loaded');

$t->error_log_clean;

done_testing;
