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

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Find qw(find);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

our @EXPORT = qw(http_get http_request wait_for is_problem);

our $ROOT = abs_path(dirname(__FILE__) . '/../../..');
our $NGINX = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
our $MODULE = $ENV{TEST_NGINX_MODULE} || "$ROOT/build/ngx_http_apikey_module.so";
our $KEYTOOL = "$ROOT/build/apikey-key";

# every wait in the harness is bounded by this many seconds
our $WAIT = 10;

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


sub which {
    my ($name) = @_;

    for my $d (split /:/, $ENV{PATH} || '', -1) {
        return "$d/$name" if -x "$d/$name";
    }

    return -x "/usr/sbin/$name" ? "/usr/sbin/$name" : undef;
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


sub wait_for {
    my ($timeout, $cond) = @_;
    my $deadline = time + $timeout;

    while (1) {
        my $r = $cond->();
        return $r if $r;
        return undef if time > $deadline;
        sleep 0.02;
    }
}


sub _can_connect {
    my ($port) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
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


# Sends a signal and waits (bounded) for the process to exit; escalates to
# SIGKILL.  Returns true if it exited in time, without the SIGKILL.

sub _stop_pid {
    my ($pid, $sig, $timeout) = @_;

    return 1 unless $pid;

    kill $sig, $pid;
    kill 'CONT', $pid if $sig ne 'KILL';

    return 1 if wait_for($timeout // $WAIT,
                         sub { waitpid($pid, WNOHANG) != 0 });

    kill 'KILL', $pid;
    waitpid($pid, 0);
    return 0;
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
# over all of them.

sub hammer {
    my ($self, %o) = @_;
    my (@pids, @pipes);

    for my $port (@{$o{ports}}) {
        pipe(my $rd, my $wr) or die "pipe: $!";

        push @pids, $self->spawn(sub {
            close $rd;
            my %n;
            my $begin = $o{start} // time;
            my $wait = $begin - time;
            sleep($wait) if $wait > 0;
            while (time < $begin + $o{seconds}) {
                my ($st) = http_get($port, $o{path},
                                    { 'X-API-Key' => $o{key} },
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


############################################################################
# Redis

sub run_redis {
    my ($self, %opt) = @_;

    my $rdir = "$self->{dir}/redis";
    make_path($rdir);
    chmod 0755, $rdir;

    $self->{redis_port} //= $self->port('redis');
    $self->{redis_password} = $opt{password};
    $self->{redis_db} = $opt{db};
    $self->{redis_args} = [
        $self->{redis_bin}, '--port', $self->{redis_port},
        '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
        '--dir', $rdir, '--unixsocket', "$rdir/redis.sock",
        '--unixsocketperm', '777', '--logfile', '',
        defined $opt{password} ? ('--requirepass', $opt{password}) : (),
        @{$opt{args} || []},
    ];

    return $self->start_redis;
}


sub start_redis {
    my ($self) = @_;

    $self->{redis_pid} = $self->_spawn("$self->{dir}/redis/redis.log",
                                       @{$self->{redis_args}});

    my $up = wait_for($WAIT, sub {
        die "redis-server exited:\n" . _tail("$self->{dir}/redis/redis.log")
            if waitpid($self->{redis_pid}, WNOHANG) != 0;
        _can_connect($self->{redis_port});
    });

    die "redis-server did not listen on $self->{redis_port} in $WAIT s\n"
        unless $up;

    return $self;
}


sub stop_redis {
    my ($self) = @_;

    $self->_redis_close;
    _stop_pid(delete $self->{redis_pid}, 'TERM');
    return $self;
}


# the same Redis (port, password, arguments) again, empty

sub restart_redis {
    my ($self) = @_;
    $self->stop_redis if $self->{redis_pid};
    return $self->start_redis;
}


sub freeze_redis { kill 'STOP', $_[0]{redis_pid}; $_[0] }
sub thaw_redis { kill 'CONT', $_[0]{redis_pid}; $_[0] }

sub redis_port { $_[0]{redis_port} }
sub redis_pid { $_[0]{redis_pid} }
sub redis_sock { "$_[0]{dir}/redis/redis.sock" }


sub _redis_close {
    my ($self) = @_;
    close delete $self->{rsock} if $self->{rsock};
    $self->{rbuf} = '';
}


sub _redis_connect {
    my ($self) = @_;

    return $self->{rsock} if $self->{rsock};

    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$self->{redis_port}",
                                  Timeout => $WAIT)
        or die "cannot connect to redis at $self->{redis_port}: $!\n";

    $self->{rsock} = $s;
    $self->{rbuf} = '';

    if (defined $self->{redis_password}) {
        $self->redis('AUTH', $self->{redis_password});
    }

    if ($self->{redis_db}) {
        $self->redis('SELECT', $self->{redis_db});
    }

    return $s;
}


# One command over RESP: status and bulk replies as strings, integers as
# numbers, arrays as array refs, nil as undef; an error reply dies.

sub redis {
    my ($self, @cmd) = @_;

    my $s = $self->_redis_connect;
    my $req = '*' . @cmd . "\r\n";
    $req .= '$' . length($_) . "\r\n$_\r\n" for @cmd;

    unless (defined syswrite($s, $req)) {
        $self->_redis_close;
        die "redis: write failed: $!\n";
    }

    my $reply = $self->_redis_reply;
    die "redis $cmd[0]: $reply->[0]\n" if ref $reply eq 'ApiKey::Test::Err';
    return $reply;
}


sub _redis_fill {
    my ($self) = @_;

    my $sel = IO::Select->new($self->{rsock});

    unless ($sel->can_read($WAIT)) {
        $self->_redis_close;
        die "redis: no reply in $WAIT s\n";
    }

    my $n = sysread($self->{rsock}, $self->{rbuf}, 65536,
                    length $self->{rbuf});

    unless ($n) {
        $self->_redis_close;
        die "redis: connection closed\n";
    }
}


sub _redis_line {
    my ($self) = @_;

    $self->_redis_fill while index($self->{rbuf}, "\r\n") < 0;

    $self->{rbuf} =~ s/^(.*?)\r\n//s;
    return $1;
}


sub _redis_reply {
    my ($self) = @_;

    my $line = $self->_redis_line;
    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));

    return $rest if $type eq '+';
    return 0 + $rest if $type eq ':';
    return bless [$rest], 'ApiKey::Test::Err' if $type eq '-';

    if ($type eq '$') {
        return undef if $rest < 0;
        $self->_redis_fill while length $self->{rbuf} < $rest + 2;
        my $v = substr($self->{rbuf}, 0, $rest + 2, '');
        return substr($v, 0, $rest);
    }

    if ($type eq '*') {
        return undef if $rest < 0;
        return [map { $self->_redis_reply } 1 .. $rest];
    }

    die "redis: bad reply line '$line'\n";
}


# INFO commandstats as { command => calls }, e.g. $s->{evalsha}.

sub redis_commandstats {
    my ($self) = @_;
    my %calls;

    for (split /\r\n/, $self->redis('INFO', 'commandstats')) {
        next unless /^cmdstat_([^:]+):calls=(\d+)(?:.*rejected_calls=(\d+))?/;
        $calls{$1} = $2 + ($3 // 0);
    }

    return \%calls;
}


# Every key with its type and contents, as text, for secret scans.

sub redis_dump {
    my ($self) = @_;
    my $text = '';

    for my $k (sort @{$self->redis('KEYS', '*')}) {
        my $type = $self->redis('TYPE', $k);
        my $v = $type eq 'string' ? [$self->redis('GET', $k)]
              : $type eq 'hash' ? $self->redis('HGETALL', $k)
              : $type eq 'list' ? $self->redis('LRANGE', $k, 0, -1)
              : $type eq 'set' ? $self->redis('SMEMBERS', $k)
              : $type eq 'zset'
                  ? $self->redis('ZRANGE', $k, 0, -1, 'WITHSCORES')
              : ["($type)"];
        $text .= "$k ($type): " . join(' ', map { $_ // '' } @$v) . "\n";
    }

    return $text;
}


# Records every command Redis receives (MONITOR) until monitor_stop, which
# returns the captured text.

sub monitor_start {
    my ($self) = @_;

    my $file = "$self->{dir}/monitor.txt";
    unlink $file;

    my $pid = $self->spawn(sub {
        my $m = bless { redis_port => $self->{redis_port},
                        redis_password => $self->{redis_password} },
                      ref $self;
        open my $out, '>', $file or die "$file: $!";
        $out->autoflush(1);
        $m->redis('MONITOR');
        local $WAIT = 1e6;
        print $out "OK\n";

        while (1) {
            print $out $m->_redis_line, "\n";
        }
    });

    wait_for($WAIT, sub { -s $file })
        or die "MONITOR did not start in $WAIT s\n";

    $self->{monitor} = [$pid, $file];
    return $self;
}


sub monitor_stop {
    my ($self) = @_;

    my ($pid, $file) = @{delete $self->{monitor}};
    my $mark = 'monitor-end-' . int(rand(1e9));

    $self->redis('ECHO', $mark);
    my $seen = wait_for($WAIT, sub { _slurp($file) =~ /\Q$mark\E/ });

    kill 'TERM', $pid;
    $self->wait_children($pid);

    die "MONITOR capture did not see the end mark in $WAIT s\n" unless $seen;
    return _slurp($file);
}


# Bytes sent to Redis and not yet read by it (a frozen Redis keeps them in
# its sockets' receive queues): proves a command is pending.

sub redis_unread {
    my ($self) = @_;
    my $port = sprintf '%04X', $self->{redis_port};
    my $n = 0;

    for (split /\n/, _slurp('/proc/net/tcp')) {
        my @f = split ' ';
        next unless @f > 4 && $f[1] =~ /:$port$/ && $f[3] eq '01';
        $n += hex((split /:/, $f[4])[1]);
    }

    return $n;
}


sub redis_clients {
    my ($self) = @_;

    # connections other than ours (CLIENT LIST shows this one as cmd=client)
    return grep { !/cmd=client\b/ && !/cmd=monitor\b/ }
           split /\n/, $self->redis('CLIENT', 'LIST');
}


############################################################################
# Keys, written as docs/data-model.md describes

sub _keytool {
    my (@args) = @_;

    open my $fh, '-|', $KEYTOOL, @args or die "$KEYTOOL: $!";
    my $out = <$fh>;
    close $fh;
    die "apikey-key $args[0]: failed\n" if $? || !defined $out;
    chomp $out;
    return $out;
}


sub key_hash { _keytool('hash', $_[1]) }

# a well-formed key that is in no store
sub raw_key { _keytool('gen', $_[1] // 'ak') }


sub _random_base62 {
    my ($n) = @_;
    my @a = ('0' .. '9', 'A' .. 'Z', 'a' .. 'z');

    open my $r, '<', '/dev/urandom' or die "/dev/urandom: $!";
    read($r, my $bytes, $n);
    return join '', map { $a[$_ % 62] } unpack 'C*', $bytes;
}


sub create_key {
    my ($self, %o) = @_;

    my $ns = $o{namespace} // 'apikey:';
    my $org = $o{org} // 'acme';
    my $env = $o{env} // 'production';
    my @scopes = @{$o{scopes} || []};
    my $rate = exists $o{rate} ? $o{rate} : '5r/s';
    my $now = time;

    my $raw = _keytool('gen', $o{prefix} // 'ak');
    my $hash = _keytool('hash', $raw);
    my $id = 'k_' . _random_base62(22);
    my $name = $o{name} // "test key $id";

    my ($n, $per, $burst) = (0, 1, 0);

    if (defined $rate) {
        $rate =~ m{^(\d+)r/([sm])$} or die "bad rate '$rate'\n";
        ($n, $per) = ($1, $2 eq 's' ? 1 : 60);
        $burst = $o{burst} // _ceil($n / $per);
    }

    my $exp = $o{expires_at} // 0;
    my $rev = $o{revoked} ? 1 : 0;

    my @record = (
        id => $id, org => $org, name => $name, description => '',
        prefix => substr($raw, 0, 8), env => $env,
        scopes => '[' . join(',', map { "\"$_\"" } @scopes) . ']',
        rate => $n, per => $per, burst => $burst,
        created_at => int($now), updated_at => int($now),
        created_by => 'test', expires_at => $exp,
        revoked_at => $rev ? int($now) : 0, secret => $hash,
    );

    # the secret's packed gate field, docs/data-model.md
    my $gate = join(' ', $rev, $exp, $o{grace} // 0, $n, $per, $burst, $env,
                    @scopes)
               . "\n" . join("\n", $id, $org, substr($raw, 0, 8), $name);

    my @secret = (g => $gate);

    $self->redis('MULTI');
    $self->redis('HSET', "${ns}key:$id", @record);
    $self->redis('ZADD', "${ns}org:$org:keys", int($now * 1000), $id);
    $self->redis('HSET', "$ns\{$hash\}", @secret);
    $self->redis('XADD', "${ns}changes", '*', 'h', $hash);
    my $r = $self->redis('EXEC');
    die "create_key: EXEC failed\n" unless ref $r eq 'ARRAY' && @$r == 4;

    return { key => $raw, id => $id, hash => $hash, org => $org,
             prefix => substr($raw, 0, 8), namespace => $ns };
}


# Changes check values of a key's secret (rev, exp, grace, rate, per,
# burst, env) in place, as the admin API would.

sub update_key {
    my ($self, $k, %set) = @_;

    my $secret = "$k->{namespace}\{$k->{hash}\}";
    my ($checks, $identity) = split /\n/, $self->redis('HGET', $secret, 'g'), 2;
    my @v = split / /, $checks;
    my %at = (rev => 0, exp => 1, grace => 2, rate => 3, per => 4,
              burst => 5, env => 6);

    $v[$at{$_}] = $set{$_} for keys %set;
    $self->redis('HSET', $secret, 'g', join(' ', @v) . "\n$identity");
    $self->redis('XADD', "$k->{namespace}changes", '*', 'h', $k->{hash});
}


# last_used_at of a key's secret in Unix seconds, undef if never used

sub last_used {
    my ($self, $k) = @_;

    return $self->redis('HGET', "$k->{namespace}\{$k->{hash}\}", 'u');
}


sub _ceil { my $x = shift; my $i = int $x; $i < $x ? $i + 1 : $i }


############################################################################
# nginx

sub expand {
    my ($self, $conf, $prefix) = @_;

    my $redis = '127.0.0.1:' . ($self->{redis_port} //= $self->port('redis'));

    my $globals = "daemon off;\nmaster_process on;\npid $prefix/nginx.pid;";

    $conf =~ s/%%TEST_GLOBALS%%/$globals/g;
    $conf =~ s/%%TEST_GLOBALS_HTTP%%/join "\n", map {
                   "${_}_temp_path $prefix\/${_}_temp;"
               } qw(client_body proxy fastcgi uwsgi scgi)/ge;
    $conf =~ s/%%PORT_(\w+)%%/$self->port($1)/ge;
    $conf =~ s/%%REDIS%%/$redis/g;
    $conf =~ s/%%REDIS_SOCK%%/$self->redis_sock/ge;
    $conf =~ s/%%MODULE%%/$MODULE/g;
    $conf =~ s/%%PREFIX%%/$prefix/g;

    return $conf;
}


sub _prefix {
    my ($self, $name) = @_;

    my $prefix = "$self->{dir}/$name";
    make_path("$prefix/logs");
    chmod 0755, $prefix, "$prefix/logs";
    return $prefix;
}


sub write_config {
    my ($self, $conf, $name) = @_;

    my $prefix = $self->_prefix($name // 'nginx');
    open my $fh, '>', "$prefix/nginx.conf" or die "$prefix/nginx.conf: $!";
    print $fh $self->expand($conf, $prefix);
    close $fh;
    return $prefix;
}


# nginx -t on a config: (exit code, what nginx printed)

sub nginx_test {
    my ($self, $conf, $name) = @_;

    $name //= 'conftest';
    my $prefix = $self->write_config($conf, $name);
    unlink "$prefix/error.log";

    my $out = `$NGINX -t -p $prefix/ -c nginx.conf -e error.log 2>&1`;
    return ($? >> 8, $out);
}


# Starts nginx (daemon off, so the pid we fork is the master's) and waits
# until every port it listens on accepts connections.

sub run_nginx {
    my ($self, $conf, %opt) = @_;

    my $name = $opt{name} // 'nginx';
    my $prefix = $self->write_config($conf, $name);
    my $expanded = _slurp("$prefix/nginx.conf");
    my @ports = $expanded =~ /^\s*listen\s+(?:127\.0\.0\.1:)?(\d+)/mg;

    my $pid = $self->_spawn("$prefix/stderr.log", $NGINX, '-p', "$prefix/",
                            '-c', 'nginx.conf', '-e', 'error.log');

    $self->{nginx}{$name} = { pid => $pid, prefix => $prefix };

    my $up = wait_for($WAIT, sub {
        if (waitpid($pid, WNOHANG) != 0) {
            delete $self->{nginx}{$name}{pid};
            die "nginx '$name' exited at start:\n"
                . _tail("$prefix/error.log") . _tail("$prefix/stderr.log");
        }
        !grep { !_can_connect($_) } @ports;
    });

    die "nginx '$name' did not listen on @ports in $WAIT s\n" unless $up;

    # workers must exist before tests count or signal them
    wait_for($WAIT, sub { $self->worker_pids($name) })
        or die "nginx '$name' started no worker in $WAIT s\n";

    return $self;
}


sub nginx_pid { $_[0]{nginx}{$_[1] // 'nginx'}{pid} }
sub prefix { $_[0]{nginx}{$_[1] // 'nginx'}{prefix} }


sub worker_pids {
    my ($self, $name) = @_;

    my $master = $self->nginx_pid($name) or return ();
    my @pids;

    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        # pid (comm) state ppid; under the sanitizers the master may also
        # have an llvm-symbolizer child, which is no worker
        push @pids, $1 if $line =~ /^(\d+) \((.*)\) \S (\d+)/
                          && $3 == $master && $2 eq 'nginx';
    }

    @pids = sort { $a <=> $b } @pids;
    return @pids;
}


# SIGHUP, then wait until every old worker has exited and new ones run.

sub reload_nginx {
    my ($self, $name) = @_;

    my @old = $self->worker_pids($name);
    my %old = map { $_ => 1 } @old;

    kill 'HUP', $self->nginx_pid($name);

    return wait_for($WAIT * 2, sub {
        my @now = $self->worker_pids($name);
        @now && !grep { $old{$_} } @now;
    });
}


# Stops nginx by pid: QUIT (graceful) by default.  Returns true if the
# master exited in time.

sub stop_nginx {
    my ($self, $name, $sig) = @_;

    my $n = $self->{nginx}{$name // 'nginx'} or return 1;
    return _stop_pid(delete $n->{pid}, $sig // 'QUIT');
}


sub error_log {
    my ($self, $name) = @_;
    return _slurp($self->prefix($name) . '/error.log');
}


# a file of an instance's prefix, e.g. $t->read_file('access.log')
sub read_file {
    my ($self, $file, $name) = @_;
    return _slurp($self->prefix($name) . "/$file");
}


# The closing test of every file: no alert, crit, emerg or sanitizer
# report in any nginx instance's error log (or on its stderr).

sub error_log_clean {
    my ($self) = @_;

    for my $name (sort keys %{$self->{nginx}}) {
        my $prefix = $self->{nginx}{$name}{prefix};
        my @bad = grep {
            /\[(alert|crit|emerg)\]|Sanitizer|runtime error:/
        } map { split /\n/, _slurp("$prefix/$_") } qw(error.log stderr.log);

        ok(!@bad, "no alert, crit, emerg or sanitizer lines in ${name}'s logs")
            or diag(join "\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]);
    }
}


# A secret must appear in no file the test wrote: error and access logs of
# every instance, Redis' log, MONITOR captures.  nginx's own debug dump of
# the client's request headers ("http header: ...") is not the module's
# doing and is left out.

sub log_contains_no {
    my ($self, $secret, $what) = @_;
    my @found;

    find({ no_chdir => 1, wanted => sub {
        return unless -f $_ && !/\.conf$/;
        (my $text = _slurp($_)) =~ s/^.*\[debug\].* http header: ".*$//mg;
        push @found, $_ if index($text, $secret) >= 0;
    } }, $self->{dir});

    ok(!@found, 'no raw key in logs' . ($what ? " ($what)" : ''))
        or diag("found in: @found");
}


sub _slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    return <$fh> // '';
}


sub _tail {
    my ($file) = @_;
    my @l = split /\n/, _slurp($file);
    @l = @l[-20 .. -1] if @l > 20;
    return join('', map { "  $_\n" } @l);
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


############################################################################
# HTTP client: one request per connection, raw, so that tests can send
# duplicate headers.  Returns (status, {lowercase name => value, or array
# ref of values when repeated}, body); status is undef on timeout or a
# broken connection.  http_request($port, $raw, socket => $s) reads the
# answer to a request already written on $s.

sub http_get {
    my ($port, $path, $headers, %opt) = @_;

    my $req = "GET $path HTTP/1.0\r\nHost: localhost\r\n";

    for my $name (sort keys %{$headers || {}}) {
        my $v = $headers->{$name} // next;
        $req .= "$name: $_\r\n" for ref $v ? @$v : ($v);
    }

    return http_request($port, "$req\r\n", %opt);
}


sub http_request {
    my ($port, $req, %opt) = @_;

    my $timeout = $opt{timeout} // $WAIT;
    my $s = $opt{socket} || IO::Socket::INET->new(
                PeerAddr => "127.0.0.1:$port", Timeout => $timeout)
        or return (undef, {}, "connect: $!");

    syswrite($s, $req) if length $req;

    my $sel = IO::Select->new($s);
    my $deadline = time + $timeout;
    my $resp = '';

    while (1) {
        my $left = $deadline - time;
        return (undef, {}, "timeout after ${timeout}s: $resp")
            if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($s, $resp, 65536, length $resp);
        last unless $n;
    }

    close $s;

    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    my ($status_line, @lines) = split /\r\n/, $head // '';
    my ($status) = ($status_line // '') =~ m{^HTTP/\d\.\d (\d{3})};
    my %h;

    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $k = lc $k;
        $h{$k} = exists $h{$k} ? [ref $h{$k} ? @{$h{$k}} : $h{$k}, $v] : $v;
    }

    return ($status, \%h, $body // '');
}



my %title = (401 => 'Unauthorized', 403 => 'Forbidden',
             429 => 'Too Many Requests', 503 => 'Service Unavailable');

# One subtest: an RFC 9457 problem response with this status and code.

sub is_problem {
    my ($resp, $status, $code, $name) = @_;
    my ($st, $h, $body) = @$resp;

    subtest $name => sub {
        is($st, $status, "status $status");
        like($h->{'content-type'} // '', qr{^application/problem\+json(;|$)},
             'Content-Type application/problem+json');

        my $j = eval { JSON::PP->new->decode($body) };
        ok(ref $j eq 'HASH', 'body is a JSON object') or diag($body);
        $j = {} unless ref $j eq 'HASH';

        is($j->{type}, 'about:blank', 'type about:blank');
        is($j->{title}, $title{$status}, 'title');
        is($j->{status}, $status, 'status field');
        like($body, qr/"status"\s*:\s*$status\s*[,}]/,
             'status field is a number');
        is($j->{code}, $code, "code $code");
        like($j->{detail} // '', qr/\S/, 'a detail');
    };
}


1;
