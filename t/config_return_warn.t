#!/usr/bin/perl

# rewrite's "return" answers in the rewrite phase, before the access phase
# where "apikey on" checks the key: nginx -t warns of a location (or an
# "if" in it) that has both, or that inherits the server's return, naming
# where the return is and the location; none for "apikey on" without a
# return, nor for a return without "apikey on".  The return still answers
# as its module makes it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;

my $t = ApiKey::Test->new;
$t->run_redis;

sub conf {
    my ($server, $locations) = @_;

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

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;
        $server

        $locations
    }
}

EOF
}

my $warn = qr/\[warn\] "return" in \S+nginx\.conf:(\d+) answers in the rewrite phase, before "apikey on" checks the key in the access phase: the requests it answers in "([^"]*)" are not checked/;

sub warnings {
    my ($rc, $out) = $t->nginx_test($_[0]);
    is($rc, 0, "nginx -t passes: $_[1]") or diag($out);
    my @w;
    while ($out =~ /$warn/g) {
        push @w, "$2:$1";
    }
    return \@w;
}

my $w = warnings(conf('', <<'EOF'), 'return in a gatekept location');
        location /open/ {
            return 200 "open";
        }

        location /gated/ {
            apikey on;
            empty_gif;
        }

        location /skipped/ {
            apikey on;
            return 200 "not checked";
        }

        location /maybe/ {
            apikey on;
            if ($arg_x) {
                return 204;
            }
            empty_gif;
        }
EOF

is_deeply([ sort map { (split /:/)[0] } @$w ], [ '/maybe/', '/skipped/' ],
          'a warning for the location with a return, and for the one with '
          . 'a return in an "if", none for the others') or diag(explain $w);

$w = warnings(conf('return 301 https://example.com$request_uri;', <<'EOF'),
        location /gated/ {
            apikey on;
            empty_gif;
        }

        location /plain/ {
            empty_gif;
        }
EOF
              'return at the server level');

is_deeply([ map { (split /:/)[0] } @$w ], [ '/gated/' ],
          'a server\'s return warns in each gatekept location it skips')
    or diag(explain $w);

$w = warnings(conf('', <<'EOF'), 'no return');
        location /gated/ {
            apikey on;
            empty_gif;
        }
EOF

is_deeply($w, [], 'no warning without a return');

# the return still answers, unchecked, as its module makes it

$t->run_nginx(conf('', <<'EOF'));
        location /skipped/ {
            apikey on;
            return 200 "not checked";
        }
EOF

my ($st, undef, $body) = http_get($t->port(1), '/skipped/');
is($st, 200, 'the return still answers');
is($body, 'not checked', 'with its own body');

$t->error_log_clean;

done_testing;
