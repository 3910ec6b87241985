#!/usr/bin/perl

# apikey_redis_ssl under Sentinel: the module speaks TLS to the Sentinel
# (a TLS-only one) and to the primary it names, checking each one's
# certificate: the Sentinel's for the host as written, the primary's for
# the address the Sentinel gave.  A Sentinel whose certificate another CA
# signed is not believed: the fail mode, with the reason.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use File::Path qw(make_path);

use ApiKey::Test;
use ApiKey::TLS;
use ApiKey::Test::Util qw(which);

my $sentinel_bin = which('redis-sentinel')
    or plan skip_all => 'redis-sentinel is not installed';

my $t = ApiKey::Test->new;
my $dir = $t->dir;

my $pki = ApiKey::TLS::make("$dir/pki");
my $tls = $t->port('redis_tls');
my $sp = $t->port('sentinel');

$t->run_redis(args => [ApiKey::TLS::redis_args($pki, $tls)]);

my $k = $t->create_key(rate => undef);

make_path("$dir/s");
open my $fh, '>', "$dir/s/sentinel.conf" or die $!;
print $fh "port 0\ntls-port $sp\nbind 127.0.0.1\ndir $dir/s\n"
          . "tls-cert-file $pki->{server_crt}\n"
          . "tls-key-file $pki->{server_key}\n"
          . "tls-ca-cert-file $pki->{ca}\n"
          . "tls-auth-clients no\n"
          . "tls-replication yes\n"
          . "sentinel monitor mymaster 127.0.0.1 $tls 1\n";
close $fh;

my $pid = $t->_spawn("$dir/sentinel.log", $sentinel_bin, "$dir/s/sentinel.conf");
$t->{children}{$pid} = 1;

ok(wait_for(10, sub {
       IO::Socket::INET->new(PeerAddr => "127.0.0.1:$sp", Timeout => 1)
   }), 'a TLS-only Sentinel listens');

sub conf {
    my ($ca) = @_;

    return <<"EOF";

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis sentinel:mymaster sentinel=127.0.0.1:$sp;
    apikey_redis_ssl on;
    apikey_redis_ssl_trusted_certificate $ca;

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        location / {
            apikey on;
            empty_gif;
        }
    }
}

EOF
}

sub status {
    (http_get($t->port(1), '/', { 'X-API-Key' => $k->{key} }))[0] // 0
}

$t->run_nginx(conf($pki->{ca}));

ok(wait_for(10, sub { status() == 200 }),
   'the key passes: the Sentinel and the primary over TLS');
like($t->error_log, qr/redis primary of "mymaster" is 127\.0\.0\.1:$tls/,
     'the primary the TLS Sentinel named');

$t->stop_nginx;

$t->run_nginx(conf($pki->{other_ca}), name => 'other');

my %st;
$st{status()}++ for 1 .. 10;
is_deeply(\%st, { 503 => 10 }, 'a Sentinel of another CA: 503')
    or diag(explain \%st);
like($t->error_log('other'), qr/certificate did not verify/,
     'the reason is logged');

$t->error_log_clean;

done_testing;
