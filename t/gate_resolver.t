#!/usr/bin/perl

# apikey_redis with a host name and a resolver in the http block: the
# name is looked up through nginx's resolver, never by a blocking call in
# a worker and not at start (a name only that DNS server knows starts
# fine), and again for each new connection: when the name moves to
# another server, the next connection goes there.  A Sentinel's name is
# looked up the same way.  A name that does not resolve answers the fail
# mode and logs why.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use POSIX qw(WNOHANG);

use ApiKey::Test;
use ApiKey::FakeDNS;
use ApiKey::Test::Util qw(which);

my $t = ApiKey::Test->new;
$t->run_redis;

my $port = $t->redis_port;

# a second Redis on the same port of another loopback address, empty
my $other = $t->_spawn($t->dir . '/other.log', which('redis-server'),
                       '--bind', '127.0.0.2', '--port', $port, '--save', '',
                       '--appendonly', 'no', '--dir', $t->dir);
$t->{children}{$other} = 1;

ok(wait_for(10, sub {
       IO::Socket::INET->new(PeerAddr => "127.0.0.2:$port", Timeout => 1)
   }), 'a second Redis on 127.0.0.2');

my $dns = ApiKey::FakeDNS->start($t);
$dns->set('redis.test' => '127.0.0.1');

my $k = $t->create_key(rate => undef);

sub conf {
    my ($name) = @_;
    my $resolver = '127.0.0.1:' . $dns->port;

    return <<"EOF";

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    resolver $resolver ipv6=off valid=1s;
    apikey_redis $name:$port;

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        location / {
            apikey on;
            add_header X-Status \$apikey_status always;
            empty_gif;
        }
    }
}

EOF
}

sub status {
    (http_get($t->port(1), '/', { 'X-API-Key' => $k->{key} }))[0] // 0
}

$t->run_nginx(conf('redis.test'));

ok(wait_for(10, sub { status() == 200 }),
   'a name only the resolver knows: the key passes, from 127.0.0.1');

# the name moves; the connection is cut: the next one goes to 127.0.0.2,
# where the key is unknown

$dns->set('redis.test' => '127.0.0.2');
sleep 2.5;      # the resolver keeps an answer valid=1s (to the second)

$t->redis('CLIENT', 'KILL', 'TYPE', 'normal');

ok(wait_for(10, sub { status() == 401 }),
   'after the name moved and the connection dropped: the other Redis')
    or diag('status ' . status());

$t->stop_nginx;

# a Sentinel by a name only the resolver knows

my $sentinel_bin = which('redis-sentinel');

SKIP: {
    skip 'redis-sentinel is not installed', 1 unless $sentinel_bin;

    my $sp = $t->port('sentinel');
    my $sdir = $t->dir . '/s';
    mkdir $sdir;

    open my $fh, '>', "$sdir/sentinel.conf" or die $!;
    print $fh "port $sp\nbind 127.0.0.1\ndir $sdir\n"
              . "sentinel monitor mymaster 127.0.0.1 $port 1\n";
    close $fh;

    my $spid = $t->_spawn("$sdir/log", $sentinel_bin, "$sdir/sentinel.conf");
    $t->{children}{$spid} = 1;

    $dns->set('redis.test' => '127.0.0.2', 'sentinel.test' => '127.0.0.1');

    (my $c = conf('x'))
        =~ s/apikey_redis x:\d+;/apikey_redis sentinel:mymaster sentinel=sentinel.test:$sp;/
        or die 'no apikey_redis line';

    $t->run_nginx($c, name => 'sentinel');

    ok(wait_for(10, sub {
           ((http_get($t->port(1), '/', { 'X-API-Key' => $k->{key} }))[0]
            // 0) == 200
       }), 'a Sentinel by name: the key passes, on the primary it named')
        or diag($t->error_log('sentinel'));

    $t->stop_nginx('sentinel');
}

# a name that does not resolve

$t->run_nginx(conf('nowhere.test'), name => 'nx');

my %st;
$st{(http_get($t->port(1), '/', { 'X-API-Key' => $k->{key} }))[0] // 0}++
    for 1 .. 10;

is_deeply(\%st, { 503 => 10 }, 'a name that does not resolve: 503')
    or diag(explain \%st);

like($t->error_log('nx'),
     qr/\[error\].*redis gate connection to nowhere\.test:\d+ failed: cannot resolve "nowhere\.test": Host not found/,
     'it logs why');

$t->error_log_clean;

done_testing;
