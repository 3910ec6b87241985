package ApiKey::Chaos::Schedule;

# The fault campaign's schedules: from a seed, a family of faults, a
# configuration variant, a run length and a timed list of events (faults
# and admin changes).  The same seed gives the same schedule (Perl's
# srand and rand; nothing else is drawn here), so a seed replays.
#
#   my $s = ApiKey::Chaos::Schedule::make(17);
#   # { seed, family, variant, duration, events => [{at, kind, ...}, ...] }
#
# The family and the variant are read off the seed so that seeds 1..40
# meet every pair of the 10 families and 4 variants, and any 20 seeds in
# a row meet each family twice, with two variants; the rest is drawn.
#
# Families (what goes wrong):
#   proxy         the fault proxy: drop, delay, stall (under and past
#                 apikey_redis_timeout), reset_after_request, duplicate,
#                 to all connections, one instance's or one connection
#   sigstop       Redis SIGSTOP then SIGCONT, short (< timeout) and long
#   kill_empty    Redis SIGKILL, restarted empty; the keys are made again
#   kill_aof      Redis SIGKILL, restarted from its AOF (appendfsync always)
#   client_kill   CLIENT KILL TYPE normal
#   client_pause  CLIENT PAUSE, short (< timeout) and long
#   reload        nginx reloads adding or removing apikey_metrics,
#                 apikey_cache, apikey_rate_lease, or changing the zone size
#   worker_kill   SIGKILL of one nginx worker
#   sentinel      a Sentinel set: primary SIGKILL (failover) and
#                 SENTINEL FAILOVER (graceful)
#   clock         steps of an nginx host's wall clock, back and forward
#                 (an hour, a day, half a minute), one instance at a time
#
# Variants (the http-level configuration both instances start with):
#   none          no apikey_cache
#   cache         apikey_cache (max_stale 30s)
#   lease         apikey_cache + apikey_rate_lease 100ms
#   closed        apikey_cache with max_stale 1s, apikey_fail_mode closed:
#                 a fault past max_stale gets 503s, a shorter one none
#
# Admin changes, in every family, each through an instance drawn: revoke
# and restore of the 5r/s key, PATCH of its rate limit (and back), PATCH
# of the 50r/s key's scopes (and back), rotation of the 50r/s key with a
# grace, PATCH of the 1000r/s key's rate limit, rotation of the
# unlimited key with a grace (which a replica judges alone), revocation of
# the unlimited key near the end (it stays revoked).

use strict;
use warnings;

our @FAMILIES = qw(proxy sigstop kill_empty kill_aof client_kill
                   client_pause reload worker_kill sentinel clock);
our @VARIANTS = qw(none cache lease closed);

# the keys every run makes: slot => limit (undef: unlimited)
our %KEYS = (
    k5    => { rate => '5r/s', burst => 5 },
    k50   => { rate => '50r/s', burst => 50 },
    k1000 => { rate => '1000r/s', burst => 100 },
    kfree => undef,
);


sub _pick { $_[int rand @_] }

sub _between { my ($lo, $hi) = @_; $lo + rand($hi - $lo) }

sub _ms { sprintf '%.3f', $_[0] }


sub make {
    my ($seed) = @_;

    die "seed must be a positive integer\n" unless $seed =~ /^[1-9]\d*$/;

    srand($seed);

    my $family = $FAMILIES[($seed - 1) % @FAMILIES];
    my $variant = $VARIANTS[($seed - 1 + int(($seed - 1) / @FAMILIES))
                            % @VARIANTS];
    my $duration = 15 + int rand 11;

    my $s = { seed => $seed, family => $family, variant => $variant,
              duration => $duration, events => [] };

    my $gen = __PACKAGE__->can("_faults_$family");
    $gen->($s);

    _admin($s);

    $s->{events} = [sort { $a->{at} <=> $b->{at} } @{$s->{events}}];
    $_->{at} = _ms($_->{at}) + 0 for @{$s->{events}};

    return $s;
}


sub _add {
    my ($s, %e) = @_;
    push @{$s->{events}}, \%e;
}


# faults happen between 2 s and 4 s before the end, apart from each other

sub _slots {
    my ($s, $n, $gap) = @_;
    my $lo = 2;
    my $hi = $s->{duration} - 4;
    my @at;

    my $span = ($hi - $lo) / $n;

    for my $i (0 .. $n - 1) {
        my $a = $lo + $i * $span;
        push @at, _between($a, $a + $span - ($gap // 0.5));
    }

    return @at;
}


sub _target { _pick(qw(all all a b one one:a one:b)) }


sub _faults_proxy {
    my ($s) = @_;

    my @kinds = qw(drop delay stall_short stall_long reset_after_request
                   duplicate);
    my $n = 4 + int rand 3;

    # every kind once before any twice, in a drawn order
    my @order;
    while (@order < $n) {
        my @k = @kinds;
        while (@k && @order < $n) {
            push @order, splice(@k, int rand @k, 1);
        }
    }

    my @at = _slots($s, $n, 1.5);

    for my $i (0 .. $n - 1) {
        my $kind = $order[$i];
        my $target = _target();

        if ($kind eq 'delay') {
            # both ways: a round trip takes 2 x MS more, under the timeout
            my $ms = 5 + int rand 26;
            my $len = _between(0.5, 1.5);
            _add($s, at => $at[$i], kind => 'proxy',
                 cmd => "delay $ms $target");
            _add($s, at => $at[$i] + $len, kind => 'proxy',
                 cmd => "delay 0 $target");
        } elsif ($kind eq 'stall_short') {
            _add($s, at => $at[$i], kind => 'proxy',
                 cmd => 'stall ' . (20 + int rand 41) . " $target");
        } elsif ($kind eq 'stall_long') {
            _add($s, at => $at[$i], kind => 'proxy',
                 cmd => 'stall ' . (150 + int rand 851) . " $target");
        } else {
            _add($s, at => $at[$i], kind => 'proxy', cmd => "$kind $target");
        }
    }
}


sub _short_or_long {
    return rand() < 0.4 ? 20 + int rand 41 : 150 + int rand 1351;
}


sub _faults_sigstop {
    my ($s) = @_;
    my $n = 2 + int rand 3;

    _add($s, at => $_, kind => 'sigstop', ms => _short_or_long())
        for _slots($s, $n, 1.6);
}


sub _faults_kill_empty {
    my ($s) = @_;
    _add($s, at => $s->{duration} * _between(0.3, 0.5), kind => 'kill_redis',
         empty => 1, down_ms => 200 + int rand 801);
}


sub _faults_kill_aof {
    my ($s) = @_;
    my $n = 1 + int rand 2;

    _add($s, at => $_, kind => 'kill_redis', empty => 0,
         down_ms => 200 + int rand 801)
        for _slots($s, $n, 2.5);
}


sub _faults_client_kill {
    my ($s) = @_;
    my $n = 3 + int rand 4;

    _add($s, at => $_, kind => 'client_kill') for _slots($s, $n);
}


sub _faults_client_pause {
    my ($s) = @_;
    my $n = 2 + int rand 3;

    _add($s, at => $_, kind => 'client_pause', ms => _short_or_long())
        for _slots($s, $n, 1.6);
}


sub _faults_reload {
    my ($s) = @_;
    my $n = 3 + int rand 3;

    for my $at (_slots($s, $n, 1)) {
        _add($s, at => $at, kind => 'reload', inst => _pick(qw(a b)),
             change => _pick(qw(metrics cache lease zone)));
    }
}


sub _faults_worker_kill {
    my ($s) = @_;
    my $n = 2 + int rand 3;

    for my $at (_slots($s, $n)) {
        _add($s, at => $at, kind => 'worker_kill', inst => _pick(qw(a b)),
             which => int rand 2);
    }
}


sub _faults_sentinel {
    my ($s) = @_;

    my @how = @{ _pick(['kill'], ['graceful'], [qw(kill graceful)],
                    [qw(graceful kill)]) };
    my @at = @how == 1 ? ($s->{duration} * _between(0.3, 0.5))
                       : ($s->{duration} * _between(0.2, 0.3),
                          $s->{duration} * _between(0.55, 0.65));

    _add($s, at => $at[$_], kind => 'failover', how => $how[$_])
        for 0 .. $#how;
}


# a step back early, on one instance, so that the graces of the
# rotations end on a clock an hour or a day behind; the other instance's
# clock steps either way; the first comes back (a step forward) near the
# end

sub _faults_clock {
    my ($s) = @_;
    my @at = (_slots($s, 2), $s->{duration} - 1.5);
    my $inst = _pick(qw(a b));
    my $other = $inst eq 'a' ? 'b' : 'a';

    _add($s, at => $at[0], kind => 'clock', inst => $inst,
         offset => _pick(-3600, -86400, -30));
    _add($s, at => $at[1], kind => 'clock', inst => $other,
         offset => _pick(3600, 30, -3600));
    _add($s, at => $at[2], kind => 'clock', inst => $inst, offset => 0);
}


sub _admin {
    my ($s) = @_;
    my $d = $s->{duration};
    my $inst = sub { _pick(qw(a b)) };

    my $rv = $d * _between(0.15, 0.3);
    _add($s, at => $rv, kind => 'admin', inst => $inst->(), op => 'revoke',
         key => 'k5');
    _add($s, at => $rv + _between(1.5, 3), kind => 'admin', inst => $inst->(),
         op => 'restore', key => 'k5');

    my $pt = $d * _between(0.45, 0.55);
    _add($s, at => $pt, kind => 'admin', inst => $inst->(), op => 'limit',
         key => 'k5', rate_limit => { rate => '10r/s', burst => 10 });
    _add($s, at => $pt + _between(2, 4), kind => 'admin', inst => $inst->(),
         op => 'limit', key => 'k5',
         rate_limit => { rate => '5r/s', burst => 5 });

    my $sc = $d * _between(0.2, 0.35);
    _add($s, at => $sc, kind => 'admin', inst => $inst->(), op => 'scopes',
         key => 'k50', scopes => ['chaos:read', 'chaos:write']);
    _add($s, at => $sc + _between(2, 5), kind => 'admin', inst => $inst->(),
         op => 'scopes', key => 'k50', scopes => ['chaos:read']);

    _add($s, at => $d * _between(0.35, 0.45), kind => 'admin',
         inst => $inst->(), op => 'rotate', key => 'k50',
         grace => 2 + int rand 3);

    _add($s, at => $d * _between(0.6, 0.7), kind => 'admin',
         inst => $inst->(), op => 'limit', key => 'k1000',
         rate_limit => { rate => '800r/s', burst => 80 });

    _add($s, at => $d * _between(0.5, 0.6), kind => 'admin',
         inst => $inst->(), op => 'rotate', key => 'kfree',
         grace => 2 + int rand 3);

    _add($s, at => $d * _between(0.75, 0.85), kind => 'admin',
         inst => $inst->(), op => 'revoke', key => 'kfree');
}


# the one-line description of a schedule, for the verdict

sub describe {
    my ($s) = @_;

    my @f = map {
        my $e = $_;
        $e->{kind} eq 'proxy' ? "proxy '$e->{cmd}'"
        : join(' ', $e->{kind},
               map { "$_=$e->{$_}" } grep { !/^(at|kind)$/ && !ref $e->{$_} }
               sort keys %$e)
    } grep { $_->{kind} ne 'admin' } @{$s->{events}};

    return "family $s->{family}, variant $s->{variant}, "
           . "$s->{duration} s: " . join('; ', @f);
}


1;
