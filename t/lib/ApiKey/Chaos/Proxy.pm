package ApiKey::Chaos::Proxy;

# The fault campaign's TCP proxy between nginx and Redis.  nginx's
# apikey_redis names one of the proxy's listeners (one per nginx
# instance, so that a fault can hit one instance); every connection
# accepted there is paired with a new connection to Redis.  It reads RESP
# both ways, so it knows where each command and each reply ends, and it
# forwards whole commands and whole replies only.
#
# Faults, switched at run time through a line protocol on a control port
# (one command a line, answered "ok ..." or "err ..."):
#
#   drop TARGET                  close both sides of the pairs now
#   delay MS TARGET              hold each forwarded command or reply MS
#                                (delay 0 TARGET ends it)
#   stall MS TARGET              forward nothing for MS, then resume
#   reset_after_request TARGET   forward the next script call (EVALSHA,
#                                EVAL, FCALL) to Redis, then reset the
#                                nginx side (RST) before its reply; the
#                                Redis side is closed once it replied
#   duplicate TARGET             send the next script call to Redis twice
#                                and swallow the second reply, as a
#                                retrying proxy would
#   heal                         end every fault
#   pairs                        "ok a=N b=M": live pairs per listener
#
# TARGET: "all", a listener's name (every pair of that instance, and for
# delay and stall also the pairs it makes later), "one" / "one:NAME"
# (the oldest live pair, of any listener or of NAME), or "last" /
# "last:NAME" (the newest).
#
# A pair closes when either side closes (so CLIENT KILL on Redis reaches
# nginx).  Every accept, close and fault applied is logged with a
# timestamp (Unix seconds, milliseconds):
#
#   1733560000.123 accept a pair=7
#   1733560000.456 fault stall 300 all pairs=4
#   1733560001.002 close pair=7 by redis
#
#   my $p = ApiKey::Chaos::Proxy->new(upstream => "127.0.0.1:$rport",
#       listeners => { a => $pa, b => $pb }, control => $pc, log => $file);
#   $p->run;                      # in a child process; never returns
#   ApiKey::Chaos::Proxy::control($pc, 'stall 300 all');   # elsewhere

use strict;
use warnings;

use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use IO::Handle;
use IO::Select;
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_LINGER IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time);

my $SCRIPT_CALL = qr/^(?:EVALSHA|EVAL|EVALSHA_RO|EVAL_RO|FCALL)$/i;


sub new {
    my ($class, %o) = @_;

    my $self = bless {
        upstream => $o{upstream}, pairs => {}, by_fd => {}, next_id => 1,
        lst => {}, ctl => undef, ctl_conns => {}, log_file => $o{log},
        # listener-wide faults: delay (seconds), stall_until (time)
        fault => {},
    }, $class;

    for my $name (sort keys %{$o{listeners}}) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => $o{listeners}{$name},
                                      Listen => 128, ReuseAddr => 1)
            or die "proxy: cannot listen on $o{listeners}{$name}: $!\n";
        $s->blocking(0);
        $self->{lst}{$name} = $s;
        $self->{fault}{$name} = { delay => 0, stall_until => 0 };
    }

    $self->{ctl} = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                         LocalPort => $o{control},
                                         Listen => 16, ReuseAddr => 1)
        or die "proxy: cannot listen on control port $o{control}: $!\n";

    open $self->{log}, '>>', $o{log} or die "proxy: $o{log}: $!\n";
    $self->{log}->autoflush(1);

    return $self;
}


sub logf {
    my ($self, $fmt, @a) = @_;
    printf { $self->{log} } "%.3f $fmt\n", time, @a;
}


############################################################################
# RESP framing: the end offset of the one complete value starting at
# $pos, or undef while it is incomplete.  RESP2 and RESP3 types; a line
# without a type byte is an inline command.

sub resp_end {
    my ($buf, $pos) = @_;
    my $len = length $buf;
    my $need = 1;

    while ($need > 0) {
        return undef if $pos >= $len;
        my $eol = index($buf, "\r\n", $pos);
        return undef if $eol < 0;

        my $t = substr($buf, $pos, 1);
        my $n = substr($buf, $pos + 1, $eol - $pos - 1);
        $pos = $eol + 2;
        $need--;

        if ($t eq '$' || $t eq '=' || $t eq '!') {
            if ($n =~ /^\d+$/) {
                $pos += $n + 2;
                return undef if $pos > $len;
            }
        } elsif ($t eq '*' || $t eq '~' || $t eq '>') {
            $need += $n if $n =~ /^\d+$/;
        } elsif ($t eq '%') {
            $need += 2 * $n if $n =~ /^\d+$/;
        } elsif ($t eq '|') {
            $need += 2 * $n + 1 if $n =~ /^\d+$/;
        }
    }

    return $pos;
}


# the command name of a complete command frame

sub command_name {
    my ($frame) = @_;

    return uc $1 if $frame =~ /^\*\d+\r\n\$\d+\r\n([^\r]*)\r\n/;
    return uc $1 if $frame =~ /^(\S+)/;
    return '';
}


############################################################################
# pairs

sub _accept {
    my ($self, $name) = @_;

    my $c = $self->{lst}{$name}->accept or return;

    my $s = IO::Socket::INET->new(PeerAddr => $self->{upstream},
                                  Timeout => 1);

    unless ($s) {
        $self->logf('accept %s refused: upstream %s: %s', $name,
                    $self->{upstream}, $!);
        close $c;
        return;
    }

    for ($c, $s) {
        $_->blocking(0);
        setsockopt($_, IPPROTO_TCP, TCP_NODELAY, 1);
    }

    my $p = {
        id => $self->{next_id}++, lst => $name, c => $c, s => $s,
        cbuf => '', sbuf => '', to_s => [], to_c => [], replies => [],
        delay => 0, stall_until => 0, arm => undef, reset_c => 0,
        close_s_at => undef,
    };

    $self->{pairs}{$p->{id}} = $p;
    $self->{by_fd}{fileno $c} = [$p, 'c'];
    $self->{by_fd}{fileno $s} = [$p, 's'];
    $self->logf('accept %s pair=%d', $name, $p->{id});
}


sub _close_pair {
    my ($self, $p, $why) = @_;

    return if $p->{dead}++;

    for my $side (qw(c s)) {
        my $sock = $p->{$side} or next;
        delete $self->{by_fd}{fileno $sock};
        close $sock;
    }

    delete $self->{pairs}{$p->{id}};
    $self->logf('close pair=%d by %s', $p->{id}, $why);
}


# RST to nginx: SO_LINGER with a zero timeout, then close

sub _reset_client {
    my ($self, $p) = @_;

    my $c = delete $p->{c} or return;
    delete $self->{by_fd}{fileno $c};
    setsockopt($c, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
    close $c;
    $p->{to_c} = [];
    $p->{close_s_at} = time + 1;
    $self->logf('applied reset pair=%d nginx side, after the command '
                . 'reached redis', $p->{id});
}


sub _delay_of {
    my ($self, $p) = @_;
    my $f = $self->{fault}{$p->{lst}};
    return $p->{delay} > $f->{delay} ? $p->{delay} : $f->{delay};
}


sub _stalled_until {
    my ($self, $p) = @_;
    my $f = $self->{fault}{$p->{lst}};
    return $p->{stall_until} > $f->{stall_until}
           ? $p->{stall_until} : $f->{stall_until};
}


# bytes from nginx: whole commands go to Redis' queue

sub _from_client {
    my ($self, $p, $data) = @_;

    $p->{cbuf} .= $data;
    my $release = time + $self->_delay_of($p);

    while (length $p->{cbuf}) {
        my $end = resp_end($p->{cbuf}, 0) // last;
        my $frame = substr($p->{cbuf}, 0, $end, '');
        my $arm = $p->{arm};

        if ($arm && command_name($frame) =~ $SCRIPT_CALL) {
            $p->{arm} = undef;

            if ($arm eq 'duplicate') {
                push @{$p->{to_s}}, [$release, $frame], [$release, $frame];
                push @{$p->{replies}}, 'fwd', 'swallow';
                $self->logf('applied duplicate pair=%d %s', $p->{id},
                            command_name($frame));
                next;
            }

            # reset_after_request: this command goes, nothing after it
            push @{$p->{to_s}}, [$release, $frame, 'reset'];
            push @{$p->{replies}}, 'swallow';
            $p->{cbuf} = '';
            $p->{reset_c} = 1;
            $self->logf('armed reset pair=%d sends %s', $p->{id},
                        command_name($frame));
            last;
        }

        push @{$p->{to_s}}, [$release, $frame];
        push @{$p->{replies}}, 'fwd';
    }
}


# bytes from Redis: whole replies go to nginx' queue, or are swallowed

sub _from_server {
    my ($self, $p, $data) = @_;

    $p->{sbuf} .= $data;
    my $release = time + $self->_delay_of($p);

    while (length $p->{sbuf}) {
        my $end = resp_end($p->{sbuf}, 0) // last;
        my $frame = substr($p->{sbuf}, 0, $end, '');
        my $what = shift @{$p->{replies}} // 'fwd';

        if ($what eq 'swallow' || !$p->{c}) {
            $self->logf('applied swallow pair=%d reply of %d bytes',
                        $p->{id}, length $frame) if $what eq 'swallow';
            next;
        }

        push @{$p->{to_c}}, [$release, $frame];
    }

    # a reset pair's Redis side is closed once the command is answered
    if (!$p->{c} && !@{$p->{replies}}) {
        $self->_close_pair($p, 'reset (redis answered)');
    }
}


# writes what is due; false if the pair broke

sub _flush {
    my ($self, $p, $now) = @_;

    return 1 if $now < $self->_stalled_until($p);

    for my $dir (['to_s', 's'], ['to_c', 'c']) {
        my ($q, $side) = @$dir;
        my $sock = $p->{$side} or next;

        while (my $item = $p->{$q}[0]) {
            last if $item->[0] > $now;

            my $n = syswrite($sock, $item->[1]);

            unless (defined $n) {
                last if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                $self->_close_pair($p, "write error to "
                                       . ($side eq 's' ? 'redis' : 'nginx')
                                       . ": $!");
                return 0;
            }

            substr($item->[1], 0, $n, '');
            last if length $item->[1];

            shift @{$p->{$q}};

            if (($item->[2] // '') eq 'reset') {
                $self->_reset_client($p);
            }
        }
    }

    return 1;
}


sub _pending {
    my ($p) = @_;
    return @{$p->{to_s}} || @{$p->{to_c}};
}


############################################################################
# control

sub _targets {
    my ($self, $target) = @_;

    my @live = sort { $a->{id} <=> $b->{id} }
               grep { $_->{c} } values %{$self->{pairs}};

    return @live if $target eq 'all';
    return grep { $_->{lst} eq $target } @live if $self->{lst}{$target};

    if ($target =~ /^(one|last)(?::(\w+))?$/) {
        my ($which, $name) = ($1, $2);
        my @p = $name ? grep { $_->{lst} eq $name } @live : @live;
        return @p ? ($which eq 'one' ? $p[0] : $p[-1]) : ();
    }

    return;
}


sub _listeners_of {
    my ($self, $target) = @_;
    return sort keys %{$self->{lst}} if $target eq 'all';
    return ($target) if $self->{lst}{$target};
    return ();
}


sub command {
    my ($self, $line) = @_;

    my ($cmd, @a) = split ' ', $line;
    $cmd //= '';
    my $now = time;

    if ($cmd eq 'heal') {
        for my $f (values %{$self->{fault}}) {
            $f->{delay} = 0;
            $f->{stall_until} = 0;
        }
        for my $p (values %{$self->{pairs}}) {
            $p->{delay} = 0;
            $p->{stall_until} = 0;
            $p->{arm} = undef;
        }
        $self->logf('fault heal');
        return 'ok';
    }

    if ($cmd eq 'pairs') {
        my %n = map { $_ => 0 } keys %{$self->{lst}};
        $n{$_->{lst}}++ for grep { $_->{c} } values %{$self->{pairs}};
        return 'ok ' . join ' ', map { "$_=$n{$_}" } sort keys %n;
    }

    my $ms = ($cmd eq 'delay' || $cmd eq 'stall') ? shift @a : undef;
    my $target = shift @a // '';

    return "err bad MS" if defined $ms && $ms !~ /^\d+$/;

    my @p = $self->_targets($target);
    my @l = $target =~ /^(?:one|last)/ ? () : $self->_listeners_of($target);

    return "err unknown target '$target'" unless @p || @l
        || $target =~ /^(?:one|last)/;

    if ($cmd eq 'drop') {
        $self->logf('fault drop %s pairs=%d (%s)', $target, scalar @p,
                    join(',', map { $_->{id} } @p));
        $self->_close_pair($_, 'drop') for @p;
    } elsif ($cmd eq 'delay') {
        $_->{delay} = $ms / 1000 for @p;
        $self->{fault}{$_}{delay} = $ms / 1000 for @l;
        $self->logf('fault delay %d %s pairs=%d', $ms, $target, scalar @p);
    } elsif ($cmd eq 'stall') {
        $_->{stall_until} = $now + $ms / 1000 for @p;
        $self->{fault}{$_}{stall_until} = $now + $ms / 1000 for @l;
        $self->logf('fault stall %d %s pairs=%d (%s)', $ms, $target,
                    scalar @p, join(',', map { $_->{id} } @p));
    } elsif ($cmd eq 'reset_after_request' || $cmd eq 'duplicate') {
        $_->{arm} = $cmd eq 'duplicate' ? 'duplicate' : 'reset' for @p;
        $self->logf('fault %s %s pairs=%d (%s)', $cmd, $target, scalar @p,
                    join(',', map { $_->{id} } @p));
    } else {
        return "err unknown command '$cmd'";
    }

    return 'ok pairs=' . scalar @p;
}


sub _control_read {
    my ($self, $sock) = @_;

    my $n = sysread($sock, my $buf, 4096);

    if (!$n) {
        delete $self->{ctl_conns}{fileno $sock};
        close $sock;
        return;
    }

    my $c = $self->{ctl_conns}{fileno $sock};
    $c->{buf} .= $buf;

    while ($c->{buf} =~ s/^([^\n]*)\n//) {
        my $reply = $self->command($1);
        syswrite($sock, "$reply\n");
    }
}


############################################################################
# the loop

sub run {
    my ($self) = @_;

    $SIG{PIPE} = 'IGNORE';
    $SIG{TERM} = sub { $self->logf('stop'); exit 0 };

    $self->logf('start upstream %s', $self->{upstream});

    while (1) {
        my $now = time;
        my $rd = IO::Select->new($self->{ctl}, values %{$self->{lst}},
                                 map { $_->{sock} } values %{$self->{ctl_conns}});
        my $wr = IO::Select->new;
        my $wake = $now + 0.1;

        for my $p (values %{$self->{pairs}}) {
            if ($p->{close_s_at} && $now > $p->{close_s_at}) {
                $self->_close_pair($p, 'reset (no reply in 1 s)');
                next;
            }

            $rd->add($p->{c}) if $p->{c};
            $rd->add($p->{s});

            next unless _pending($p);

            my $stall = $self->_stalled_until($p);
            # (no grep over the queues' heads: it would make an empty
            # queue's first element)
            my @due = map { @$_ ? $_->[0][0] : () } $p->{to_s}, $p->{to_c};
            my $at = (sort { $a <=> $b } @due)[0];
            $at = $stall if $stall > $at;

            if ($at <= $now) {
                $wr->add($p->{s}) if @{$p->{to_s}};
                $wr->add($p->{c}) if $p->{c} && @{$p->{to_c}};
            } elsif ($at < $wake) {
                $wake = $at;
            }
        }

        my $wait = $wake - $now;
        $wait = 0 if $wait < 0;

        my ($r, $w) = IO::Select->select($rd, $wr, undef, $wait);

        for my $sock (@{$r || []}) {
            # closed with its pair earlier in this pass
            next unless defined fileno $sock;

            if ($sock == $self->{ctl}) {
                my $c = $self->{ctl}->accept or next;
                $self->{ctl_conns}{fileno $c} = { sock => $c, buf => '' };
                next;
            }

            if (my ($name) = grep { $self->{lst}{$_} == $sock }
                             keys %{$self->{lst}})
            {
                $self->_accept($name);
                next;
            }

            if ($self->{ctl_conns}{fileno $sock}) {
                $self->_control_read($sock);
                next;
            }

            my $e = $self->{by_fd}{fileno $sock} or next;
            my ($p, $side) = @$e;
            next if $p->{dead};

            my $n = sysread($sock, my $buf, 65536);

            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                $self->_close_pair($p, ($side eq 's' ? 'redis' : 'nginx')
                                       . " error: $!");
                next;
            }

            if ($n == 0) {
                $self->_close_pair($p, $side eq 's' ? 'redis' : 'nginx');
                next;
            }

            if ($side eq 'c') {
                $self->_from_client($p, $buf);
            } else {
                $self->_from_server($p, $buf);
            }
        }

        $now = time;

        for my $p (values %{$self->{pairs}}) {
            $self->_flush($p, $now) if _pending($p);
        }
    }
}


############################################################################
# the client side of the control port

sub control {
    my ($port, $line) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => 5)
        or die "proxy control: cannot connect to $port: $!\n";

    syswrite($s, "$line\n");

    my $sel = IO::Select->new($s);
    my $buf = '';
    my $deadline = time + 5;

    while ($buf !~ /\n/) {
        my $left = $deadline - time;
        die "proxy control: no answer to '$line' in 5 s\n"
            if $left <= 0 || !$sel->can_read($left);
        sysread($s, $buf, 4096, length $buf) or last;
    }

    close $s;
    chomp $buf;
    die "proxy control: '$line': $buf\n" unless $buf =~ /^ok/;
    return $buf;
}


1;
