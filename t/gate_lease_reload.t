#!/usr/bin/perl

# A reload that changes the apikey_cache zone while checks wait on Redis:
# the old worker shuts down with a lease asked for and its siblings in
# flight.  When Redis answers, the lease is granted and the siblings pass
# with its tokens, in a worker whose last sweep is done and in a zone no
# new worker uses: those uses, and the tokens left, must still reach
# Redis, so that usage counts every request that passed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*');

sub conf {
    my ($zone) = @_;

    return admin_config($t, workers => 1, http => <<"EOF");
apikey_cache zone=keys:$zone;
    apikey_rate_lease 100ms;
    apikey_redis_timeout 5s;
EOF
}

$t->run_nginx(conf('4m'));

my $port = $t->port(1);
my $adm = ApiKey::Admin->new($t, $tok->{ops});

# a lease of 100 tokens: 1000r/s for 100 ms
my $k = $adm->create('acme', name => 'leased',
                     rate_limit => { rate => '1000r/s', burst => 100 });

ok(wait_for(10, sub { (gate($port, $k->{key}))[0] == 200 }),
   'the key passes');

my $warm = 1;

for (1 .. 4) {
    $warm++ if (gate($port, $k->{key}))[0] == 200;
}

# let the warm-up's lease end and be told
sleep 1.5;

# Redis pauses; 20 requests wait on it; nginx reloads with another zone

$t->redis('CLIENT', 'PAUSE', 1500, 'ALL');

my @kids = map {
    $t->spawn(sub {
        my ($st) = gate($port, $k->{key});
        open my $fh, '>', $t->dir . "/st.$$" or die $!;
        print $fh $st;
        close $fh;
    })
} 1 .. 20;

sleep 0.5;

$t->write_config(conf('8m'));
kill 'HUP', $t->nginx_pid;

$t->wait_children(@kids);

my %st;
for my $f (glob $t->dir . '/st.*') {
    open my $fh, '<', $f or next;
    $st{<$fh> // 0}++;
}

is($st{200} // 0, 20, '20 requests that waited on Redis passed')
    or diag(explain \%st);

# the old worker is gone once its calls are answered
ok(wait_for(15, sub { $t->error_log =~ /worker process \d+ exited with code 0/ }),
   'the old worker exited');

my $allowed;
ok(wait_for(10, sub {
       my $u = $adm->get("orgs/acme/keys/$k->{id}/usage")->{json};
       $allowed = $u && $u->{total} ? $u->{total}{allowed} : undef;
       ($allowed // 0) >= $warm + 20;
   }), 'usage counts every request that passed')
    or diag("usage allowed " . ($allowed // 'none') . ", passed "
            . ($warm + 20));
is($allowed, $warm + 20, 'and no more');

$t->error_log_clean;

done_testing;
