package ApiKey::Chaos::Run;

# One run of the fault campaign, for one seed: start Redis (or the
# Sentinel set) and the fault proxy, two nginx instances of two workers,
# make the keys through the admin API, let the clients of both instances
# run for the schedule's length while the timeline carries out its
# faults and admin changes, heal everything, stop nginx with QUIT (so
# workers send what they counted), read the keys' usage from Redis, stop
# the servers and check the evidence.
#
#   my $res = ApiKey::Chaos::Run::run_seed(17, keep => $dir);
#   # { seed, schedule, violations => [...], seconds, evidence => $dir }
#
# The run's directory is a temporary one; its evidence (logs, records,
# events, usage; not Redis' data) is copied to $o{keep}/seed-N when the
# run fails, or always with $o{keep_all}.

use strict;
use warnings;

use File::Copy qw(copy);
use File::Path qw(make_path remove_tree);
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use ApiKey::Test;
use ApiKey::Admin;
use ApiKey::Chaos::Check;
use ApiKey::Chaos::Nginx;
use ApiKey::Chaos::Schedule;
use ApiKey::Chaos::Servers;
use ApiKey::Chaos::Timeline;
use ApiKey::Chaos::Traffic;

my $JSON = JSON::PP->new->canonical;

our $TIMEOUT = 0.1;     # apikey_redis_timeout, its default


sub _write_json {
    my ($file, $data) = @_;
    open my $fh, '>', $file or die "$file: $!";
    print $fh $JSON->encode($data);
    close $fh;
}


# Each key's usage counts straight from Redis (docs/data-model.md): the
# hour's fields of its current secret plus the usage hashes of the days
# the run touched.

sub read_usage {
    my ($srv, $ids, $t0) = @_;
    my %u;

    my @days = (int($t0 / 86400) - 1 .. int(time / 86400));

    for my $id (@$ids) {
        my $ok = eval {
            my $secret = $srv->redis('HGET', "apikey:key:$id", 'secret');
            die "no record in Redis\n" unless defined $secret;

            my %n;
            my $v = $srv->redis('HMGET', "apikey:{$secret}", qw(a l r));
            die "HMGET failed\n" unless ref $v;
            @n{qw(allowed limited refused)} = map { $_ // 0 } @$v;

            for my $d (@days) {
                my $h = $srv->redis('HMGET', "apikey:usage:{$id}:$d",
                                    qw(a l r));
                die "HMGET failed\n" unless ref $h;
                $n{allowed} += $h->[0] // 0;
                $n{limited} += $h->[1] // 0;
                $n{refused} += $h->[2] // 0;
            }

            $u{$id} = \%n;
            1;
        };

        $u{$id} = { error => $@ =~ s/\n//r } unless $ok;
    }

    return \%u;
}


# every key passes (or is limited) on both instances: the replica, where
# there is one, has loaded

sub _warm_up {
    my ($ngx, $tl) = @_;

    for my $inst (qw(a b)) {
        for my $slot (sort keys %{$tl->{keys}}) {
            my $key = $tl->{keys}{$slot}{secrets}[0]{key};
            my $ok = ApiKey::Test::wait_for(10, sub {
                my ($st) = http_get($ngx->port($inst), '/api/',
                                    { 'X-API-Key' => $key }, timeout => 2);
                ($st // 0) == 200 || ($st // 0) == 429;
            });
            die "the $slot key does not pass at $inst in 10 s\n" unless $ok;
        }
    }
}


sub _keep {
    my ($dir, $to) = @_;

    remove_tree($to);
    make_path("$to/clients", "$to/a", "$to/b");

    for my $f (qw(meta.json events.jsonl usage.json proxy.log
                  heartbeat.txt replica.log sentinel0.log sentinel1.log
                  sentinel2.log)) {
        copy("$dir/$f", "$to/$f") if -e "$dir/$f";
    }
    copy("$dir/redis/redis.log", "$to/redis.log") if -e "$dir/redis/redis.log";
    for my $inst (qw(a b)) {
        for my $f (qw(chaos.log error.log stderr.log nginx.conf)) {
            copy("$dir/$inst/$f", "$to/$inst/$f") if -e "$dir/$inst/$f";
        }
    }
    copy($_, "$to/clients/") for glob "$dir/clients/*.txt";
}


sub run_seed {
    my ($seed, %o) = @_;

    my $s = ApiKey::Chaos::Schedule::make($seed);
    my $begin = time;

    my $t = ApiKey::Test->new;
    my $dir = $t->dir;
    make_path("$dir/clients");

    my $srv = ApiKey::Chaos::Servers->new($t,
        sentinel => $s->{family} eq 'sentinel',
        aof => $s->{family} eq 'kill_aof');
    $srv->start;

    my $tok = write_tokens($t, ops => '*');
    my $ngx = ApiKey::Chaos::Nginx->new($t, $srv,
        ApiKey::Admin::tokens_file($t), $s->{variant},
        clock => $s->{family} eq 'clock');
    $ngx->start($_) for qw(a b);

    my %admin = map {
        $_ => ApiKey::Admin->new($t, $tok->{ops}, port => $ngx->port($_))
    } qw(a b);

    my $tl = ApiKey::Chaos::Timeline->new(dir => $dir, servers => $srv,
                                          nginx => $ngx, admin => \%admin);

    $tl->record({ ev => 'config', inst => $_, t => time,
                  conf => $ngx->describe($_) }) for qw(a b);

    $tl->make_keys;
    _warm_up($ngx, $tl);

    my $t0 = time + 0.5;
    my %meta = (seed => $seed, family => $s->{family},
                variant => $s->{variant}, duration => $s->{duration},
                t0 => $t0, timeout => $TIMEOUT,
                schedule => ApiKey::Chaos::Schedule::describe($s));
    _write_json("$dir/meta.json", \%meta);

    my $heartbeat = ApiKey::Chaos::Traffic::heartbeat($t,
        file => "$dir/heartbeat.txt", start => time,
        seconds => $t0 - time + $s->{duration} + 60);

    my @clients = map {
        ApiKey::Chaos::Traffic::start($t, inst => $_, port => $ngx->port($_),
            dir => "$dir/clients", keys_file => $tl->keys_file,
            start => $t0, seconds => $s->{duration})
    } qw(a b);

    $tl->run($s, $t0);

    # the clients stop by themselves at the end; a request may still wait
    # out the client's timeout
    my $wait = $t0 + $s->{duration} - time;
    sleep($wait) if $wait > 0;
    $t->wait_children(@clients);
    kill 'TERM', $heartbeat;
    $t->wait_children($heartbeat);

    $srv->proxy('heal') unless $s->{family} eq 'sentinel';
    kill 'CONT', $t->redis_pid if $t->redis_pid;
    $tl->record({ ev => 'healed', t => time });

    my @ids = map { $_->{id} } grep { $_->{ev} eq 'key' }
              map { JSON::PP->new->decode($_) }
              grep { /\S/ } do {
                  open my $fh, '<', "$dir/events.jsonl" or die $!;
                  <$fh>;
              };

    # --settle: time for the workers' periodic sends before QUIT, to tell
    # counts lost on exit from counts lost during the run
    sleep($o{settle}) if $o{settle};

    $tl->record({ ev => 'quit', t => time });
    $meta{stopped} = $ngx->stop_all;
    $tl->record({ ev => 'stopped', t => time, ok => $meta{stopped} });
    _write_json("$dir/meta.json", \%meta);

    _write_json("$dir/usage.json", read_usage($srv, \@ids, $t0));

    $srv->stop;
    $t->stop_all;

    my $v = ApiKey::Chaos::Check::check_dir($dir);

    my $res = { seed => $seed, family => $s->{family},
                variant => $s->{variant}, duration => $s->{duration},
                schedule => $meta{schedule}, violations => $v,
                seconds => time - $begin };

    if ($o{keep} && (@$v || $o{keep_all})) {
        _keep($dir, "$o{keep}/seed-$seed");
        $res->{evidence} = "$o{keep}/seed-$seed";
    }

    return $res;
}


1;
