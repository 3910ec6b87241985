package ApiKey::Chaos::Nginx;

# The fault campaign's nginx instances, "a" and "b", two workers each:
# their configuration from a state (which of the module's directives are
# on), reloads that change one directive, and a worker's SIGKILL.
#
#   my $n = ApiKey::Chaos::Nginx->new($t, $servers, $tokens_file, $variant);
#   $n->start('a');
#   my $e = $n->reload('a', 'metrics');   # add or remove apikey_metrics
#   my $e = $n->kill_worker('b', 0);
#   my $e = $n->clock('a', -3600);       # step a's wall clock an hour back
#                                          (with clock => 1 to new())
#   $n->stop_all;                          # QUIT, bounded
#
# Gatekept requests are logged to chaos.log in the instance's prefix:
#   $msec $request_time $pid $connection $status s:$apikey_status
#   k:$apikey_id r:$http_x_chaos_req $uri
# (the prefixes keep a field when a variable is empty)
# ($msec is when the request ended, $msec - $request_time when it began).

use strict;
use warnings;

use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use ApiKey::Test::Util qw(wait_for);

# the http-level state each variant starts from
our %VARIANT = (
    none   => { cache => 0, lease => 0, metrics => 1, zone => '4m',
                max_stale => '30s' },
    cache  => { cache => 1, lease => 0, metrics => 1, zone => '4m',
                max_stale => '30s' },
    lease  => { cache => 1, lease => 1, metrics => 1, zone => '4m',
                max_stale => '30s' },
    closed => { cache => 1, lease => 0, metrics => 1, zone => '4m',
                max_stale => '1s', fail_mode => 'closed' },
);


# the library that gives a process a wall clock of its own (libfaketime)

sub faketime_lib {
    return (glob '/usr/lib/*/faketime/libfaketime.so.1')[0];
}


sub new {
    my ($class, $t, $servers, $tokens, $variant, %o) = @_;

    my $self = bless { t => $t, servers => $servers, tokens => $tokens,
                       state => {}, clock => $o{clock} }, $class;

    $self->{state}{$_} = { %{$VARIANT{$variant}} } for qw(a b);
    return $self;
}


sub port { $_[0]{t}->port("http_$_[1]") }

sub state { $_[0]{state}{$_[1]} }


# seconds, from an nginx time like 30s, 1s, 500ms

sub seconds {
    my ($v) = @_;
    return $1 / 1000 if $v =~ /^(\d+)ms$/;
    return $1 if $v =~ /^(\d+)s?$/;
    return $1 * 60 if $v =~ /^(\d+)m$/;
    die "bad time '$v'\n";
}


sub conf {
    my ($self, $inst) = @_;

    my $st = $self->{state}{$inst};
    my $port = $self->port($inst);
    my $redis = $self->{servers}->apikey_redis($inst);
    my $tokens = $self->{tokens};

    my $http = '';
    $http .= "apikey_cache zone=chaos:$st->{zone} max_stale=$st->{max_stale};\n"
        if $st->{cache};
    $http .= "    apikey_rate_lease 100ms;\n" if $st->{lease};
    $http .= "    apikey_fail_mode $st->{fail_mode};\n" if $st->{fail_mode};

    my $metrics = $st->{metrics}
        ? "location = /metrics {\n"
          . "            apikey_metrics;\n"
          . "            allow 127.0.0.1;\n"
          . "            deny all;\n"
          . "        }"
        : '';

    my $log = 'access_log chaos.log chaos;';

    # the workers keep the variables that move their wall clock
    my $env = $self->{clock}
        ? join('', map { "env $_;\n" } qw(FAKETIME_TIMESTAMP_FILE
                                         FAKETIME_CACHE_DURATION
                                         FAKETIME_DONT_FAKE_MONOTONIC))
        : '';

    return <<"EOF";

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 2;
$env
events {
    worker_connections 1024;
}

http {
    %%TEST_GLOBALS_HTTP%%

    log_format chaos '\$msec \$request_time \$pid \$connection \$status '
                     's:\$apikey_status k:\$apikey_id r:\$http_x_chaos_req '
                     '\$uri';
    access_log admin.log;

    apikey_redis $redis;
    apikey_admin_tokens $tokens;

    $http

    server {
        listen 127.0.0.1:$port;
        server_name localhost;

        location /api/ {
            apikey on;
            $log
            empty_gif;
        }

        location /scoped/ {
            apikey on;
            apikey_scope chaos:admin;
            $log
            empty_gif;
        }

        location /write/ {
            apikey on;
            apikey_scope chaos:write;
            $log
            empty_gif;
        }

        location /admin/ {
            apikey_admin;
        }

        $metrics
    }
}

EOF
}


sub start {
    my ($self, $inst) = @_;

    return $self->{t}->run_nginx($self->conf($inst), name => $inst)
        unless $self->{clock};

    # the instance's wall clock is the host's plus what its file says
    # (read again each second); its monotonic clock is the host's

    my $lib = faketime_lib()
        or die "the clock family needs libfaketime (apt-get install "
               . "libfaketime)\n";
    my $file = $self->{t}->dir . "/clock-$inst";
    _write_clock($file, 0);

    local $ENV{LD_PRELOAD} = $lib;
    local $ENV{FAKETIME_TIMESTAMP_FILE} = $file;
    local $ENV{FAKETIME_CACHE_DURATION} = 1;
    local $ENV{FAKETIME_DONT_FAKE_MONOTONIC} = 1;

    return $self->{t}->run_nginx($self->conf($inst), name => $inst);
}


sub _write_clock {
    my ($file, $offset) = @_;

    open my $fh, '>', "$file.new" or die "$file.new: $!";
    print $fh sprintf("%+d\n", $offset);
    close $fh;
    rename "$file.new", $file or die "$file: $!";
}


# A step of the instance's wall clock to the host's plus $offset seconds;
# each process of the instance takes it within a second

sub clock {
    my ($self, $inst, $offset) = @_;

    my $at = time;
    _write_clock($self->{t}->dir . "/clock-$inst", $offset);

    return { ev => 'clock_step', inst => $inst, offset => $offset, t => $at };
}


sub _describe {
    my ($st) = @_;
    return { map { $_ => $st->{$_} } grep { defined $st->{$_} }
             qw(cache lease metrics zone max_stale fail_mode) };
}


sub describe { _describe($_[0]{state}{$_[1]}) }


# One reload that adds or removes a directive: metrics (apikey_metrics),
# cache (apikey_cache, and leases with it), lease (apikey_rate_lease,
# and the cache it needs), zone (another size of the cache's zone).

sub reload {
    my ($self, $inst, $change) = @_;
    my $t = $self->{t};
    my $st = $self->{state}{$inst};
    my $before = _describe($st);

    if ($change eq 'metrics') {
        $st->{metrics} = !$st->{metrics} || 0;
    } elsif ($change eq 'cache') {
        $st->{cache} = !$st->{cache} || 0;
        $st->{lease} = 0 unless $st->{cache};
    } elsif ($change eq 'lease') {
        $st->{lease} = !$st->{lease} || 0;
        $st->{cache} = 1 if $st->{lease};
    } elsif ($change eq 'zone') {
        $st->{zone} = $st->{zone} eq '4m' ? '8m' : '4m';
        $st->{cache} = 1;
    }

    $t->write_config($self->conf($inst), $inst);

    my $start = time;
    my $ok = $t->reload_nginx($inst);

    return { ev => 'reload', inst => $inst, change => $change, t => $start,
             t_end => time, ok => $ok ? 1 : 0, before => $before,
             conf => _describe($st) };
}


sub kill_worker {
    my ($self, $inst, $which) = @_;
    my $t = $self->{t};

    my @w = $t->worker_pids($inst);
    my $pid = $w[$which % @w] or return { ev => 'worker_kill', inst => $inst,
                                           t => time, skipped => 'no worker' };

    my $at = time;
    kill 'KILL', $pid;

    # the master starts another
    my $back = wait_for(5, sub {
        my @now = $t->worker_pids($inst);
        @now >= 2 && !grep { $_ == $pid } @now;
    });

    return { ev => 'worker_kill', inst => $inst, pid => $pid, t => $at,
             t_end => time, respawned => $back ? 1 : 0 };
}


# QUIT both, so that workers send what they counted; bounded

sub stop_all {
    my ($self) = @_;
    my %ok;

    for my $inst (qw(a b)) {
        my $pid = $self->{t}->nginx_pid($inst) or next;
        kill 'QUIT', $pid;
    }

    for my $inst (qw(a b)) {
        my $pid = $self->{t}->nginx_pid($inst) or next;
        $ok{$inst} = wait_for(20, sub { waitpid($pid, WNOHANG) != 0 }) ? 1 : 0;
        $self->{t}->stop_nginx($inst, 'KILL') unless $ok{$inst};
        delete $self->{t}{nginx}{$inst}{pid};
    }

    return \%ok;
}


1;
