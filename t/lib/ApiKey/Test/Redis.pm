package ApiKey::Test::Redis;

# The private redis-server of a test and a small RESP client for it:
# methods of ApiKey::Test (its parent class), on the same object.
#
#   $t->run_redis(password => 'pw', args => ['--appendonly', 'yes']);
#   $t->redis('HSET', 'apikey:key:k_1', 'name', 'x');
#   $t->freeze_redis; ... $t->thaw_redis;
#   $t->monitor_start; ...; my $text = $t->monitor_stop;

use strict;
use warnings;

use File::Path qw(make_path);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);

use ApiKey::Test::Util qw($WAIT wait_for _can_connect _stop_pid _slurp
                          _tail);


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


# Every key with its type and contents, as text, for secret scans; with
# streams => 1 the streams' entries too (the change log: hashes only).

sub redis_dump {
    my ($self, %o) = @_;
    my $text = '';

    for my $k (sort @{$self->redis('KEYS', '*')}) {
        my $type = $self->redis('TYPE', $k);
        my $v = $type eq 'string' ? [$self->redis('GET', $k)]
              : $type eq 'hash' ? $self->redis('HGETALL', $k)
              : $type eq 'list' ? $self->redis('LRANGE', $k, 0, -1)
              : $type eq 'set' ? $self->redis('SMEMBERS', $k)
              : $type eq 'zset'
                  ? $self->redis('ZRANGE', $k, 0, -1, 'WITHSCORES')
              : $type eq 'stream' && $o{streams}
                  ? [map { ($_->[0], @{$_->[1]}) }
                         @{$self->redis('XRANGE', $k, '-', '+')}]
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

1;
