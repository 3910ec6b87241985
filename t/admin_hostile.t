#!/usr/bin/perl

# A Redis that is broken or hostile gets no further into the admin API
# than into the gatekeeper: its error text is logged escaped, and a script
# result whose code or detail is not plain text, or whose key id is no
# name, is an unexpected reply (500), not a problem body or a log line
# that it wrote.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use ApiKey::Test;
use ApiKey::Admin;
use ApiKey::FakeRedis;

my $t = ApiKey::Test->new;

my $forged = '2030/01/01 00:00:00 [notice] 1#1: forged';

# a key whose id holds a line of its own

my @f = ("k1\n$forged", 'acme', 'n', undef, 'ak', 'production', '[]', '5',
         '1', '5', '1700000000', 'ops', '1700000000', undef, undef, '0');

my $fake = ApiKey::FakeRedis->modes($t,
    error => "-ERR x\n$forged\r\n",
    detail => "*2\r\n\$13\r\nkey_not_found\r\n\$9\r\nno \"such\"\r\n",
    id => "*4\r\n\$2\r\nok\r\n\$0\r\n\r\n:1700000000\r\n*16\r\n"
          . join('', map { defined $_ ? '$' . length($_) . "\r\n$_\r\n"
                                      : "\$-1\r\n" } @f));

my $tok = write_tokens($t, ops => '*');

(my $conf = admin_config($t, workers => 1))
    =~ s/%%REDIS%%/127.0.0.1:${\ $fake->port }/;

$t->run_nginx($conf);

my $a = ApiKey::Admin->new($t, $tok->{ops});
my $id = 'k_' . ('A' x 22);

sub forged { grep { /^\Q$forged\E/ } split /\n/, $t->error_log }

$fake->mode('error');
is($a->get("orgs/acme/keys/$id")->{status}, 503,
   'a Redis error: 503 store_unavailable');
like($t->error_log, qr/redis error: ERR x\\x0a2030/,
     'its text is logged escaped');
ok(!forged(), 'no log line of its own');

$fake->mode('detail');
is($a->get("orgs/acme/keys/$id")->{status}, 500,
   'a detail that would break out of the problem body: 500');

$fake->mode('id');
is($a->get("orgs/acme/keys/$id")->{status}, 500,
   'a key id that is no name: 500');
ok(!forged(), 'nor a log line of its own');

like($t->error_log, qr/unexpected (reply|key) from the get script/,
     'unexpected replies are logged');
unlike($t->error_log, qr/exited on signal|Sanitizer|runtime error:/,
       'no worker crashed');

$t->stop_nginx;

done_testing;
