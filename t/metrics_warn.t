#!/usr/bin/perl

# apikey_metrics in a location that nothing restricts: one [warn] at
# start (nginx -t shows it), naming the location and where it is; none
# when allow/deny, auth_basic, auth_request or satisfy restrict it there
# or at a level it inherits from.  "off" restricts nothing.  The
# directives keep working as their own modules make them (a denied
# request is still 403), also after a reload, and after a reload to a
# configuration without the module once nginx has unloaded it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;

my $t = ApiKey::Test->new;

sub conf {
    my (%o) = @_;

    my $http = $o{http} // '';
    my $server = $o{server} // '';
    my $location = $o{location} // '';

    return <<"EOF";

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes 1;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    apikey_redis %%REDIS%%;
    $http

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;
        $server

        location = /metrics {
            apikey_metrics;
            $location
        }

        location /private/ {
            allow 127.0.0.2;
            deny all;
            empty_gif;
        }

        location = /auth {
            return 204;
        }
    }
}

EOF
}

my $warn = qr/\[warn\] .*"apikey_metrics" location "\/metrics" has no access restriction.* in \S+nginx\.conf:\d+/;

for my $c (
    [ 'no restriction', {}, 1 ],
    [ 'allow 127.0.0.1; deny all;',
      { location => 'allow 127.0.0.1; deny all;' }, 0 ],
    [ 'deny all alone', { location => 'deny all;' }, 0 ],
    [ 'auth_basic', { location => 'auth_basic "metrics"; '
                                  . 'auth_basic_user_file htpasswd;' }, 0 ],
    [ 'auth_basic off', { location => 'auth_basic off;' }, 1 ],
    [ 'auth_request', { location => 'auth_request /auth;' }, 0 ],
    [ 'auth_request off', { location => 'auth_request off;' }, 1 ],
    [ 'satisfy', { location => 'satisfy any;' }, 0 ],
    [ 'allow/deny at the server level', { server => 'allow 127.0.0.1; '
                                                    . 'deny all;' }, 0 ],
    [ 'allow/deny at the http level', { http => 'allow 127.0.0.1; '
                                                . 'deny all;' }, 0 ],
    [ 'allow/deny only in limit_except',
      { location => 'limit_except GET { deny all; }' }, 1 ],
    )
{
    my ($what, $o, $warns) = @$c;

    my ($rc, $out) = $t->nginx_test(conf(%$o));
    is($rc, 0, "$what: nginx -t passes") or diag($out);

    my $n = () = $out =~ /$warn/g;
    is($n, $warns, $warns ? "$what: one [warn]" : "$what: no [warn]")
        or diag($out);
}

# the wrapped directives still do their work, and a failed configuration
# leaves them working too

my ($rc, $out) = $t->nginx_test(conf(location => 'allow 127.0.0.1; '
                                                . 'deny all; nonsense;'));
isnt($rc, 0, 'a configuration that fails: nginx -t fails');

$t->run_redis;
$t->run_nginx(conf(location => 'allow 127.0.0.1; deny all;'));

my $port = $t->port(1);

is((http_get($port, '/metrics'))[0], 200, 'allowed: 200');
is((http_get($port, '/private/'))[0], 403, 'deny all elsewhere: 403');

$t->reload_nginx;

is((http_get($port, '/metrics'))[0], 200, 'after a reload, allowed: 200');
is((http_get($port, '/private/'))[0], 403, 'after a reload, denied: 403');

unlike($t->error_log, $warn, 'a restricted location: no [warn] at start');

# The command tables are nginx's own: once the configuration is read they
# are put back, so that a configuration without this module (which is
# unloaded then) still reads allow and deny with the access module's own
# handler.  nginx unloads the old cycle's modules 30 s after a reload (its
# fixed cleaner timer); the reload after that reads allow again.

(my $plain = conf(location => 'allow 127.0.0.1; deny all;'))
    =~ s/^(load_module|\s*apikey_).*$//mg;
$t->write_config($plain);

ok($t->reload_nginx, 'reloaded without the module');
is((http_get($port, '/private/'))[0], 403, 'without the module: 403');

sleep 31;

ok($t->reload_nginx, 'reloaded again once the module was unloaded');
is((http_get($port, '/private/'))[0], 403,
   'allow and deny still read by their own module: 403');
ok(kill(0, $t->nginx_pid), 'the master runs');

$t->error_log_clean;

done_testing;
