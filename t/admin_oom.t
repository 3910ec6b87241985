#!/usr/bin/perl

# Out of memory while the admin API builds an answer: a create whose text
# field cannot be copied, and a usage answer whose buckets cannot be
# allocated, answer 503 out_of_memory (problem+json, Retry-After), not a
# 500 or a dropped connection, and change nothing; the next call works.
# malloc() is made to fail for one chosen size (the LD_PRELOAD below)
# while a file exists; a small request pool makes the text's copy an
# allocation of its own.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use POSIX qw(floor);

use ApiKey::Test;
use ApiKey::Admin;

# under the sanitizers (make check) malloc() is the sanitizer's own, in
# nginx's binary: a preloaded one is never called
plan skip_all => 'malloc() is the sanitizer\'s under make check'
    if $ENV{ASAN_OPTIONS};

my $t = ApiKey::Test->new;

# malloc() fails for the sizes listed in APIKEY_OOM_SIZES while the file
# APIKEY_OOM_FILE exists

my $shim = <<'EOF';
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>


extern void *__libc_malloc(size_t size);


void *
malloc(size_t size)
{
    char        *p, *end;
    const char  *file, *sizes;

    file = getenv("APIKEY_OOM_FILE");
    sizes = getenv("APIKEY_OOM_SIZES");

    if (file != NULL && sizes != NULL && access(file, F_OK) == 0) {

        for (p = (char *) sizes; *p; p = end + (*end == ',')) {
            if (strtoul(p, &end, 10) == size) {
                errno = ENOMEM;
                return NULL;
            }

            if (end == p) {
                break;
            }
        }
    }

    return __libc_malloc(size);
}
EOF

my $c = $t->dir . '/oom_malloc.c';
my $so = $t->dir . '/oom_malloc.so';

open my $fh, '>', $c or die "$c: $!";
print $fh $shim;
close $fh;

system('cc', '-shared', '-fPIC', '-O2', '-o', $so, $c) == 0
    or plan(skip_all => 'cannot build the malloc shim');

$t->run_redis;

my $tok = write_tokens($t, ops => '*');
my $armed = $t->dir . '/oom';

# 150 characters of two bytes: the copy is 301 bytes; jansson's own
# buffer for the escaped text is another size

my $text = "\x{e9}" x 150;
my $hours = 721;

{
    local $ENV{LD_PRELOAD} = $so;
    local $ENV{APIKEY_OOM_FILE} = $armed;
    local $ENV{APIKEY_OOM_SIZES} = join ',', 301, $hours * 3 * 8;

    # workers see only the environment "env" keeps

    $t->run_nginx("env APIKEY_OOM_FILE;\nenv APIKEY_OOM_SIZES;\n"
                  . admin_config($t, workers => 1,
                                 server => 'request_pool_size 256;'));
}

my $adm = ApiKey::Admin->new($t, $tok->{ops});
my $k = $adm->create('acme', name => 'for usage');

sub arm { open my $fh, '>', $armed or die; close $fh }
sub disarm { unlink $armed }

###############################################################################
# the body's text

arm();
my $r = $adm->post('orgs/acme/keys', { name => 'oom', description => $text });
disarm();

is_admin_problem($r, 503, 'out_of_memory', 'a create out of memory');
is($r->{headers}{'retry-after'}, 1, 'with Retry-After');

my $l = $adm->get('orgs/acme/keys')->{json};
is($l->{total_count}, 1, 'nothing was made');

$r = $adm->post('orgs/acme/keys', { name => 'oom', description => $text });
is($r->{status}, 201, 'the next create works');
is($r->{json}{description}, $text, 'with the text');

###############################################################################
# the usage answer's buckets

my $from = (floor(time / 3600) - ($hours - 1)) * 3600;
my $q = "orgs/acme/keys/$k->{id}/usage?granularity=hour"
        . '&from=' . iso($from) . '&to=' . iso($from + $hours * 3600);

arm();
$r = $adm->get($q);
disarm();

is_admin_problem($r, 503, 'out_of_memory', 'a usage answer out of memory');

$r = $adm->get($q);
is($r->{status}, 200, 'the next one works');
is(scalar @{$r->{json}{data} || []}, $hours, "with its $hours buckets");

like($t->error_log, qr/\[error\].*apikey admin: out of memory/,
     'each is logged');

# nginx's own ngx_alloc() logs each failed malloc() at emerg: nothing else

my $own = qr/\[emerg\].* malloc\((301|17304)\) failed/;
my @bad = grep { /\[(alert|crit|emerg)\]/ && !/$own/ } split /\n/,
          $t->error_log;
ok(!@bad, 'no alert, crit or emerg but the failed malloc() calls')
    or diag(join "\n", @bad);

done_testing;

sub iso {
    my @t = gmtime shift;
    return sprintf '%04d-%02d-%02dT%02d:%02d:%02dZ', $t[5] + 1900, $t[4] + 1,
                   @t[3, 2, 1, 0];
}
