package ApiKey::Test::Util;

# Small helpers every part of the test harness uses: bounded waits,
# stopping a process by pid, reading files, finding a binary.

use strict;
use warnings;

use Exporter qw(import);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw($WAIT which wait_for _can_connect _stop_pid _slurp
                    _tail);

# every wait in the harness is bounded by this many seconds
our $WAIT = 10;


sub which {
    my ($name) = @_;

    for my $d (split /:/, $ENV{PATH} || '', -1) {
        return "$d/$name" if -x "$d/$name";
    }

    return -x "/usr/sbin/$name" ? "/usr/sbin/$name" : undef;
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



1;
