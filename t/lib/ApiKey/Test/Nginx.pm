package ApiKey::Test::Nginx;

# nginx instances of a test: the configuration's macros, start, reload
# and stop by pid, and the closing checks of their logs.  Methods of
# ApiKey::Test (its parent class).
#
#   $t->run_nginx($conf, name => 'a');
#   $t->reload_nginx('a');
#   $t->error_log_clean;

use strict;
use warnings;

use File::Find qw(find);
use File::Path qw(make_path);
use POSIX qw(WNOHANG);
use Test::More;

use ApiKey::Test::Util qw($WAIT wait_for _can_connect _stop_pid _slurp
                          _tail);


sub expand {
    my ($self, $conf, $prefix) = @_;

    my $redis = '127.0.0.1:' . ($self->{redis_port} //= $self->port('redis'));

    my $globals = "daemon off;\nmaster_process on;\npid $prefix/nginx.pid;";

    $conf =~ s/%%TEST_GLOBALS%%/$globals/g;
    $conf =~ s/%%TEST_GLOBALS_HTTP%%/join "\n", map {
                   "${_}_temp_path $prefix\/${_}_temp;"
               } qw(client_body proxy fastcgi uwsgi scgi)/ge;
    $conf =~ s/%%PORT_(\w+)%%/$self->port($1)/ge;
    $conf =~ s/%%REDIS%%/$redis/g;
    $conf =~ s/%%REDIS_SOCK%%/$self->redis_sock/ge;
    $conf =~ s/%%MODULE%%/$ApiKey::Test::MODULE/g;
    $conf =~ s/%%PREFIX%%/$prefix/g;

    return $conf;
}


sub _prefix {
    my ($self, $name) = @_;

    my $prefix = "$self->{dir}/$name";
    make_path("$prefix/logs");
    chmod 0755, $prefix, "$prefix/logs";
    return $prefix;
}


sub write_config {
    my ($self, $conf, $name) = @_;

    my $prefix = $self->_prefix($name // 'nginx');
    open my $fh, '>', "$prefix/nginx.conf" or die "$prefix/nginx.conf: $!";
    print $fh $self->expand($conf, $prefix);
    close $fh;
    return $prefix;
}


# nginx -t on a config: (exit code, what nginx printed)

sub nginx_test {
    my ($self, $conf, $name) = @_;

    $name //= 'conftest';
    my $prefix = $self->write_config($conf, $name);
    unlink "$prefix/error.log";

    my $out = `$ApiKey::Test::NGINX -t -p $prefix/ -c nginx.conf -e error.log 2>&1`;
    return ($? >> 8, $out);
}


# Starts nginx (daemon off, so the pid we fork is the master's) and waits
# until every port it listens on accepts connections.

sub run_nginx {
    my ($self, $conf, %opt) = @_;

    my $name = $opt{name} // 'nginx';
    my $prefix = $self->write_config($conf, $name);
    my $expanded = _slurp("$prefix/nginx.conf");
    my @ports = $expanded =~ /^\s*listen\s+(?:127\.0\.0\.1:)?(\d+)/mg;

    my $pid = $self->_spawn("$prefix/stderr.log", $ApiKey::Test::NGINX, '-p', "$prefix/",
                            '-c', 'nginx.conf', '-e', 'error.log');

    $self->{nginx}{$name} = { pid => $pid, prefix => $prefix };

    my $up = wait_for($WAIT, sub {
        if (waitpid($pid, WNOHANG) != 0) {
            delete $self->{nginx}{$name}{pid};
            die "nginx '$name' exited at start:\n"
                . _tail("$prefix/error.log") . _tail("$prefix/stderr.log");
        }
        !grep { !_can_connect($_) } @ports;
    });

    die "nginx '$name' did not listen on @ports in $WAIT s\n" unless $up;

    # workers must exist before tests count or signal them
    wait_for($WAIT, sub { $self->worker_pids($name) })
        or die "nginx '$name' started no worker in $WAIT s\n";

    return $self;
}


sub nginx_pid { $_[0]{nginx}{$_[1] // 'nginx'}{pid} }
sub prefix { $_[0]{nginx}{$_[1] // 'nginx'}{prefix} }


sub worker_pids {
    my ($self, $name) = @_;

    my $master = $self->nginx_pid($name) or return ();
    my @pids;

    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        # pid (comm) state ppid; under the sanitizers the master may also
        # have an llvm-symbolizer child, which is no worker, and is named
        # nginx until it has run exec: a worker has set its title
        next unless $line =~ /^(\d+) \((.*)\) \S (\d+)/
                    && $3 == $master && $2 eq 'nginx';
        my $pid = $1;
        open my $cmd, '<', "/proc/$pid/cmdline" or next;
        my $title = <$cmd> // '';
        push @pids, $pid if $title =~ /^nginx: worker process/;
    }

    @pids = sort { $a <=> $b } @pids;
    return @pids;
}


# SIGHUP, then wait until every old worker has exited and new ones run.

sub reload_nginx {
    my ($self, $name) = @_;

    my @old = $self->worker_pids($name);
    my %old = map { $_ => 1 } @old;

    kill 'HUP', $self->nginx_pid($name);

    return wait_for($WAIT * 2, sub {
        my @now = $self->worker_pids($name);
        @now && !grep { $old{$_} } @now;
    });
}


# Stops nginx by pid: QUIT (graceful) by default.  Returns true if the
# master exited in time.

sub stop_nginx {
    my ($self, $name, $sig) = @_;

    my $n = $self->{nginx}{$name // 'nginx'} or return 1;
    return _stop_pid(delete $n->{pid}, $sig // 'QUIT');
}


sub error_log {
    my ($self, $name) = @_;
    return _slurp($self->prefix($name) . '/error.log');
}


# a file of an instance's prefix, e.g. $t->read_file('access.log')
sub read_file {
    my ($self, $file, $name) = @_;
    return _slurp($self->prefix($name) . "/$file");
}


# The closing test of every file: no alert, crit, emerg or sanitizer
# report in any nginx instance's error log (or on its stderr).

sub error_log_clean {
    my ($self) = @_;

    for my $name (sort keys %{$self->{nginx}}) {
        my $prefix = $self->{nginx}{$name}{prefix};
        my @bad = grep {
            /\[(alert|crit|emerg)\]|Sanitizer|runtime error:/
        } map { split /\n/, _slurp("$prefix/$_") } qw(error.log stderr.log);

        ok(!@bad, "no alert, crit, emerg or sanitizer lines in ${name}'s logs")
            or diag(join "\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]);
    }
}


# A secret must appear in no file the test wrote: error and access logs of
# every instance, Redis' log, MONITOR captures.  nginx's own debug dump of
# the client's request headers ("http header: ...") is not the module's
# doing and is left out.

sub log_contains_no {
    my ($self, $secret, $what) = @_;
    my @found;

    find({ no_chdir => 1, wanted => sub {
        return unless -f $_ && !/\.conf$/;
        (my $text = _slurp($_)) =~ s/^.*\[debug\].* http header: ".*$//mg;
        push @found, $_ if index($text, $secret) >= 0;
    } }, $self->{dir});

    ok(!@found, 'no raw key in logs' . ($what ? " ($what)" : ''))
        or diag("found in: @found");
}

1;
