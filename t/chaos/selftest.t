#!/usr/bin/perl

# The fault campaign's checker is shown to catch each of SPEC 8's five
# invariants broken: a clean run's evidence, made up here, passes; the
# same evidence doctored to break one invariant is reported, as that
# invariant, with its numbers.  Also: what the invariants allow (an
# outage's own bucket with apikey_cache, a killed worker's crash, 503s
# past max_stale) is not reported, and the fault proxy frames RESP.
#
# No server runs: the evidence is files in a temporary directory, read by
# the same code that reads a real run's (ApiKey::Chaos::Evidence).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use File::Path qw(make_path);
use File::Temp qw(tempdir);
use JSON::PP;
use Test::More;

use ApiKey::Chaos::Check;
use ApiKey::Chaos::Proxy;

my $JSON = JSON::PP->new->canonical;
my $T0 = 1_800_000_000;
my $ID = 'k_0000000000000000000005';
my $FREE = 'k_000000000000000000000f';


# A clean run: key k5 (5r/s burst 5) allowed at 4 requests a second for
# 4 s at instance a (21 requests, allowance 5 + 5 x 4 = 25), revoked
# through a at T0 + 5 and refused after; key kfree (unlimited) paced at
# b; apikey_cache on both, max_stale 30s.  Returns the evidence as data.

sub clean {
    my %e = (
        meta => { seed => 0, family => 'selftest', variant => 'cache',
                  duration => 6, t0 => $T0, timeout => 0.1,
                  stopped => { a => 1, b => 1 } },
        events => [
            (map { { ev => 'config', inst => $_, t => $T0 - 2,
                     conf => { cache => 1, max_stale => '30s' } } } qw(a b)),
            { ev => 'key', slot => 'k5', id => $ID, t => $T0 - 1,
              limit => { rate => '5r/s', burst => 5 }, prefix => 'ak_AAAAA' },
            { ev => 'key', slot => 'kfree', id => $FREE, t => $T0 - 1,
              limit => undef, prefix => 'ak_FFFFF' },
            { ev => 'admin', op => 'revoke', slot => 'k5', id => $ID,
              inst => 'a', t_send => $T0 + 4.99, t_reply => $T0 + 5,
              status => 200 },
        ],
        lines => { a => [], b => [] },
        clients => [],
        usage => {},
        errors => { a => ["2026/01/01 00:00:00 [notice] 10#10: start worker "
                          . "process 11"], b => [] },
    );

    for my $i (0 .. 20) {
        add(\%e, 'a', $T0 + $i * 0.2, 200, 'ok', $ID);
    }
    for my $i (0 .. 4) {
        add(\%e, 'a', $T0 + 5.1 + $i * 0.1, 401, 'revoked', $ID);
    }
    for my $i (0 .. 29) {
        add(\%e, 'b', $T0 + $i * 0.2, 200, 'ok', $FREE);
    }

    return \%e;
}


# one request: its access log line, its client record, its usage count

my $n = 0;

sub add {
    my ($e, $inst, $start, $status, $ast, $id, %o) = @_;

    my $req = "${inst}p." . ++$n;
    my $rt = $o{rt} // 0.002;
    my $pid = $o{pid} // 11;

    push @{$e->{lines}{$inst}}, sprintf(
        '%.3f %.3f %d %d %d s:%s k:%s r:%s /api/', $start + $rt, $rt,
        $pid, $n, $status, $ast, $id, $req) unless $o{unlogged};

    push @{$e->{clients}}, sprintf('%s %s %s %s %s %.4f %.4f %s', $req,
        $inst, $id eq $ID ? 'k5' : 'kfree', $id, 'ak_AAAAA', $start - 0.0005,
        $start + ($o{took} // $rt + 0.001), $o{client_status} // $status);

    my %kind = (ok => 'allowed', limited => 'limited', revoked => 'refused');
    $e->{usage}{$id}{$_} //= 0 for qw(allowed limited refused);
    $e->{usage}{$id}{$kind{$ast}}++ if $kind{$ast} && !$o{uncounted};
}


# the schedule's SIGKILL of a worker, and nginx's [alert] about it

sub kill_worker {
    my ($e, $inst, $pid, $t) = @_;

    push @{$e->{events}}, { ev => 'worker_kill', inst => $inst, pid => $pid,
                            t => $t };
    push @{$e->{errors}{$inst}}, '2026/01/01 00:00:00 [alert] 10#10: worker '
                                 . "process $pid exited on signal 9";
}


sub write_evidence {
    my ($e) = @_;

    my $dir = tempdir('apikey-chaos-selftest-XXXXXXXX', TMPDIR => 1,
                      CLEANUP => 1);
    make_path("$dir/a", "$dir/b", "$dir/clients");

    my $put = sub {
        my ($file, $text) = @_;
        open my $fh, '>', "$dir/$file" or die "$file: $!";
        print $fh $text;
        close $fh;
    };

    $put->('meta.json', $JSON->encode($e->{meta}));
    $put->('usage.json', $JSON->encode($e->{usage}));
    $put->('events.jsonl', join '', map { $JSON->encode($_) . "\n" }
                                    @{$e->{events}});
    $put->('clients/x.txt', join '', map { "$_\n" } @{$e->{clients}});
    $put->('heartbeat.txt', join '', map { "@$_\n" } @{$e->{stalls} || []});

    for my $i (qw(a b)) {
        $put->("$i/chaos.log", join '', map { "$_\n" } @{$e->{lines}{$i}});
        $put->("$i/error.log", join '', map { "$_\n" } @{$e->{errors}{$i}});
    }

    return $dir;
}


sub violations { ApiKey::Chaos::Check::check_dir(write_evidence($_[0])) }


# exactly the violations of one invariant (and of that kind), at least one

sub caught {
    my ($e, $inv, $what, $name) = @_;

    my $v = violations($e);
    my @mine = grep { $_->{inv} == $inv && (!$what || $_->{what} eq $what) }
               @$v;
    my @other = grep { $_->{inv} != $inv } @$v;

    ok(@mine && !@other, $name)
        or diag(explain($v));
    note("  reported: $_->{msg}") for @mine;
    return $mine[0];
}


sub clean_ok {
    my ($e, $name) = @_;
    my $v = violations($e);
    ok(!@$v, $name) or diag(explain($v));
}


clean_ok(clean(), 'the clean run has no violation');

###############################################################################
# 1. allowed beyond the allowance

{
    my $e = clean();
    add($e, 'b', $T0 + 1 + $_ * 0.1, 200, 'ok', $ID) for 0 .. 9;
    my $v = caught($e, 1, 'allowed',
                   'invariant 1: 31 allowed against an allowance of 25');
    is("$v->{allowed} $v->{allowance}", '31 25', 'with the numbers')
        if $v;
}

{
    # exactly the allowance passes: 4 more, 25 in all
    my $e = clean();
    add($e, 'b', $T0 + 1 + $_ * 0.1, 200, 'ok', $ID) for 0 .. 3;
    clean_ok($e, 'invariant 1: 25 allowed against 25 is no violation');
}

{
    # a long Redis stop with apikey_cache: each instance may spend its own
    # bucket (burst 5 + 5r/s x (1.5 s + 1 s)) on top
    my $e = clean();
    push @{$e->{events}}, { ev => 'sigstop', t => $T0 + 1, t_end => $T0 + 2.5,
                            ms => 1500 };
    add($e, 'b', $T0 + 1 + $_ * 0.1, 200, 'ok', $ID) for 0 .. 9;
    clean_ok($e, 'invariant 1: an outage with the cache adds each '
                 . 'instance\'s bucket');

    $_->{conf}{cache} = 0 for grep { $_->{ev} eq 'config' } @{$e->{events}};
    caught($e, 1, 'allowed', 'invariant 1: ... but not without the cache');
}

{
    # a stall shorter than the timeout is no outage
    my $e = clean();
    push @{$e->{events}}, { ev => 'proxy', t => $T0 + 1,
                            cmd => 'stall 80 all', reply => 'ok' };
    add($e, 'b', $T0 + 1 + $_ * 0.1, 200, 'ok', $ID) for 0 .. 9;
    caught($e, 1, 'allowed',
           'invariant 1: a stall under the timeout adds nothing');
}

###############################################################################
# 2. revocation

{
    my $e = clean();
    add($e, 'a', $T0 + 5.05, 200, 'ok', $ID);
    caught($e, 2, 'revoked',
           'invariant 2: allowed at the revoking instance after the reply');
}

{
    my $e = clean();
    add($e, 'b', $T0 + 5.5, 200, 'ok', $ID);
    clean_ok($e, 'invariant 2: allowed at the other instance within 1 s '
                 . 'is no violation');
    add($e, 'b', $T0 + 6.2, 200, 'ok', $ID);
    caught($e, 2, 'revoked',
           'invariant 2: ... but 1 s after the reply it is');
}

{
    # after a restore it may pass again
    my $e = clean();
    push @{$e->{events}}, { ev => 'admin', op => 'restore', slot => 'k5',
                            id => $ID, inst => 'b', t_send => $T0 + 5.6,
                            t_reply => $T0 + 5.61, status => 200 };
    add($e, 'a', $T0 + 5.7, 200, 'ok', $ID);
    clean_ok($e, 'invariant 2: allowed after a restore is no violation');
}

###############################################################################
# 3. usage

{
    my $e = clean();
    $e->{usage}{$ID}{allowed} += 4;
    my $v = caught($e, 3, 'allowed',
                   'invariant 3: usage counted 4 allowed twice');
    is("$v->{usage} $v->{logged}", '25 21', 'with the numbers') if $v;
}

{
    my $e = clean();
    $e->{usage}{$FREE}{allowed} -= 3;
    caught($e, 3, 'allowed', 'invariant 3: 3 allowed not counted');
}

{
    my $e = clean();
    $e->{usage}{$ID}{refused} -= 1;
    caught($e, 3, 'refused', 'invariant 3: a refusal not counted');
}

{
    # a SIGKILLed worker may not have sent its last second's counts
    my $e = clean();
    add($e, 'b', $T0 + 3.5 + $_ * 0.1, 200, 'ok', $FREE, pid => 12,
        uncounted => 1) for 0 .. 4;
    kill_worker($e, 'b', 12, $T0 + 4.1);
    clean_ok($e, 'invariant 3: a killed worker\'s last second may be '
                 . 'missing (and its SIGKILL is no crash)');
}

# a sibling's allowed requests of the second before a worker's SIGKILL,
# uncounted: with leases the killed worker may have carried the
# instance's lease uses; without, they are a loss

for my $lease (1, 0) {
    my $e = clean();
    $e->{events}[1]{conf}{lease} = $lease;
    add($e, 'b', $T0 + 3.5 + $_ * 0.1, 200, 'ok', $FREE, pid => 13,
        uncounted => 1) for 0 .. 4;
    kill_worker($e, 'b', 12, $T0 + 4.1);

    if ($lease) {
        clean_ok($e, 'invariant 3: with leases, a killed worker may take '
                     . 'its instance\'s last second of lease uses along');
    } else {
        caught($e, 3, 'allowed', 'invariant 3: without leases, a '
                                 . 'sibling\'s counts are no killed '
                                 . 'worker\'s');
    }
}

###############################################################################
# 4. crash, hang, alert

{
    my $e = clean();
    push @{$e->{errors}{a}}, '2026/01/01 00:00:01 [alert] 10#10: worker '
                             . 'process 11 exited on signal 11 (core dumped)';
    caught($e, 4, 'crash', 'invariant 4: a worker that crashed');
}

{
    my $e = clean();
    push @{$e->{errors}{b}}, '2026/01/01 00:00:01 [alert] 20#20: *5 open '
                             . 'socket #12 left in connection 3';
    caught($e, 4, 'alert', 'invariant 4: an [alert] line');
}

{
    my $e = clean();
    add($e, 'b', $T0 + 2.05, 200, 'ok', $FREE, took => 2.5);
    caught($e, 4, 'hang', 'invariant 4: a request answered after 2.5 s');
}

{
    # ... unless the machine itself stood still meanwhile
    my $e = clean();
    add($e, 'b', $T0 + 2.05, 200, 'ok', $FREE, took => 2.5);
    $e->{stalls} = [[$T0 + 2.1, $T0 + 2.7]];
    clean_ok($e, 'invariant 4: 2.5 s of which the machine stalled 0.6 s '
                 . 'is no hang');
}

{
    my $e = clean();
    add($e, 'b', $T0 + 2.05, 0, '', $FREE, unlogged => 1,
        client_status => 'none');
    caught($e, 4, 'unanswered',
           'invariant 4: a connection closed without an answer');
}

{
    my $e = clean();
    $e->{meta}{stopped}{b} = 0;
    caught($e, 4, 'hang', 'invariant 4: nginx that did not stop on QUIT');
}

###############################################################################
# 5. 503 with the cache

{
    my $e = clean();
    add($e, 'b', $T0 + 2, 503, 'unavailable', '');
    caught($e, 5, '503', 'invariant 5: a 503 with the cache and no fault');

    push @{$e->{events}}, { ev => 'sigstop', t => $T0 + 1.9,
                            t_end => $T0 + 2.5, ms => 600 };
    caught($e, 5, '503', 'invariant 5: ... or a fault shorter than '
                         . 'max_stale');

    $_->{conf}{max_stale} = '1s'
        for grep { $_->{ev} eq 'config' } @{$e->{events}};
    $e->{events}[-1]{t} = $T0 + 0.5;
    clean_ok($e, 'invariant 5: a 503 past max_stale is no violation');
}

{
    my $e = clean();
    $_->{conf}{cache} = 0 for grep { $_->{ev} eq 'config' } @{$e->{events}};
    add($e, 'b', $T0 + 2, 503, 'unavailable', '');
    clean_ok($e, 'invariant 5: a 503 without the cache is no violation');
}

###############################################################################
# the proxy's RESP framing

my $cmd = "*2\r\n\$4\r\nPING\r\n\$1\r\nx\r\n";
is(ApiKey::Chaos::Proxy::resp_end("$cmd+OK\r\n", 0), length $cmd,
   'RESP: a command ends after its last bulk');
is(ApiKey::Chaos::Proxy::resp_end("*2\r\n\$4\r\nPING\r\n\$1\r\n", 0), undef,
   'RESP: an incomplete command has no end yet');
my $reply = "*3\r\n:1\r\n\$-1\r\n*1\r\n-ERR x\r\n";
is(ApiKey::Chaos::Proxy::resp_end("$reply:2\r\n", 0), length $reply,
   'RESP: nested arrays, nil and errors');
is(ApiKey::Chaos::Proxy::command_name("*2\r\n\$7\r\nevalsha\r\n\$1\r\nx\r\n"),
   'EVALSHA', 'RESP: the command name');

done_testing;
