package ApiKey::Chaos::Traffic;

# The fault campaign's clients.  On each nginx instance, for the whole
# run: one paced client (every key under its rate, plus requests to
# locations whose scope a key lacks, so that refusals are counted too)
# and three hammer clients (the 5r/s and 50r/s keys well above their
# rates, the 1000r/s key under it), each a process of its own sending
# one request per connection.
#
# The raw keys come from a JSON file the timeline rewrites when a key
# changes (a rotation, keys made again after Redis came back empty):
#   { "k5": { "id": "k_...", "secrets": [ { "key": "ak_...",
#             "until": null | Unix time } ... ] }, ... }
# secrets[0] is the newest; an older one is used, by every client, until
# 3 s after its grace ends, so that its refusal is seen at both instances
# (at the one that did not rotate, a second after the grace).
#
# Every request carries "X-Chaos-Req: <client>.<n>", which nginx logs,
# and is written to the client's record file, one line each:
#   <req> <instance> <slot> <key id> <prefix> <sent> <done> <status>
# the prefix being the display prefix (first 8 characters) of the secret
# sent, times in Unix seconds (Time::HiRes), status "none" when the
# connection closed without an answer, "timeout" after 5 s.

use strict;
use warnings;

use IO::Handle;
use JSON::PP;
use Time::HiRes qw(sleep time);

use ApiKey::HTTP qw(http_request);

# requests a second per key, per instance
our %PACED = (k5 => 2, k50 => 10, k1000 => 20, kfree => 10);

# requests a second per key, per hammer client (three per instance)
our %HAMMER = (k5 => 7, k50 => 35, k1000 => 70);
our $HAMMERS = 3;

# the paced client's requests at scoped locations (k50's key): /scoped/
# asks for a scope no key has, /write/ one the key has at times
our %SCOPED = ('/scoped/' => 2, '/write/' => 2);

our $CLIENT_TIMEOUT = 5;


# Forks the clients of one instance; returns their pids.  They begin at
# $o{start} and stop at $o{start} + $o{seconds}.

sub start {
    my ($t, %o) = @_;
    my @pids;

    push @pids, $t->spawn(sub {
        _client(%o, name => "$o{inst}p", plan => _paced_plan(),
                old_secrets => 1);
    });

    for my $h (1 .. $HAMMERS) {
        push @pids, $t->spawn(sub {
            _client(%o, name => "$o{inst}h$h", plan => _hammer_plan(),
                    old_secrets => 1);
        });
    }

    return @pids;
}


# The machine's own stalls: a process that sleeps 10 ms at a time and
# writes down each sleep that took over 100 ms ("<from> <to>"), so that
# the checker does not take a machine that stopped for nginx hanging.

sub heartbeat {
    my ($t, %o) = @_;

    return $t->spawn(sub {
        $SIG{TERM} = 'DEFAULT';
        open my $out, '>', $o{file} or die "$o{file}: $!";
        $out->autoflush(1);
        my $end = $o{start} + $o{seconds};
        my $last = time;

        while ($last < $end) {
            sleep 0.01;
            my $now = time;
            printf $out "%.4f %.4f\n", $last, $now if $now - $last > 0.1;
            $last = $now;
        }
    });
}


sub _paced_plan {
    my @p = map { [$_, '/api/', $PACED{$_}] } sort keys %PACED;
    push @p, map { ['k50', $_, $SCOPED{$_}] } sort keys %SCOPED;
    return \@p;
}


sub _hammer_plan {
    return [map { [$_, '/api/', $HAMMER{$_}] } sort keys %HAMMER];
}


sub _read_keys {
    my ($file, $st) = @_;

    my @s = stat $file or return $st->{keys};
    my $sig = "$s[9].$s[7].$s[1]";
    return $st->{keys} if defined $st->{sig} && $st->{sig} eq $sig;

    open my $fh, '<', $file or return $st->{keys};
    my $text = do { local $/; <$fh> };
    close $fh;

    my $k = eval { decode_json($text) } or return $st->{keys};
    $st->{sig} = $sig;
    return $st->{keys} = $k;
}


# One client: each plan entry [slot, path, rate] is due every 1/rate s;
# the client sends the most overdue one, and skips what fell more than
# a second behind rather than bursting to catch up.

sub _client {
    my (%o) = @_;

    $SIG{TERM} = 'DEFAULT';

    open my $rec, '>', "$o{dir}/$o{name}.txt" or die "$o{name}: $!";
    $rec->autoflush(0);

    my $end = $o{start} + $o{seconds};
    my @plan = map { { slot => $_->[0], path => $_->[1],
                       every => 1 / $_->[2] } } @{$o{plan}};
    my $n = 0;
    my %st;
    my %flip;

    # spread the first requests over the first period
    $_->{due} = $o{start} + rand($_->{every}) for @plan;

    my $wait = $o{start} - time;
    sleep($wait) if $wait > 0;

    while (1) {
        my $now = time;
        last if $now >= $end;

        my ($e) = sort { $a->{due} <=> $b->{due} } @plan;

        if ($e->{due} > $now) {
            my $d = $e->{due} - $now;
            sleep($d > 0.05 ? 0.05 : $d);
            next;
        }

        $e->{due} += $e->{every};
        $e->{due} = $now if $e->{due} < $now - 1;

        my $keys = _read_keys($o{keys_file}, \%st) or next;
        my $k = $keys->{$e->{slot}} or next;

        my @usable = (0);

        if ($o{old_secrets}) {
            for my $i (1 .. $#{$k->{secrets}}) {
                my $until = $k->{secrets}[$i]{until};
                push @usable, $i if defined $until && $now < $until + 3;
            }
        }

        my $si = $usable[$flip{$e->{slot}}++ % @usable];
        my $req = "$o{name}." . ++$n;

        my $raw = "GET $e->{path} HTTP/1.0\r\nHost: localhost\r\n"
                  . "X-API-Key: $k->{secrets}[$si]{key}\r\n"
                  . "X-Chaos-Req: $req\r\n\r\n";

        my $sent = time;
        my ($status, undef, $body) = http_request($o{port}, $raw,
                                                  timeout => $CLIENT_TIMEOUT);
        my $done = time;

        $status //= ($body // '') =~ /^timeout/ ? 'timeout' : 'none';

        printf $rec "%s %s %s %s %s %.4f %.4f %s\n", $req, $o{inst},
            $e->{slot}, $k->{id}, substr($k->{secrets}[$si]{key}, 0, 8),
            $sent, $done, $status;
    }

    close $rec;
}


1;
