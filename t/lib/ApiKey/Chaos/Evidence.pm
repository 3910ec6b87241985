package ApiKey::Chaos::Evidence;

# Reads what one run of the fault campaign left in its directory into
# one structure for the checker (ApiKey::Chaos::Check):
#
#   meta.json          seed, family, variant, duration, t0, timeout (s),
#                      hang (s), stopped ({a => 1, b => 1}: nginx exited
#                      after QUIT)
#   events.jsonl       the timeline's facts (ApiKey::Chaos::Timeline)
#   a/, b/             each nginx instance's prefix: chaos.log (gatekept
#                      requests), error.log, stderr.log
#   clients/*.txt      the clients' records (ApiKey::Chaos::Traffic)
#   usage.json         { key id => { allowed, limited, refused } } read
#                      from Redis after nginx stopped, or { error => ... }
#   proxy.log          the fault proxy's log, when there was one
#   heartbeat.txt      times the machine itself stalled: "<from> <to>"
#                      a line, a 10 ms sleep that took over 100 ms
#
#   my $ev = ApiKey::Chaos::Evidence::load($dir);
#   $ev->{requests}{a}   [ { end, start, pid, conn, status, ast, id, req,
#                            uri } ... ]   in log order
#   $ev->{clients}       [ { req, inst, slot, id, prefix, sent, done,
#                            status } ... ]
#   $ev->{events}        [ { ev, t, ... } ... ]
#   $ev->{errors}{a}     [ lines of error.log and stderr.log ]
#   $ev->{accepts}{a}    [ times the proxy accepted a connection of a ]
#   $ev->{stalls}        [ [from, to] ... ]  the machine's own stalls
#
# An instance whose wall clock was stepped (the clock family) logs its
# own times: its requests take their times from the clients' records
# (sent and done: the decision lies between), or, for one no client
# recorded, the log's time less the step in force then.

use strict;
use warnings;

use JSON::PP;

our @INSTANCES = qw(a b);


sub _slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return undef;
    local $/;
    return <$fh> // '';
}


sub _json {
    my ($file, $default) = @_;
    my $text = _slurp($file);
    return $default unless defined $text && length $text;
    return JSON::PP->new->decode($text);
}


# one line of chaos.log:
#   $msec $request_time $pid $connection $status s:$apikey_status
#   k:$apikey_id r:$http_x_chaos_req $uri
# ("-" after a prefix: the variable was not set)

sub _var {
    my ($f, $prefix) = @_;
    return undef unless defined $f && $f =~ s/^\Q$prefix\E://;
    return $f eq '-' ? '' : $f;
}


sub parse_access_line {
    my ($line) = @_;

    my @f = split ' ', $line;
    return undef unless @f >= 9 && $f[0] =~ /^\d+\.\d+$/;

    my %r = (end => $f[0] + 0, rt => $f[1] + 0, pid => $f[2],
             conn => $f[3], status => $f[4], ast => _var($f[5], 's'),
             id => _var($f[6], 'k'), req => _var($f[7], 'r'), uri => $f[8]);

    return undef if grep { !defined } @r{qw(ast id req)};

    # both are whole milliseconds of nginx's time: the start is exact
    $r{start} = sprintf('%.3f', $r{end} - $r{rt}) + 0;
    return \%r;
}


sub load {
    my ($dir) = @_;

    my $ev = {
        dir => $dir,
        meta => _json("$dir/meta.json", {}),
        usage => _json("$dir/usage.json", {}),
        events => [],
        requests => {},
        errors => {},
        clients => [],
        accepts => {},
        stalls => [],
    };

    for my $line (split /\n/, _slurp("$dir/heartbeat.txt") // '') {
        push @{$ev->{stalls}}, [$1 + 0, $2 + 0]
            if $line =~ /^(\d+\.\d+) (\d+\.\d+)$/;
    }

    for my $line (split /\n/, _slurp("$dir/events.jsonl") // '') {
        next unless $line =~ /\S/;
        push @{$ev->{events}}, JSON::PP->new->decode($line);
    }

    for my $inst (@INSTANCES) {
        my @r;

        for my $line (split /\n/, _slurp("$dir/$inst/chaos.log") // '') {
            my $r = parse_access_line($line) or next;
            $r->{inst} = $inst;
            push @r, $r;
        }

        $ev->{requests}{$inst} = \@r;
        $ev->{errors}{$inst} = [
            map { split /\n/, _slurp("$dir/$inst/$_") // '' }
            qw(error.log stderr.log)
        ];
        $ev->{accepts}{$inst} = [];
    }

    for my $file (sort glob "$dir/clients/*.txt") {
        for my $line (split /\n/, _slurp($file) // '') {
            my @f = split ' ', $line;
            next unless @f == 8;
            push @{$ev->{clients}}, {
                req => $f[0], inst => $f[1], slot => $f[2], id => $f[3],
                prefix => $f[4], sent => $f[5] + 0, done => $f[6] + 0,
                status => $f[7],
            };
        }
    }

    _host_times($ev);

    for my $line (split /\n/, _slurp("$dir/proxy.log") // '') {
        push @{$ev->{accepts}{$2}}, $1 + 0
            if $line =~ /^(\d+\.\d+) accept (\w+) pair=/;
    }

    return $ev;
}


sub _host_times {
    my ($ev) = @_;

    my %steps;
    push @{$steps{$_->{inst}}}, $_
        for grep { $_->{ev} eq 'clock_step' } @{$ev->{events}};

    return unless %steps;

    my %client = map { $_->{req} => $_ } @{$ev->{clients}};

    for my $inst (keys %steps) {
        my @s = sort { $a->{t} <=> $b->{t} } @{$steps{$inst}};

        for my $r (@{$ev->{requests}{$inst}}) {
            my $c = $r->{req} ne '' && $client{$r->{req}};

            if ($c && $c->{inst} eq $inst) {
                @$r{qw(start end)} = ($c->{sent}, $c->{done});
                next;
            }

            # the first stretch between steps that the logged time, less
            # the stretch's offset, falls in
            my @from = (0, map { $_->{t} } @s);
            my @off = (0, map { $_->{offset} } @s);
            my $off = 0;

            for my $k (0 .. $#from) {
                my $real = $r->{end} - $off[$k];
                next if $real < $from[$k]
                        || ($k < $#from && $real >= $from[$k + 1]);
                $off = $off[$k];
                last;
            }

            $r->{start} -= $off;
            $r->{end} -= $off;
        }
    }
}


1;
