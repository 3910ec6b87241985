package ApiKey::Chaos::Servers;

# What the fault campaign runs nginx against, and the faults done to it
# from outside: one redis-server behind the campaign's fault proxy
# (ApiKey::Chaos::Proxy, one listener per nginx instance), or a Sentinel
# set (a primary with appendonly, a replica, three redis-sentinels, as
# t/gate_sentinel.t starts them) that nginx finds through the Sentinels.
#
#   my $srv = ApiKey::Chaos::Servers->new($t, sentinel => 0, aof => 1);
#   $srv->start;                       # Redis (or the set) and the proxy
#   $srv->apikey_redis('a');           # the apikey_redis line's argument
#   $srv->proxy('stall 300 all');
#   $srv->sigstop(500);  $srv->kill_redis(300, empty => 1);
#   $srv->failover('kill');
#   $srv->redis(@cmd);                 # one command to the primary
#   $srv->stop;
#
# Each method returns the facts the checker needs (times in Unix seconds,
# Time::HiRes), which the timeline writes to the run's event log.

use strict;
use warnings;

use File::Path qw(make_path remove_tree);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use ApiKey::Chaos::Proxy;
use ApiKey::Test::Util qw(wait_for _can_connect _stop_pid);

my $MASTER = 'mymaster';


sub new {
    my ($class, $t, %o) = @_;

    return bless { t => $t, sentinel => $o{sentinel}, aof => $o{aof},
                   pids => {} }, $class;
}


sub _spawn {
    my ($self, $name, @cmd) = @_;
    my $pid = $self->{t}->_spawn($self->{t}->dir . "/$name.log", @cmd);
    $self->{pids}{$name} = $pid;
    # stopped with the test's other children if the run dies
    $self->{t}{children}{$pid} = 1;
    return $pid;
}


# one command to the Redis or Sentinel at a port, on a connection of its
# own; undef if it fails

sub at {
    my ($self, $port, @cmd) = @_;
    my $r = bless { redis_port => $port, dir => $self->{t}->dir },
                  'ApiKey::Test';
    no warnings qw(once);
    local $ApiKey::Test::Redis::WAIT = 3;
    my $v = eval { $r->redis(@cmd) };
    $r->_redis_close;
    return $v;
}


sub start {
    my ($self) = @_;
    my $t = $self->{t};

    my @persist = $self->{aof} || $self->{sentinel}
        ? ('--appendonly', 'yes', '--appendfsync', 'always') : ();

    $t->run_redis(args => \@persist);
    $self->{primary} = $t->redis_port;

    return $self->_start_sentinels if $self->{sentinel};

    $self->{proxy_ports} = { a => $t->port('proxy_a'),
                             b => $t->port('proxy_b') };
    $self->{control} = $t->port('proxy_control');
    $self->{proxy_log} = $t->dir . '/proxy.log';

    my $upstream = '127.0.0.1:' . $t->redis_port;
    my %o = (upstream => $upstream, listeners => $self->{proxy_ports},
             control => $self->{control}, log => $self->{proxy_log});

    $self->{proxy_pid} = $t->spawn(sub {
        ApiKey::Chaos::Proxy->new(%o)->run;
    });

    wait_for(10, sub { _can_connect($self->{control}) })
        or die "the fault proxy did not listen in 10 s\n";

    return $self;
}


sub _start_sentinels {
    my ($self) = @_;
    my $t = $self->{t};
    my $dir = $t->dir;

    my $p1 = $t->redis_port;
    my $p2 = $t->port('replica');
    my @sp = map { $t->port("sentinel$_") } 1 .. 3;

    $self->{ports} = { $p1 => 'redis', $p2 => 'replica' };
    $self->{sentinels} = \@sp;

    make_path("$dir/replica");
    $self->{replica_args} = [
        'redis-server', '--port', $p2, '--bind', '127.0.0.1', '--save', '',
        '--appendonly', 'yes', '--appendfsync', 'always',
        '--dir', "$dir/replica", '--replicaof', '127.0.0.1', $p1,
        '--logfile', ''];
    $self->_spawn('replica', @{$self->{replica_args}});

    wait_for(10, sub { ($self->at($p2, 'INFO', 'replication') // '')
                       =~ /master_link_status:up/ })
        or die "the replica did not follow the primary in 10 s\n";

    my $bin = ApiKey::Test::which('redis-sentinel')
        or die "redis-sentinel is not installed\n";

    for my $i (0 .. 2) {
        make_path("$dir/s$i");
        open my $fh, '>', "$dir/s$i/sentinel.conf" or die $!;
        print $fh "port $sp[$i]\nbind 127.0.0.1\ndir $dir/s$i\n"
                  . "sentinel monitor $MASTER 127.0.0.1 $p1 2\n"
                  . "sentinel down-after-milliseconds $MASTER 2000\n"
                  . "sentinel failover-timeout $MASTER 5000\n";
        close $fh;
        $self->_spawn("sentinel$i", $bin, "$dir/s$i/sentinel.conf");
    }

    wait_for(20, sub {
        !grep {
            my $s = $self->at($_, 'SENTINEL', 'sentinels', $MASTER);
            my $r = $self->at($_, 'SENTINEL', 'replicas', $MASTER);
            !(ref $s && @$s == 2 && ref $r && @$r == 1);
        } @sp
    }) or die "the Sentinels did not find each other and the replica "
              . "in 20 s\n";

    return $self;
}


sub apikey_redis {
    my ($self, $inst) = @_;

    return "sentinel:$MASTER "
           . join(' ', map { "sentinel=127.0.0.1:$_" } @{$self->{sentinels}})
        if $self->{sentinel};

    return "127.0.0.1:$self->{proxy_ports}{$inst}";
}


sub proxy_log { $_[0]{proxy_log} }


# the port of the primary now (the Sentinels' answer on a Sentinel set)

sub primary_port {
    my ($self) = @_;

    return $self->{t}->redis_port unless $self->{sentinel};

    for my $sp (@{$self->{sentinels}}) {
        my $a = $self->at($sp, 'SENTINEL', 'get-master-addr-by-name',
                          $MASTER);
        return $a->[1] if ref $a;
    }

    return $self->{primary};
}


sub redis {
    my ($self, @cmd) = @_;
    return $self->at($self->primary_port, @cmd);
}


############################################################################
# faults

sub proxy {
    my ($self, $cmd) = @_;
    my $t = time;
    my $reply = eval { ApiKey::Chaos::Proxy::control($self->{control}, $cmd) }
                // "err $@";
    chomp $reply;
    return { ev => 'proxy', t => $t, cmd => $cmd, reply => $reply };
}


sub sigstop {
    my ($self, $ms) = @_;
    my $pid = $self->{t}->redis_pid;

    my $t = time;
    kill 'STOP', $pid;
    sleep($ms / 1000);
    kill 'CONT', $pid;

    return { ev => 'sigstop', t => $t, t_end => time, ms => $ms };
}


sub client_pause {
    my ($self, $ms) = @_;
    my $t = time;
    my $r = $self->redis('CLIENT', 'PAUSE', $ms, 'ALL');
    return { ev => 'client_pause', t => $t, t_end => $t + $ms / 1000,
             ms => $ms, reply => $r // 'failed' };
}


sub client_kill {
    my ($self) = @_;
    my $t = time;
    my $n = $self->redis('CLIENT', 'KILL', 'TYPE', 'normal');
    return { ev => 'client_kill', t => $t, killed => $n // 'failed' };
}


# SIGKILL, down for $ms, then the same server again: empty (its data
# directory cleared) or from its AOF

sub kill_redis {
    my ($self, $ms, %o) = @_;
    my $t = $self->{t};

    my $pid = $t->redis_pid;
    my $down = time;
    kill 'KILL', $pid;
    waitpid($pid, 0);
    $t->_redis_close;

    if ($o{empty}) {
        my $dir = $t->dir . '/redis';
        remove_tree(grep { !/redis\.(log|sock)$/ } glob "$dir/*");
    }

    sleep($ms / 1000);

    my $started = time;
    my $ok = eval { $t->start_redis; 1 };
    my $err = $@;

    # from the AOF, Redis answers LOADING until it has read it
    wait_for(10, sub { ($self->redis('PING') // '') eq 'PONG' }) if $ok;

    return { ev => 'redis_down', t => $down, t_end => time,
             t_started => $started, empty => $o{empty} ? 1 : 0,
             ok => $ok ? 1 : 0, $ok ? () : (error => $err) };
}


# A failover on the Sentinel set: 'kill' (SIGKILL of the primary; once a
# replica is promoted the old primary is started again, and the
# Sentinels make it a replica) or 'graceful' (SENTINEL FAILOVER).

sub failover {
    my ($self, $how) = @_;
    my $t = $self->{t};
    my $old = $self->primary_port;
    my $name = $self->{ports}{$old};
    my $start = time;
    my $in_step;

    if ($how eq 'graceful') {
        # a graceful failover needs a replica in step
        my $ready = wait_for(10, sub {
            ($self->at($old, 'INFO', 'replication') // '')
                =~ /slave0:.*state=online/
        });

        return { ev => 'failover', how => $how, t => $start,
                 skipped => 'no replica online in 10 s' } unless $ready;

        $start = time;
        my $r = $self->at($self->{sentinels}[0], 'SENTINEL', 'FAILOVER',
                          $MASTER);

        return { ev => 'failover', how => $how, t => $start,
                 skipped => 'SENTINEL FAILOVER refused' }
            unless ($r // '') eq 'OK';
    } else {
        # a primary whose replica is not in step (one the Sentinels have
        # not yet repointed after a failover) takes what it has alone
        $in_step = (($self->at($old, 'INFO', 'replication') // '')
                    =~ /slave0:.*state=online/) ? 1 : 0;

        my $pid = $name eq 'redis' ? $t->redis_pid : $self->{pids}{replica};
        kill 'KILL', $pid;
        waitpid($pid, 0);
        $t->_redis_close;
    }

    my $promoted = wait_for(30, sub {
        my $p = $self->primary_port;
        $p != $old && ($self->at($p, 'ROLE') // [''])->[0] eq 'master'
            && time;
    });

    my $e = { ev => 'failover', how => $how, t => $start,
              t_end => $promoted || time, promoted => $promoted ? 1 : 0,
              from => $old, to => $self->primary_port,
              defined $in_step ? (in_step => $in_step) : () };

    if ($how eq 'kill') {
        # the old primary comes back with its AOF
        if ($name eq 'redis') {
            eval { $t->start_redis };
        } else {
            delete $t->{children}{$self->{pids}{replica}};
            $self->_spawn('replica', @{$self->{replica_args}});
        }
    }

    return $e;
}


sub stop {
    my ($self) = @_;
    my $t = $self->{t};

    if (my $pid = delete $self->{proxy_pid}) {
        _stop_pid($pid, 'TERM', 5);
        delete $t->{children}{$pid};
    }

    for my $name (sort keys %{$self->{pids}}) {
        my $pid = delete $self->{pids}{$name};
        _stop_pid($pid, 'TERM', 5);
        delete $t->{children}{$pid};
    }

    $t->stop_redis if $t->redis_pid;
}


1;
