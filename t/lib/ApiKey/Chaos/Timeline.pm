package ApiKey::Chaos::Timeline;

# Carries out a schedule's events at their times, in order, in one
# process, so that a fault and an admin change never race each other in
# the campaign itself; an event that is late (the one before took long)
# runs at once and its real time is what is recorded.  Also keeps the
# run's keys: their ids, raw keys (the file the clients read) and the
# facts of every admin call.
#
# Every fact goes to the run's event log (events.jsonl, one JSON object
# a line; times in Unix seconds from the client's clock, Time::HiRes):
#
#   {"ev":"key","slot":"k5","id":"k_...","t":...,"limit":{...}|null}
#   {"ev":"admin","op":"revoke","slot":"k5","id":"k_...","inst":"a",
#    "t_send":...,"t_reply":...,"status":200,"code":...}
#   {"ev":"proxy"|"sigstop"|"client_pause"|"client_kill"|"redis_down"|
#    "failover"|"reload"|"worker_kill", "t":..., ...}   (see Servers, Nginx)
#   {"ev":"gone","id":"k_...","t":...}     a key Redis lost (restart empty)
#
#   my $tl = ApiKey::Chaos::Timeline->new(dir => $dir, servers => $srv,
#       nginx => $ngx, admin => { a => $admin_a, b => $admin_b });
#   $tl->make_keys;  $tl->run($schedule, $t0);

use strict;
use warnings;

use IO::Handle;
use JSON::PP;
use Time::HiRes qw(sleep time);

use ApiKey::Chaos::Schedule;

my $JSON = JSON::PP->new->canonical;

# the admin client waits this long for an answer; longer is a hang
our $ADMIN_TIMEOUT = 8;


sub new {
    my ($class, %o) = @_;

    my $self = bless { %o, keys => {} }, $class;

    open $self->{log}, '>>', "$o{dir}/events.jsonl"
        or die "$o{dir}/events.jsonl: $!";
    $self->{log}->autoflush(1);

    return $self;
}


sub record {
    my ($self, $e) = @_;
    print { $self->{log} } $JSON->encode($e), "\n";
    return $e;
}


sub keys_file { "$_[0]{dir}/keys.json" }


sub _write_keys {
    my ($self) = @_;

    my $file = $self->keys_file;
    open my $fh, '>', "$file.tmp" or die "$file.tmp: $!";
    print $fh $JSON->encode($self->{keys});
    close $fh;
    rename "$file.tmp", $file or die "rename $file: $!";
}


sub _admin_call {
    my ($self, $inst, $method, $path, $body) = @_;

    my $a = $self->{admin}{$inst};
    my $t_send = time;
    my $r = $a->request($method, $path, defined $body ? (body => $body) : (),
                        http => { timeout => $ADMIN_TIMEOUT });
    my $t_reply = time;

    my $code = ref $r->{json} eq 'HASH' ? $r->{json}{code} : undef;

    return ($r, { inst => $inst, t_send => $t_send, t_reply => $t_reply,
                  status => $r->{status}, defined $code ? (code => $code)
                                                        : () });
}


# Makes the run's keys through instance a's admin API (retrying for up to
# 10 s, for keys made again while nginx finds Redis back).

sub make_keys {
    my ($self) = @_;

    for my $slot (sort keys %ApiKey::Chaos::Schedule::KEYS) {
        my $limit = $ApiKey::Chaos::Schedule::KEYS{$slot};
        my $deadline = time + 10;
        my ($r, $f);

        while (1) {
            ($r, $f) = $self->_admin_call('a', 'POST', 'orgs/acme/keys', {
                name => "chaos $slot", scopes => ['chaos:read'],
                rate_limit => $limit,
            });
            last if $r->{status} == 201 || time > $deadline;
            sleep 0.2;
        }

        die "creating the $slot key: $r->{status} $r->{body}\n"
            unless $r->{status} == 201;

        $self->{keys}{$slot} = {
            id => $r->{json}{id}, limit => $limit,
            secrets => [{ key => $r->{json}{key}, until => undef }],
        };

        $self->record({ ev => 'key', slot => $slot, id => $r->{json}{id},
                        t => $f->{t_reply}, t_send => $f->{t_send},
                        limit => $limit, prefix => $r->{json}{prefix} });
    }

    $self->_write_keys;
}


sub key_ids { map { $_[0]{keys}{$_}{id} } sort keys %{$_[0]{keys}} }


sub _admin {
    my ($self, $e) = @_;

    my $k = $self->{keys}{$e->{key}};
    my $path = "orgs/acme/keys/$k->{id}";
    my ($method, $body, $sub) = ('POST', undef, $e->{op});

    if ($e->{op} eq 'limit') {
        ($method, $body, $sub) = ('PATCH', { rate_limit => $e->{rate_limit} },
                                  '');
    } elsif ($e->{op} eq 'scopes') {
        ($method, $body, $sub) = ('PATCH', { scopes => $e->{scopes} }, '');
    } elsif ($e->{op} eq 'rotate') {
        $body = { grace_seconds => $e->{grace} };
    }

    my ($r, $f) = $self->_admin_call($e->{inst}, $method,
                                     $sub ? "$path/$sub" : $path, $body);

    my $rec = { ev => 'admin', op => $e->{op}, slot => $e->{key},
                id => $k->{id}, %$f };
    $rec->{limit} = $e->{rate_limit} if $e->{op} eq 'limit';
    $rec->{scopes} = $e->{scopes} if $e->{op} eq 'scopes';
    $rec->{grace} = $e->{grace} if $e->{op} eq 'rotate';

    if ($e->{op} eq 'rotate' && $r->{status} == 200) {
        $rec->{old_prefix} = substr($k->{secrets}[0]{key}, 0, 8);
        $rec->{prefix} = $r->{json}{prefix};
        $rec->{previous_key_expires_at} = $r->{json}{previous_key_expires_at};
        $k->{secrets}[0]{until} = $f->{t_reply} + $e->{grace};
        unshift @{$k->{secrets}}, { key => $r->{json}{key}, until => undef };
        splice @{$k->{secrets}}, 2;
        $self->_write_keys;
    }

    $k->{limit} = $e->{rate_limit} if $e->{op} eq 'limit' && $r->{status} == 200;

    return $rec;
}


# Redis came back empty: its keys are gone; the run makes them again (new
# ids, new buckets)

sub _remake_keys {
    my ($self, $t) = @_;

    $self->record({ ev => 'gone', id => $_, t => $t }) for $self->key_ids;
    eval { $self->make_keys; 1 }
        or $self->record({ ev => 'note', t => time,
                           text => "keys not made again: $@" });
}


sub run_event {
    my ($self, $e) = @_;
    my $srv = $self->{servers};
    my $ngx = $self->{nginx};
    my $k = $e->{kind};

    return $self->_admin($e) if $k eq 'admin';
    return $srv->proxy($e->{cmd}) if $k eq 'proxy';
    return $srv->sigstop($e->{ms}) if $k eq 'sigstop';
    return $srv->client_pause($e->{ms}) if $k eq 'client_pause';
    return $srv->client_kill if $k eq 'client_kill';
    return $srv->failover($e->{how}) if $k eq 'failover';
    return $ngx->reload($e->{inst}, $e->{change}) if $k eq 'reload';
    return $ngx->kill_worker($e->{inst}, $e->{which}) if $k eq 'worker_kill';
    return $ngx->clock($e->{inst}, $e->{offset}) if $k eq 'clock';

    if ($k eq 'kill_redis') {
        my $r = $srv->kill_redis($e->{down_ms}, empty => $e->{empty});
        $self->record($r);
        $self->_remake_keys($r->{t}) if $e->{empty};
        return;
    }

    die "unknown event kind '$k'\n";
}


sub run {
    my ($self, $s, $t0) = @_;

    for my $e (@{$s->{events}}) {
        my $wait = $t0 + $e->{at} - time;
        sleep($wait) if $wait > 0;

        my $rec = eval { $self->run_event($e) };
        $rec = { ev => 'note', t => time, text => "event $e->{kind} "
                 . "failed: $@" } unless $rec || !$@;
        $self->record({ %$rec, at => $e->{at} }) if $rec;
    }
}


1;
