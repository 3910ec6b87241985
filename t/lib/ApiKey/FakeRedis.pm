package ApiKey::FakeRedis;

# A server that speaks RESP on a loopback port, run as a child of the
# test, for what a real Redis or Sentinel never does: hostile replies,
# forged text, odd addresses.  Each command a client sends is handed to
# the test's answer sub as a list of strings; what the sub returns is
# written back as is (raw RESP), undef closes the connection.  Every
# command received is appended to a log file, one per line.
#
#   my $f = ApiKey::FakeRedis->start($t, sub {
#       my (@cmd) = @_;
#       return "+PONG\r\n" if uc $cmd[0] eq 'PING';
#       return "*2147483647\r\n";
#   });
#   $f->port; $f->commands;  # [[cmd, args...], ...]
#
# Or one answer per mode, the mode the test set last answering every
# command but PING (an unknown mode closes the connection):
#
#   my $f = ApiKey::FakeRedis->modes($t, array => "*2147483647\r\n", ...);
#   $f->mode('array');

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use POSIX ();

use ApiKey::Test;


sub start {
    my ($class, $t, $answer) = @_;

    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                       LocalPort => 0, Listen => 64,
                                       ReuseAddr => 1)
        or die "fake redis: cannot listen: $!\n";

    my $self = bless { port => $listen->sockport,
                       log => $t->dir . '/fake-redis-'
                              . $listen->sockport . '.log' }, $class;

    open my $fh, '>', $self->{log} or die "$self->{log}: $!";
    close $fh;

    $self->{pid} = $t->spawn(sub { $self->_serve($listen, $answer) });

    close $listen;

    return $self;
}


sub modes {
    my ($class, $t, %answers) = @_;

    my $file = $t->dir . '/fake-redis-mode';

    my $self = $class->start($t, sub {
        my ($cmd) = @_;

        return "+PONG\r\n" if uc $cmd eq 'PING';

        open my $fh, '<', $file or return "-ERR no mode\r\n";
        my $mode = do { local $/; <$fh> };

        return $answers{$mode};
    });

    $self->{mode} = $file;

    return $self;
}


sub mode {
    my ($self, $mode) = @_;

    open my $fh, '>', "$self->{mode}.new" or die "$self->{mode}: $!";
    print $fh $mode;
    close $fh;

    rename "$self->{mode}.new", $self->{mode} or die "$self->{mode}: $!";
}


sub port { $_[0]{port} }


# the commands received so far, each an array ref

sub commands {
    my ($self) = @_;

    open my $fh, '<', $self->{log} or return [];
    return [map { chomp; [split /\t/] } grep { $_ ne "\0accept\n" } <$fh>];
}


# how many connections it accepted so far

sub accepts {
    my ($self) = @_;

    open my $fh, '<', $self->{log} or return 0;
    return scalar grep { $_ eq "\0accept\n" } <$fh>;
}


sub _serve {
    my ($self, $listen, $answer) = @_;

    my $sel = IO::Select->new($listen);
    my %buf;

    # a client that closes while a large reply is written is no reason to
    # stop answering the others
    $SIG{PIPE} = 'IGNORE';

    open my $log, '>>', $self->{log} or die "$self->{log}: $!";
    $log->autoflush(1);

    while (1) {
        for my $s ($sel->can_read(1)) {

            if ($s == $listen) {
                my $c = $listen->accept or next;
                print $log "\0accept\n";
                $sel->add($c);
                $buf{$c} = '';
                next;
            }

            my $n = sysread($s, $buf{$s}, 65536, length $buf{$s});

            unless ($n) {
                $sel->remove($s);
                delete $buf{$s};
                close $s;
                next;
            }

            while (my $cmd = _command(\$buf{$s})) {
                print $log join("\t", @$cmd), "\n";

                my $reply = $answer->(@$cmd);

                unless (defined $reply) {
                    $sel->remove($s);
                    delete $buf{$s};
                    close $s;
                    last;
                }

                syswrite($s, $reply);
            }
        }
    }
}


# one complete command off the front of the buffer, or undef

sub _command {
    my ($buf) = @_;

    return undef unless $$buf =~ /^\*(\d+)\r\n/;

    my ($n, $pos) = ($1, length("*$1\r\n"));
    my @cmd;

    for (1 .. $n) {
        return undef unless substr($$buf, $pos) =~ /^\$(\d+)\r\n/;
        my $len = $1;
        $pos += length("\$$len\r\n");
        return undef if length($$buf) < $pos + $len + 2;
        push @cmd, substr($$buf, $pos, $len);
        $pos += $len + 2;
    }

    substr($$buf, 0, $pos, '');

    return \@cmd;
}


1;
