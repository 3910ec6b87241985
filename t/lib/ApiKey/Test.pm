package ApiKey::Test;

# Test harness for ngx_http_apikey_module, in the manner of nginx-tests'
# lib/Test/Nginx.pm: a temporary prefix, free loopback ports, a private
# redis-server and nginx instances started and stopped by pid.
#
#   my $t = ApiKey::Test->new;              # skip_all if a binary is missing
#   $t->run_redis;
#   $t->run_nginx(<<'EOF');                 # %%PORT_n%%, %%REDIS%%, ...
#   my $k = $t->create_key(scopes => ['content:read']);
#   my ($status, $headers, $body) = http_get($t->port(1), '/',
#       { 'X-API-Key' => $k->{key} });
#   $t->error_log_clean;
#
# Config macros: %%PORT_n%% (a free port), %%REDIS%% (127.0.0.1:port of
# the private Redis), %%REDIS_SOCK%% (its unix socket path), %%MODULE%%
# (the built .so), %%PREFIX%% (the instance's prefix), %%TEST_GLOBALS%%
# (daemon off, master process, pid file) and %%TEST_GLOBALS_HTTP%%
# (temp paths inside the prefix).
#
# The harness is in parts, each a file: Redis (ApiKey::Test::Redis), keys
# written into it (ApiKey::Test::Keys), nginx instances
# (ApiKey::Test::Nginx) are methods of this class; the HTTP client is
# ApiKey::HTTP, whose functions this module exports too.

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use ApiKey::HTTP;
use ApiKey::Test::Keys;
use ApiKey::Test::Nginx;
use ApiKey::Test::Redis;
use ApiKey::Test::Util qw($WAIT which wait_for _can_connect _stop_pid
                          _slurp _tail);

our @ISA = qw(ApiKey::Test::Redis ApiKey::Test::Keys ApiKey::Test::Nginx);

our @EXPORT = qw(http_get http_request wait_for is_problem);

our $ROOT = abs_path(dirname(__FILE__) . '/../../..');
our $NGINX = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
our $MODULE = $ENV{TEST_NGINX_MODULE} || "$ROOT/build/ngx_http_apikey_module.so";
our $KEYTOOL = "$ROOT/build/apikey-key";

my @instances;
my %ports_taken;    # by any instance of this test


sub new {
    my ($class, %opt) = @_;

    my $redis = which('redis-server');

    for my $need ([$NGINX, 'nginx'], [$redis, 'redis-server'],
                  [$MODULE, 'module (run make)'], [$KEYTOOL, 'apikey-key'])
    {
        plan(skip_all => "no $need->[1]")
            unless defined $need->[0] && -e $need->[0];
    }

    my $dir = tempdir('apikey-test-XXXXXXXX', TMPDIR => 1,
                      CLEANUP => !$ENV{TEST_APIKEY_LEAVE});

    # workers run as nobody when the tests run as root
    chmod 0755, $dir;

    my $self = bless {
        dir => $dir, owner => $$, ports => {}, nginx => {},
        redis_bin => $redis, children => {},
    }, $class;

    push @instances, $self;
    return $self;
}



sub dir { $_[0]{dir} }


# A free loopback port, the same one for the same n during the test.

sub port {
    my ($self, $n) = @_;

    return $self->{ports}{$n} //= do {
        my $port;

        for (1 .. 100) {
            my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                          LocalPort => 0, Listen => 1,
                                          ReuseAddr => 1)
                or die "cannot bind a free port: $!";
            $port = $s->sockport;
            close $s;
            last unless $ports_taken{$port}++;
        }

        $port;
    };
}



sub _spawn {
    my ($self, $out, @cmd) = @_;

    my $pid = fork;
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $out or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }

    return $pid;
}



# Runs code in a child process, which exits without running END blocks.

sub spawn {
    my ($self, $code) = @_;

    my $pid = fork;
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        my $ok = eval { $code->(); 1 };
        print STDERR $@ unless $ok;
        POSIX::_exit($ok ? 0 : 1);
    }

    $self->{children}{$pid} = 1;
    return $pid;
}


# Waits for spawned children, bounded; returns their exit codes.

sub wait_children {
    my ($self, @pids) = @_;
    my @rc;

    for my $pid (@pids) {
        my $done = wait_for($WAIT * 3, sub { waitpid($pid, WNOHANG) != 0 });

        unless ($done) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
        }

        delete $self->{children}{$pid};
        push @rc, $done ? $? >> 8 : -1;
    }

    return @rc;
}


# Clients, one per port listed (a port twice: two clients), send GET path
# with the key back to back, each waiting for its answer, for a time
# from start (default: when each begins); returns { status => count }
# over all of them.  With keys => [...], each port gets a client per key.

sub hammer {
    my ($self, %o) = @_;
    my (@pids, @pipes);

    for my $client (map { my $k = $_; map { [$_, $k] } @{$o{ports}} }
                    @{$o{keys} // [$o{key}]})
    {
        my ($port, $key) = @$client;

        pipe(my $rd, my $wr) or die "pipe: $!";

        push @pids, $self->spawn(sub {
            close $rd;
            my %n;
            my $begin = $o{start} // time;
            my $wait = $begin - time;
            sleep($wait) if $wait > 0;
            while (time < $begin + $o{seconds}) {
                my ($st) = http_get($port, $o{path},
                                    { 'X-API-Key' => $key },
                                    timeout => 5);
                $n{$st // 'none'}++;
            }
            print $wr join(' ', %n);
            close $wr;
        });

        close $wr;
        push @pipes, $rd;
    }

    my %total;

    for my $rd (@pipes) {
        my %n = split ' ', join '', <$rd>;
        $total{$_} += $n{$_} for keys %n;
    }

    $self->wait_children(@pids);

    return \%total;
}



sub stop_all {
    my ($self) = @_;

    return unless ($self->{owner} // 0) == $$;

    for my $pid (keys %{$self->{children}}) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    $self->{children} = {};

    for my $name (keys %{$self->{nginx}}) {
        $self->stop_nginx($name, 'TERM');
    }

    $self->stop_redis if $self->{redis_pid};
}


sub DESTROY { local ($?, $@); $_[0]->stop_all }

END { local ($?, $@); $_->stop_all for @instances; @instances = () }

1;
