package ApiKey::Chaos::Check;

# The fault campaign's checker: SPEC section 8's five invariants ("Exact
# under faults"), asserted on what one run left behind (read by
# ApiKey::Chaos::Evidence).  It returns the violations; it never looks
# at the clock or the machine, so a run checks the same way on a slow
# machine as on a fast one, and saved evidence can be checked again.
#
#   my $v = ApiKey::Chaos::Check::check_dir($dir);
#   # [ { inv => 1, key => 'k50 k_...', what => 'allowed', msg => '...' } ]
#
# Notation.  Times are Unix seconds.  A request's start is nginx's
# $msec - $request_time and its end $msec (whole milliseconds of the same
# clock: the decision on a request lies within [start, end]).  T is
# apikey_redis_timeout (0.1 s).  For a key: B and r are its burst and
# rate (tokens a second) in force, "allowed" the requests logged with
# $apikey_status ok.
#
# Outage windows, per instance, from the run's facts (never from the
# module's own logs), overlapping ones merged:
#   - Redis SIGSTOPped or CLIENT PAUSEd for longer than T:
#       [stop, resumed + 1 s]  (SPEC 4: requests pass again within 1 s)
#   - Redis SIGKILLed:                     [kill, answering again + 1 s]
#   - a failover on the Sentinel set:      [kill or command, promoted + 1 s]
#   - a proxy stall of MS > T of all or the instance's connections:
#                                          [stall, stall + MS + 1 s]
#   - a proxy delay of MS > T likewise:    [delay, its end + 1 s]
#   - a proxy drop or reset of all or the instance's connections, and
#     CLIENT KILL: [fault, the proxy's first new connection of the
#     instance after it], when that took longer than T (a dropped
#     connection to a live Redis is no outage: SPEC 4)
#   A fault of one connection is never an outage of the instance, nor is
#   a stall, delay or pause shorter than T, a duplicated command, a
#   reload or a killed worker.
#
# 1. Allowed never exceeds the allowance.  For each limited key, with
#    t1 = first allowed start - 1 ms and t2 = last allowed end + 1 ms:
#
#      allowed <= floor( sum over limit segments s meeting [t1, t2] of
#                          B_s + r_s * |s ∩ [t1, t2]|
#                      + sum over instances i with apikey_cache, over
#                          outage windows w of i meeting [t1, t2] of
#                          B_w + r_w * |w ∩ [t1, t2]|
#                      + B_max * (Redis restarts empty + failovers,
#                          in [t1, t2]) )
#
#    A limit segment is the time one rate limit is in force: the key's
#    creation to the reply of the PATCH that changed it, then from that
#    PATCH's sending (the change happened in between) to the next reply.
#    Each segment's B_s is the new bucket a PATCH starts (Redis deletes
#    the old one).  A PATCH whose outcome is unknown (no answer, 5xx)
#    opens a segment at its sending without closing the one before.
#    B_w, r_w: the largest burst and rate of the segments meeting w (one
#    bucket per instance kept in its zone, SPEC 8).  A restart empty, and
#    a failover (replication is asynchronous: a SIGKILLed primary's last
#    writes, and those a primary takes between SENTINEL FAILOVER's
#    promotion and its own demotion, are lost), can each give back at
#    most one full bucket: a bucket's state going back in time cannot
#    hold more than a full bucket.
#
# 2. Revocation.  For a revocation answered 200 through instance X at
#    time R, until the sending of a later restore (answered 200, or with
#    an unknown outcome): no allowed request of the key that started
#    after R at X, or after R + 1 s at the other instance (failovers
#    included: they extend nothing).  Likewise a secret rotated out with
#    a grace through X: none of its requests allowed that started after
#    the reply's previous_key_expires_at E (SPEC 5: it keeps working
#    until then; R + G for a grace of G s if the reply had none) at X,
#    after E + 1 s elsewhere.
#
# 3. Usage.  For each key Redis did not lose (no restart empty in its
#    life), per kind (allowed = ok; limited; refused = revoked, expired,
#    forbidden): the count in Redis (the secret's hour fields plus the
#    usage hashes, docs/data-model.md) U and in both access logs L:
#
#      L - K  <=  U  <=  L + N
#
#    K: that kind's log lines of a SIGKILLed worker (by $pid) in the
#    second before its kill (with leases in force, the allowed ones of
#    its whole instance then: the instance's lease uses, told to one
#    worker's tally once a second, go to Redis with that worker's next
#    pass, and a worker killed meanwhile takes them along), and of every
#    worker from a second before a failover to the promotion (counts it
#    had not sent, or the new primary never received); N: the key's
#    client requests that no log line records (a killed worker's requests
#    in flight, checked or not).
#
# 4. No crash, no hang, no alert.  No "exited on signal" in an error log
#    but SIGKILL of a worker the schedule killed (and nginx's own [alert]
#    about it); no other [alert], [crit], [emerg] or sanitizer line; every
#    client request answered within T + 1.9 s (the stated slack for a
#    loaded 2-core machine: the answer may wait a timeout, a reconnect
#    and a re-send) plus the time the machine itself stalled meanwhile
#    (a heartbeat process's 10 ms sleeps that took over 100 ms: nothing
#    ran then, nginx included); no request closed without an answer but
#    those in flight at a worker the schedule killed; every admin call
#    answered (in 8 s); both instances stopped within 20 s of QUIT.
#
# 5. With apikey_cache in force at the instance, no 503 unless it began
#    in an outage window w at least max_stale - 0.2 s after w began (the
#    replica answers for max_stale after the last contact, which may be
#    a little before the fault).

use strict;
use warnings;

use Time::Local qw(timegm);

use List::Util qw(max min sum0 first);
use POSIX qw(floor);

use ApiKey::Chaos::Evidence;

our $RECONNECT = 1;     # SPEC 4: requests pass again within 1 s
our $HANG_SLACK = 1.9;
our $STALE_EARLY = 0.2;

my @INST = @ApiKey::Chaos::Evidence::INSTANCES;


sub check_dir { check(ApiKey::Chaos::Evidence::load($_[0])) }


# the checks, and how near each limited key came to its allowance

sub explain {
    my ($dir) = @_;
    my $ev = ApiKey::Chaos::Evidence::load($dir);
    my $v = check($ev);
    return ($v, $ev->{margins} || [], $ev->{outages});
}


sub check {
    my ($ev) = @_;

    _derive($ev);

    return [ inv1_allowance($ev), inv2_revocation($ev), inv3_usage($ev),
             inv4_crash_hang($ev), inv5_no_503($ev) ];
}


############################################################################
# what the invariants share

sub _secs { my ($r) = @_; $r =~ m{^(\d+)r/([sm])$} ? $1 / ($2 eq 's' ? 1 : 60) : 0 }

sub _unknown { my ($st) = @_; !$st || $st >= 500 }

sub _ok { $_[0] && $_[0] == 200 }


sub _derive {
    my ($ev) = @_;
    my $m = $ev->{meta};

    $m->{timeout} //= 0.1;
    $m->{hang} //= $m->{timeout} + $HANG_SLACK;

    my @e = sort { $a->{t} <=> $b->{t} }
            map { $_->{t} //= $_->{t_send} // 0; $_ } @{$ev->{events}};
    $ev->{events} = \@e;

    # keys: id => { slot, limit at creation, created, gone }
    my %k;
    for my $e (grep { $_->{ev} eq 'key' } @e) {
        $k{$e->{id}} = { id => $e->{id}, slot => $e->{slot},
                         limit => $e->{limit}, created => $e->{t},
                         prefix => $e->{prefix} };
    }
    for my $e (grep { $_->{ev} eq 'gone' } @e) {
        $k{$e->{id}}{gone} = $e->{t} if $k{$e->{id}};
    }
    $ev->{keys} = \%k;

    # the admin calls of each key
    for my $e (grep { $_->{ev} eq 'admin' } @e) {
        push @{$k{$e->{id}}{admin}}, $e if $k{$e->{id}};
    }

    # allowed lines per key; every line by request id
    my (%allowed, %by_req);
    for my $i (@INST) {
        for my $r (@{$ev->{requests}{$i}}) {
            push @{$allowed{$r->{id}}}, $r if $r->{ast} eq 'ok' && $r->{id};
            $by_req{$r->{req}} = $r if $r->{req};
        }
    }
    $ev->{allowed} = \%allowed;
    $ev->{by_req} = \%by_req;

    $ev->{killed} = [grep { $_->{ev} eq 'worker_kill' && $_->{pid} } @e];
    $ev->{outages} = outages($ev);
}


# the configuration in force at an instance over time: [t, t_end, conf]
# (t_end > t while a reload changes it: both are in force then)

sub _configs {
    my ($ev, $inst) = @_;

    my @c;
    for my $e (@{$ev->{events}}) {
        next unless $e->{inst} && $e->{inst} eq $inst;
        push @c, [$e->{t}, $e->{t}, $e->{conf}] if $e->{ev} eq 'config';
        push @c, [$e->{t}, $e->{t_end}, $e->{conf}, $e->{before}]
            if $e->{ev} eq 'reload';
    }
    return \@c;
}


# every configuration in force at some time in [a, b]

sub configs_during {
    my ($ev, $inst, $a, $b) = @_;
    my @in;
    my $c = $ev->{configs}{$inst} //= _configs($ev, $inst);

    for my $n (0 .. $#$c) {
        my ($from, $until_both, $conf, $before) = @{$c->[$n]};
        my $next = $n < $#$c ? $c->[$n + 1][0] : 9e9;
        push @in, $conf if $from <= $b && $next >= $a;
        push @in, $before if $before && $from <= $b && $until_both >= $a;
    }

    return @in;
}


sub cache_any {
    my ($ev, $inst, $a, $b) = @_;
    return grep { $_->{cache} } configs_during($ev, $inst, $a, $b);
}


sub cache_all {
    my ($ev, $inst, $a, $b) = @_;
    my @c = configs_during($ev, $inst, $a, $b);
    return @c && !grep { !$_->{cache} } @c;
}


sub max_stale {
    my ($ev, $inst, $a, $b) = @_;
    my @s = map { _stale_secs($_->{max_stale} // '30s') }
            configs_during($ev, $inst, $a, $b);
    return @s ? max(@s) : 30;
}


sub _stale_secs {
    my ($v) = @_;
    return $1 / 1000 if $v =~ /^(\d+)ms$/;
    return $1 * 60 if $v =~ /^(\d+)m$/;
    return $v =~ /^(\d+)/ ? $1 : 30;
}


# Outage windows per instance: { a => [[from, to, why], ...] } merged

sub outages {
    my ($ev) = @_;
    my $T = $ev->{meta}{timeout};
    my $end = ($ev->{meta}{t0} // 0) + ($ev->{meta}{duration} // 0) + 5;
    my %w = map { $_ => [] } @INST;

    my $insts = sub {
        my ($target) = @_;
        return @INST if $target eq 'all';
        return ($target) if grep { $_ eq $target } @INST;
        return ();
    };

    my $reconnect = sub {
        my ($inst, $t) = @_;
        return first { $_ > $t } @{$ev->{accepts}{$inst} || []};
    };

    my @e = @{$ev->{events}};

    for my $n (0 .. $#e) {
        my $e = $e[$n];
        my $t = $e->{t};

        if ($e->{ev} eq 'sigstop' || $e->{ev} eq 'client_pause') {
            next unless $e->{ms} / 1000 > $T;
            push @{$w{$_}}, [$t, $e->{t_end} + $RECONNECT, $e->{ev}] for @INST;
        } elsif ($e->{ev} eq 'redis_down') {
            push @{$w{$_}}, [$t, $e->{t_end} + $RECONNECT, 'redis killed']
                for @INST;
        } elsif ($e->{ev} eq 'failover' && !$e->{skipped}) {
            push @{$w{$_}}, [$t, $e->{t_end} + $RECONNECT, 'failover']
                for @INST;
        } elsif ($e->{ev} eq 'client_kill') {
            for my $i (@INST) {
                my $back = $reconnect->($i, $t) // $end;
                push @{$w{$i}}, [$t, $back, 'client kill'] if $back - $t > $T;
            }
        } elsif ($e->{ev} eq 'proxy') {
            my ($verb, @a) = split ' ', $e->{cmd};
            my $target = pop @a // '';
            my $ms = $a[0] // 0;

            if ($verb eq 'stall' && $ms / 1000 > $T) {
                push @{$w{$_}}, [$t, $t + $ms / 1000 + $RECONNECT, 'stall']
                    for $insts->($target);
            } elsif ($verb eq 'delay' && $ms / 1000 > $T) {
                my $stop = first { $_->{ev} eq 'proxy'
                                   && $_->{cmd} eq "delay 0 $target" }
                           @e[$n + 1 .. $#e];
                push @{$w{$_}}, [$t, ($stop ? $stop->{t} : $end)
                                     + $RECONNECT, 'delay']
                    for $insts->($target);
            } elsif ($verb eq 'drop' || $verb eq 'reset_after_request') {
                for my $i ($insts->($target)) {
                    my $back = $reconnect->($i, $t) // $end;
                    push @{$w{$i}}, [$t, $back, $verb] if $back - $t > $T;
                }
            }
        }
    }

    for my $i (@INST) {
        my @m;
        for my $x (sort { $a->[0] <=> $b->[0] } @{$w{$i}}) {
            if (@m && $x->[0] <= $m[-1][1]) {
                $m[-1][1] = max($m[-1][1], $x->[1]);
                $m[-1][2] .= "+$x->[2]";
            } else {
                push @m, [@$x];
            }
        }
        $w{$i} = \@m;
    }

    return \%w;
}


# a key's limit segments: [from, to, {rate, burst}]

sub segments {
    my ($k) = @_;

    my @s = ([-9e9, 9e9, $k->{limit}]);

    for my $a (sort { $a->{t_send} <=> $b->{t_send} }
               grep { $_->{op} eq 'limit' } @{$k->{admin} || []})
    {
        if (_ok($a->{status})) {
            $_->[1] = min($_->[1], $a->{t_reply}) for grep { $_->[1] == 9e9 } @s;
            push @s, [$a->{t_send}, 9e9, $a->{limit}];
        } elsif (_unknown($a->{status})) {
            push @s, [$a->{t_send}, 9e9, $a->{limit}];
        }
    }

    return @s;
}


sub _key_name { my ($k) = @_; "$k->{slot} $k->{id}" }


# Unix seconds of an RFC 3339 UTC time (2026-11-22T10:00:00Z)

sub _rfc3339 {
    my ($s) = @_;
    return undef unless defined $s
        && $s =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z$/;
    require Time::Local;
    return Time::Local::timegm($6, $5, $4, $3, $2 - 1, $1);
}

sub _f { sprintf '%.3f', $_[0] }


############################################################################
# 1. allowance

sub inv1_allowance {
    my ($ev) = @_;
    my @v;

    for my $k (sort { $a->{created} <=> $b->{created} } values %{$ev->{keys}}) {
        next unless $k->{limit};
        my $rows = $ev->{allowed}{$k->{id}} or next;

        my $t1 = min(map { $_->{start} } @$rows) - 0.001;
        my $t2 = max(map { $_->{end} } @$rows) + 0.001;

        my ($bucket, @parts) = (0);
        my @segs = grep { $_->[0] <= $t2 && $_->[1] >= $t1 } segments($k);

        for my $s (@segs) {
            my $len = min($s->[1], $t2) - max($s->[0], $t1);
            my $r = _secs($s->[2]{rate});
            $bucket += $s->[2]{burst} + $r * $len;
            push @parts, "$s->[2]{burst} + $s->[2]{rate} x " . _f($len) . ' s';
        }

        my $bmax = max(map { $_->[2]{burst} } @segs);
        my $outage = 0;
        my @out;

        for my $i (@INST) {
            for my $w (@{$ev->{outages}{$i}}) {
                my ($a, $b) = (max($w->[0], $t1), min($w->[1], $t2));
                next unless $b > $a && cache_any($ev, $i, $w->[0], $w->[1]);
                my @in = grep { $_->[0] <= $w->[1] && $_->[1] >= $w->[0] }
                         @segs;
                my $bw = max(map { $_->[2]{burst} } @in);
                my $rw = max(map { _secs($_->[2]{rate}) } @in);
                $outage += $bw + $rw * ($b - $a);
                push @out, "$i $w->[2] " . _f($b - $a) . ' s';
            }
        }

        my $lost = grep {
            ($_->{ev} eq 'redis_down' && $_->{empty}
             || $_->{ev} eq 'failover' && !$_->{skipped})
            && $_->{t} >= $t1 && $_->{t} <= $t2
        } @{$ev->{events}};

        my $allow = $bucket + $outage + $bmax * $lost;
        my $n = @$rows;

        push @{$ev->{margins}}, sprintf('%s: allowed %d of %d (buckets %.1f, '
            . 'outages %.1f, lost %d x %d)', _key_name($k), $n,
            floor($allow + 1e-6), $bucket, $outage, $lost, $bmax);

        next if $n <= floor($allow + 1e-6);

        push @v, { inv => 1, key => _key_name($k), what => 'allowed',
                   allowed => $n, allowance => floor($allow + 1e-6),
                   msg => "allowed $n > allowance " . floor($allow + 1e-6)
                          . " over " . _f($t2 - $t1) . " s = buckets ("
                          . join(', ', @parts) . ")"
                          . ' + outages ' . _f($outage)
                          . (@out ? ' (' . join(', ', @out) . ')' : '')
                          . " + $lost lost bucket(s) x $bmax"
                          . '; excess ' . ($n - floor($allow + 1e-6)) };
    }

    return @v;
}


############################################################################
# 2. revocation and rotated-out secrets

sub inv2_revocation {
    my ($ev) = @_;
    my @v;

    for my $k (values %{$ev->{keys}}) {
        my @adm = sort { $a->{t_send} <=> $b->{t_send} } @{$k->{admin} || []};
        my $rows = $ev->{allowed}{$k->{id}} || [];

        for my $n (0 .. $#adm) {
            my $a = $adm[$n];
            next unless _ok($a->{status});

            my ($from, $until, $what, $match);

            if ($a->{op} eq 'revoke') {
                my $restore = first {
                    $_->{op} eq 'restore'
                    && (_ok($_->{status}) || _unknown($_->{status}))
                } @adm[$n + 1 .. $#adm];
                ($from, $until, $what) = ($a->{t_reply},
                    $restore ? $restore->{t_send} : 9e9, 'revoked');
                $match = sub { 1 };
            } elsif ($a->{op} eq 'rotate' && $a->{old_prefix}) {
                my $e = _rfc3339($a->{previous_key_expires_at})
                        // $a->{t_reply} + $a->{grace};
                ($from, $until, $what) = ($e, 9e9,
                    "rotated out (grace $a->{grace} s, to "
                    . ($a->{previous_key_expires_at} // _f($e)) . ')');
                my $old = $a->{old_prefix};
                $match = sub {
                    my $c = $ev->{client_by_req}{$_[0]{req}};
                    $c && $c->{prefix} eq $old;
                };
                $ev->{client_by_req} //= { map { $_->{req} => $_ }
                                           @{$ev->{clients}} };
            } else {
                next;
            }

            for my $i (@INST) {
                my $after = $from + ($i eq $a->{inst} ? 0 : 1);
                my @bad = grep {
                    $_->{inst} eq $i && $_->{start} > $after
                    && $_->{start} < $until && $match->($_)
                } @$rows;
                next unless @bad;

                my $late = max(map { $_->{start} - $from } @bad);
                push @v, { inv => 2, key => _key_name($k),
                           what => $a->{op} eq 'rotate' ? 'rotated' : $what,
                           inst => $i, count => scalar @bad,
                           msg => scalar(@bad) . " allowed at $i after the "
                                  . "key was $what through $a->{inst} "
                                  . "(reply " . _f($a->{t_reply}) . "; bound "
                                  . ($i eq $a->{inst} ? '' : '1 s after ')
                                  . ($a->{op} eq 'rotate' ? 'the grace'
                                                          : 'the reply')
                                  . "), first started "
                                  . _f($bad[0]{start} - $from)
                                  . ' s after, last ' . _f($late) . ' s' };
            }
        }
    }

    return @v;
}


############################################################################
# 3. usage

my %KIND = (ok => 'allowed', limited => 'limited', revoked => 'refused',
            expired => 'refused', forbidden => 'refused');


# The stretches whose writes a failover may lose: from a second before
# the schedule's failover to when the module moved to the new primary (an
# old primary takes writes until it is demoted; nginx logs the move, to
# the second); and a failover the schedule did not ask for (the Sentinels
# took a primary starved on a busy machine for down, or failed back to a
# restarted one with older data): everything since the failover before it
# (since the move before it, without one).  A primary killed while no
# replica was in step (the Sentinels repoint an old primary only seconds
# after a failover) loses everything since it became primary.

sub _lossy_windows {
    my ($ev) = @_;
    my (@moves, @w, %seen);

    for my $i (@INST) {
        for (@{$ev->{errors}{$i} || []}) {
            next unless m{^(\d+)/(\d+)/(\d+) (\d+):(\d+):(\d+) \[\w+\] (\d+)#(\d+): redis primary of "[^"]*" switched to};
            push @{$seen{"$i $8"}},
                 [$i, timegm($6, $5, $4, $3, $2 - 1, $1) + 1];
        }
    }

    # one worker's moves stand for its instance's (each worker logs them)

    my %first;

    for my $w (values %seen) {
        for my $k (0 .. $#$w) {
            my $key = "$w->[$k][0] $k";
            $first{$key} = $w->[$k]
                if !$first{$key} || $w->[$k][1] < $first{$key}[1];
        }
    }

    @moves = sort { $a->[1] <=> $b->[1] } values %first;

    my @asked = grep { $_->{ev} eq 'failover' && !$_->{skipped} }
                @{$ev->{events}};

    # each instance logs a failover's move once: the first move of each
    # instance after it is the failover's, any further one is not

    my %its;

    for my $f (@asked) {
        my $moved = $f->{t_end};

        for my $i (@INST) {
            my ($m) = grep { $_->[0] eq $i && $_->[1] >= $f->{t}
                             && $_->[1] <= $f->{t_end} + 5 && !$its{$_} }
                      @moves;
            next unless $m;
            $its{$m} = 1;
            $moved = $m->[1] if $m->[1] > $moved;
        }

        # a primary killed with no replica in step took what it had
        # alone since the failover that made it primary (or the start)

        my ($made) = sort { $b <=> $a }
                     map { $_->{t} } grep { $_->{t} < $f->{t} } @asked;
        my $from = (defined $f->{in_step} && !$f->{in_step})
                   ? ($made // 0) : $f->{t};

        push @w, [$from - 1, $moved];
    }

    my $prev;

    for my $mi (@moves) {
        my $m = $mi->[1];

        unless ($its{$mi}) {

            # back to a primary that stopped taking writes at the failover
            # before (or at the move before, without one)

            my ($before) = sort { $b <=> $a }
                           map { $_->{t} } grep { $_->{t} < $m } @asked;
            my $from = $before // $prev // $m;

            push @w, [$from - 1, $m];
        }

        $prev = $m;
    }

    return @w;
}


sub inv3_usage {
    my ($ev) = @_;
    my @v;

    my @lossy = _lossy_windows($ev);

    for my $k (sort { $a->{created} <=> $b->{created} } values %{$ev->{keys}}) {
        next if $k->{gone};

        my $u = $ev->{usage}{$k->{id}};

        if (!$u || $u->{error}) {
            push @v, { inv => 3, key => _key_name($k), what => 'unread',
                       msg => 'usage not read from Redis: '
                              . ($u ? $u->{error} : 'missing') };
            next;
        }

        my (%L, %K);

        for my $i (@INST) {
            for my $r (@{$ev->{requests}{$i}}) {
                next unless $r->{id} eq $k->{id};
                my $kind = $KIND{$r->{ast}} or next;
                $L{$kind}++;

                # its own counts, and with leases the instance's lease
                # uses it may have been carrying to Redis
                my $killed = grep {
                    $_->{inst} eq $i
                    && ($_->{pid} == $r->{pid}
                        || $kind eq 'allowed'
                           && grep { $_->{lease} }
                                   configs_during($ev, $i, $_->{t} - 1,
                                                  $_->{t}))
                    && $r->{end} >= $_->{t} - 1 && $r->{end} <= $_->{t}
                } @{$ev->{killed}};
                $killed ||= grep {
                    $r->{end} >= $_->[0] && $r->{end} <= $_->[1]
                } @lossy;
                $K{$kind}++ if $killed;
            }
        }

        my $N = grep { $_->{id} eq $k->{id} && !$ev->{by_req}{$_->{req}} }
                @{$ev->{clients}};

        # a hint, not an allowance: what the instances answered in the
        # second before QUIT (counts a worker may not send on exit)
        my $quit = first { $_->{ev} eq 'quit' } @{$ev->{events}};
        my %last;
        if ($quit) {
            for my $i (@INST) {
                $last{$KIND{$_->{ast}}}++ for grep {
                    $_->{id} eq $k->{id} && $KIND{$_->{ast}}
                    && $_->{end} >= $quit->{t} - 1
                } @{$ev->{requests}{$i}};
            }
        }

        for my $kind (qw(allowed limited refused)) {
            my ($l, $kk, $uu) = ($L{$kind} // 0, $K{$kind} // 0,
                                 $u->{$kind} // 0);
            next if $uu >= $l - $kk && $uu <= $l + $N;

            push @v, { inv => 3, key => _key_name($k), what => $kind,
                       usage => $uu, logged => $l,
                       msg => "usage $kind $uu, access logs $l (allowed "
                              . "range " . ($l - $kk) . ".." . ($l + $N)
                              . ": $kk of killed workers' last second, $N "
                              . "unlogged requests); "
                              . ($uu > $l ? 'over by ' . ($uu - $l)
                                          : 'under by ' . ($l - $uu)
                                            . ($last{$kind} && $l - $uu
                                               <= $last{$kind}
                                               ? " ($last{$kind} logged in "
                                                 . 'the second before QUIT)'
                                               : '')) };
        }
    }

    return @v;
}


############################################################################
# 4. crash, hang, alert

sub inv4_crash_hang {
    my ($ev) = @_;
    my @v;
    my %killed = map { ("$_->{inst} $_->{pid}" => 1) } @{$ev->{killed}};

    for my $i (@INST) {
        my (%crash, %alert);

        for my $line (@{$ev->{errors}{$i}}) {
            if ($line =~ /process (\d+) exited on signal (\d+)/) {
                next if $2 == 9 && $killed{"$i $1"};
                $crash{"signal $2"}++;
                next;
            }

            if ($line =~ /\[(alert|crit|emerg)\]|Sanitizer|runtime error:/) {
                (my $what = $line) =~ s/^\S+ \S+ (\[\w+\]) \d+#\d+: (\*\d+ )?/$1 /;
                $what =~ s/\d+/N/g;
                $alert{substr($what, 0, 160)}++;
            }
        }

        for my $s (sort keys %crash) {
            push @v, { inv => 4, key => '-', what => 'crash', inst => $i,
                       msg => "$crash{$s} worker(s) of $i exited on $s" };
        }

        for my $a (sort keys %alert) {
            push @v, { inv => 4, key => '-', what => 'alert', inst => $i,
                       msg => "$alert{$a} line(s) in ${i}'s logs: $a" };
        }
    }

    my $hang = $ev->{meta}{hang};
    my (%slow, %none, %worst);

    my $stalled = sub {
        my ($a, $b) = @_;
        return sum0(map { my $x = min($_->[1], $b) - max($_->[0], $a);
                          $x > 0 ? $x : 0 } @{$ev->{stalls}});
    };

    for my $c (@{$ev->{clients}}) {
        my $took = $c->{done} - $c->{sent};

        if ($c->{status} eq 'timeout'
            || $took > $hang + $stalled->($c->{sent}, $c->{done}))
        {
            $slow{$c->{inst}}++;
            $worst{$c->{inst}} = max($worst{$c->{inst}} // 0, $took);
        } elsif ($c->{status} eq 'none') {
            next if grep {
                $_->{inst} eq $c->{inst} && $_->{t} >= $c->{sent} - 0.05
                && $_->{t} <= $c->{done} + 0.05
            } @{$ev->{killed}};
            push @{$none{$c->{inst}}}, $c;
        }
    }

    for my $i (sort keys %slow) {
        push @v, { inv => 4, key => '-', what => 'hang', inst => $i,
                   msg => "$slow{$i} request(s) at $i not answered within "
                          . _f($hang) . " s (slowest " . _f($worst{$i})
                          . ' s)' };
    }

    for my $i (sort keys %none) {
        my $c = $none{$i}[0];
        push @v, { inv => 4, key => '-', what => 'unanswered', inst => $i,
                   msg => scalar(@{$none{$i}}) . " request(s) at $i closed "
                          . "without an answer, no worker killed then "
                          . "(first sent " . _f($c->{sent}) . ", $c->{req})" };
    }

    for my $a (grep { $_->{ev} eq 'admin' && !$_->{status} } @{$ev->{events}}) {
        push @v, { inv => 4, key => "$a->{slot} $a->{id}", what => 'hang',
                   inst => $a->{inst},
                   msg => "admin $a->{op} through $a->{inst} (sent "
                          . _f($a->{t_send}) . ") not answered" };
    }

    for my $i (@INST) {
        my $stopped = $ev->{meta}{stopped} or last;
        push @v, { inv => 4, key => '-', what => 'hang', inst => $i,
                   msg => "nginx $i did not exit within 20 s of QUIT" }
            unless $stopped->{$i};
    }

    return @v;
}


############################################################################
# 5. no 503 with the cache, under max_stale

sub inv5_no_503 {
    my ($ev) = @_;
    my @v;

    for my $i (@INST) {
        my @bad;

        for my $r (@{$ev->{requests}{$i}}) {
            next unless $r->{status} == 503;
            next unless cache_all($ev, $i, $r->{start}, $r->{end});

            my $stale = max_stale($ev, $i, $r->{start}, $r->{end});
            next if grep {
                $r->{start} >= $_->[0] + $stale - $STALE_EARLY
                && $r->{start} <= $_->[1]
            } @{$ev->{outages}{$i}};

            push @bad, $r;
        }

        next unless @bad;

        # a hint: how many came within 5 s after an outage window ended
        my $after = grep {
            my $r = $_;
            grep { $r->{start} > $_->[1] && $r->{start} < $_->[1] + 5 }
                 @{$ev->{outages}{$i}};
        } @bad;

        push @v, { inv => 5, key => '-', what => '503',
                   inst => $i, count => scalar @bad,
                   msg => scalar(@bad) . " 503(s) at $i with apikey_cache, "
                          . "not past max_stale into an outage, first at "
                          . _f($bad[0]{start}) . ', last at '
                          . _f($bad[-1]{start})
                          . ($after ? " ($after within 5 s after an outage "
                                      . "window, which ends 1 s after "
                                      . "the fault)" : '') };
    }

    return @v;
}


1;
