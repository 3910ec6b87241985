#!/usr/bin/perl

# Management tokens (SPEC section 6): made, listed, read and revoked
# through the admin API; akm_ tokens with the key format's checksum,
# shown once; permissions per route (403 insufficient_permission); no
# escalation; a revoked token refused by the other instance within 1 s;
# expired tokens refused; file tokens keep working; last_used_at; bad
# bodies 400; Idempotency-Key; the raw token in no Redis value or log.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes ();

use ApiKey::Test;
use ApiKey::Admin;

my $t = ApiKey::Test->new;
$t->run_redis;

my $tok = write_tokens($t, ops => '*', acme_ops => 'acme');

# two instances on one Redis
my $conf_a = admin_config($t);
(my $conf_b = $conf_a) =~ s/%%PORT_1%%/%%PORT_2%%/g;

$t->run_nginx($conf_a);
$t->run_nginx($conf_b, name => 'b');

my $ops = ApiKey::Admin->new($t, $tok->{ops});
my @raw;    # every raw management token made

sub as { ApiKey::Admin->new($t, $_[0], port => $_[1] // $t->port(1)) }

sub make_token {
    my ($by, %body) = @_;
    my $r = $by->post('tokens', \%body);
    push @raw, $r->{json}{token} if $r->{status} == 201;
    return $r;
}

###############################################################################
# create

my $r = make_token($ops, name => 'reader', orgs => ['acme'],
                   permissions => ['keys:read']);
is($r->{status}, 201, 'create: 201') or diag($r->{body});

my $reader = $r->{json};
like($reader->{token}, qr/^akm_[0-9A-Za-z]{49}$/,
     'the raw token: akm_ and 49 characters');

system($ApiKey::Test::KEYTOOL, 'check', $reader->{token});
is($?, 0, 'the raw token has a valid checksum');

like($reader->{id}, qr/^t_[0-9A-Za-z]{22}$/, 'id t_ and 22 base62');
is($reader->{name}, 'reader', 'name');
is_deeply($reader->{orgs}, ['acme'], 'orgs');
is_deeply($reader->{permissions}, ['keys:read'], 'permissions');
is($reader->{created_by}, 'ops', 'created_by: the file token\'s name');
is($reader->{prefix}, substr($reader->{token}, 0, 8),
   'prefix: the first 8 characters');
is($reader->{status}, 'active', 'active');
is($reader->{last_used_at}, undef, 'never used');
is($reader->{revoked_at}, undef, 'not revoked');
is(epoch($reader->{expires_at}) - epoch($reader->{created_at}), 180 * 86400,
   'expires 180 days after creation by default');

is(join(',', sort keys %$reader),
   join(',', sort qw(id name orgs permissions status created_at created_by
                     expires_at last_used_at revoked_at prefix token)),
   'the token object and the raw token, nothing else');

###############################################################################
# list and read: no raw token, no hash

my $hash = $t->key_hash($reader->{token});

$r = $ops->get('tokens');
is($r->{status}, 200, 'list: 200');
is($r->{json}{total_count}, 1, 'one token');
is($r->{json}{data}[0]{id}, $reader->{id}, 'the reader');
ok(!exists $r->{json}{data}[0]{token}, 'no raw token in the list');
unlike($r->{body}, qr/\Q$hash\E|\Q$reader->{token}\E/,
       'neither the raw token nor its hash in the list');

$r = $ops->get("tokens/$reader->{id}");
is($r->{status}, 200, 'get: 200');
is_deeply([sort keys %{$r->{json}}],
          [sort qw(id name orgs permissions status created_at created_by
                   expires_at last_used_at revoked_at prefix)],
          'get: the token object only');
unlike($r->{body}, qr/\Q$hash\E|\Q$reader->{token}\E/,
       'neither the raw token nor its hash in get');

is_admin_problem($ops->get('tokens/t_0000000000000000000000'), 404,
                 'token_not_found', 'get of an unknown token: 404');
is_admin_problem($ops->get('tokens/k_0000000000000000000000'), 404,
                 'token_not_found', 'a key id is no token id');

###############################################################################
# permissions of a keys:read token

my $rd = as($reader->{token});
$ops->create('acme', name => 'a key');

$r = $rd->get('orgs/acme/keys');
is($r->{status}, 200, 'keys:read lists keys') or diag($r->{body});
is($r->{json}{total_count}, 1, 'and sees the key');

is_admin_problem($rd->post('orgs/acme/keys', { name => 'no' }), 403,
                 'insufficient_permission', 'keys:read cannot create a key');
is_admin_problem($rd->get('orgs/acme/events'), 403,
                 'insufficient_permission', 'nor read events');
is_admin_problem($rd->get('tokens'), 403, 'insufficient_permission',
                 'nor list tokens');
is_admin_problem($rd->post('tokens', { name => 'x', orgs => ['acme'],
                                       permissions => ['keys:read'] }),
                 403, 'insufficient_permission', 'nor make tokens');
is_admin_problem($rd->get('orgs/beta/keys'), 403, 'forbidden_org',
                 'another organization: forbidden_org');

$r = $ops->get("tokens/$reader->{id}");
like($r->{json}{last_used_at} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
     'last_used_at set after use');
ok(abs(epoch($r->{json}{last_used_at}) - time) <= 2, 'to about now');

###############################################################################
# no escalation

$r = make_token($ops, name => 'acme-manager', orgs => ['acme'],
                permissions => ['keys:read', 'tokens:manage']);
is($r->{status}, 201, 'a manager for acme') or diag($r->{body});
my $mgr = as($r->{json}{token});
my $mgr_id = $r->{json}{id};

is_admin_problem(make_token($mgr, name => 'more', orgs => ['acme'],
                            permissions => ['keys:read', 'keys:write']),
                 403, 'insufficient_permission',
                 'no token with a permission it lacks');
is_admin_problem(make_token($mgr, name => 'wider', orgs => ['acme', 'beta'],
                            permissions => ['keys:read']),
                 403, 'insufficient_permission',
                 'no token for an organization it lacks');
is_admin_problem(make_token($mgr, name => 'all', orgs => ['*'],
                            permissions => ['keys:read']),
                 403, 'insufficient_permission', 'no ["*"] token');
is_admin_problem(make_token(as($tok->{acme_ops}), name => 'all',
                            orgs => ['*'], permissions => ['keys:read']),
                 403, 'insufficient_permission',
                 'nor from an org-limited file token');

$r = make_token($mgr, name => 'sub', orgs => ['acme'],
                permissions => ['keys:read']);
is($r->{status}, 201, 'a token within its own: made') or diag($r->{body});
is($r->{json}{created_by}, 'acme-manager',
   'created_by: the management token\'s name');
my $sub = as($r->{json}{token});

$r = make_token($ops, name => 'beta-reader', orgs => ['beta'],
                permissions => ['keys:read']);
my $beta_id = $r->{json}{id};

$r = $mgr->get('tokens');
is($r->{status}, 200, 'the manager lists tokens');
is_deeply([sort map { $_->{name} } @{$r->{json}{data}}],
          [sort qw(reader acme-manager sub)],
          'only those within its organizations');
is_admin_problem($mgr->get("tokens/$beta_id"), 404, 'token_not_found',
                 'another organization\'s token is not found');
is_admin_problem($mgr->post("tokens/$beta_id/revoke", undef), 404,
                 'token_not_found', 'nor revoked');

$r = $ops->get('tokens?per_page=2');
is($r->{json}{total_count}, 4, 'the file token lists all 4');
is_deeply([map { $_->{name} } @{$r->{json}{data}}], ['beta-reader', 'sub'],
          'newest first, a page of 2');
$r = $ops->get('tokens?per_page=2&page=2');
is_deeply([map { $_->{name} } @{$r->{json}{data}}],
          ['acme-manager', 'reader'], 'the second page: the reader last');

###############################################################################
# every route needs its permission: a token of one permission is refused
# (403 insufficient_permission) on every route of another

my $none = 'k_0000000000000000000000';
my %needs = (
    'GET orgs/acme/keys' => 'keys:read',
    'GET orgs/acme/keys/ID' => 'keys:read',
    'POST orgs/acme/keys' => 'keys:write',
    'PATCH orgs/acme/keys/ID' => 'keys:write',
    'DELETE orgs/acme/keys/ID' => 'keys:write',
    'POST orgs/acme/keys/ID/revoke' => 'keys:write',
    'POST orgs/acme/keys/ID/restore' => 'keys:write',
    'POST orgs/acme/keys/ID/rotate' => 'keys:write',
    'GET orgs/acme/keys/ID/usage' => 'usage:read',
    'GET orgs/acme/events' => 'events:read',
    'GET tokens' => 'tokens:manage',
    'POST tokens' => 'tokens:manage',
    'GET tokens/TID' => 'tokens:manage',
    'POST tokens/TID/revoke' => 'tokens:manage',
);

for my $perm (qw(keys:read keys:write usage:read events:read orgs:write
                 tokens:manage))
{
    my $one = as(make_token($ops, name => "only $perm", orgs => ['acme'],
                            permissions => [$perm])->{json}{token});
    my @wrong;

    for my $route (sort keys %needs) {
        my ($m, $path) = split / /, $route;
        $path =~ s/TID/t_0000000000000000000000/;
        $path =~ s/ID/$none/;
        my $body = $m eq 'POST' && $path eq 'tokens'
                   ? { name => 'x', orgs => ['acme'],
                       permissions => [$perm] }
                 : $m eq 'POST' && $path =~ /keys$/ ? { name => 'x' }
                 : $m eq 'PATCH' ? { name => 'x' } : undef;
        my $r = $one->request($m, $path, body => $body);
        push @raw, $r->{json}{token} if $r->{status} == 201
                                         && $r->{json}{token};
        my $refused = $r->{status} == 403
                      && ($r->{json}{code} // '') eq 'insufficient_permission';
        push @wrong, "$route: $r->{status}"
            if $refused != ($needs{$route} ne $perm);
    }

    is("@wrong", '', "a $perm token: only its own routes");
}

###############################################################################
# validation

for my $c (
    [{ orgs => ['acme'], permissions => ['keys:read'] }, 'invalid_field',
     'no name'],
    [{ name => 'n', permissions => ['keys:read'] }, 'invalid_field',
     'no orgs'],
    [{ name => 'n', orgs => ['acme'] }, 'invalid_field', 'no permissions'],
    [{ name => 'n', orgs => [], permissions => ['keys:read'] },
     'invalid_field', 'empty orgs'],
    [{ name => 'n', orgs => ['*', 'acme'], permissions => ['keys:read'] },
     'invalid_field', '"*" with others'],
    [{ name => 'n', orgs => ['a/b'], permissions => ['keys:read'] },
     'invalid_field', 'a bad organization'],
    [{ name => 'n', orgs => ['acme'], permissions => ['keys:delete'] },
     'invalid_field', 'an unknown permission'],
    [{ name => 'n', orgs => ['acme'], permissions => ['keys:read',
                                                      'keys:read'] },
     'invalid_field', 'a repeated permission'],
    [{ name => 'n', orgs => ['acme'], permissions => ['keys:read'],
       expires_in => 59 }, 'invalid_field', 'expires_in under 60 s'],
    [{ name => 'n', orgs => ['acme'], permissions => ['keys:read'],
       expires_in => 2 * 365 * 86400 + 1 }, 'invalid_field',
     'expires_in over 2 years'],
    [{ name => 'n', orgs => ['acme'], permissions => ['keys:read'],
       expires_in => 3600, expires_at => '2099-01-01T00:00:00Z' },
     'invalid_field', 'both expires_in and expires_at'],
    [{ name => 'n', orgs => ['acme'], permissions => ['keys:read'],
       expires_at => undef }, 'invalid_field', 'expires_at null'],
    [{ name => 'n', orgs => ['acme'], permissions => ['keys:read'],
       expires_at => '2099-01-01T00:00:00Z' }, 'invalid_field',
     'expires_at past 2 years'],
    [{ name => 'n', orgs => ['acme'], permissions => ['keys:read'],
       expires_at => '2020-01-01T00:00:00Z' }, 'invalid_field',
     'expires_at in the past'],
    [{ name => 'n', orgs => ['acme'], permissions => ['keys:read'],
       scopes => [] }, 'invalid_field', 'a key field'],
    [{ name => 'n', orgs => ['acme'], permissions => ['keys:read'],
       color => 'red' }, 'unknown_field', 'an unknown field'],
) {
    is_admin_problem(make_token($ops, %{$c->[0]}), 400, $c->[1],
                     "400 for $c->[2]");
}

$r = make_token($ops, name => 'short', orgs => ['acme'],
                permissions => ['keys:read'], expires_in => 3600);
is($r->{status}, 201, 'expires_in 3600: made') or diag($r->{body});
is(epoch($r->{json}{expires_at}) - epoch($r->{json}{created_at}), 3600,
   'expires an hour after creation');

###############################################################################
# Idempotency-Key

my %idem = (headers => { 'Idempotency-Key' => 'tok-1' });
my $body = { name => 'idem', orgs => ['acme'], permissions => ['keys:read'] };

my $first = $ops->post('tokens', $body, %idem);
is($first->{status}, 201, 'with an Idempotency-Key: 201');
push @raw, $first->{json}{token};

my $again = $ops->post('tokens', $body, %idem);
is($again->{status}, 201, 'the retry: 201 again');
is($again->{json}{id}, $first->{json}{id}, 'the same token');
is($again->{json}{token}, $first->{json}{token}, 'its raw token again');

is_admin_problem($ops->post('tokens', { %$body, name => 'other' }, %idem),
                 422, 'idempotency_key_reused', 'another body: 422');

$r = $ops->get('tokens?per_page=100');
is(scalar(grep { $_->{name} eq 'idem' } @{$r->{json}{data}}), 1,
   'one token made');

# two management tokens of one name: the same Idempotency-Key is each
# one's own

my @twins = map {
    as(make_token($ops, name => 'twin', orgs => ['acme'],
                  permissions => ['keys:write'])->{json}{token})
} 1 .. 2;
my @made = map {
    $_->post('orgs/acme/keys', { name => 'by a twin' }, %idem)
} @twins;
is_deeply([map { $_->{status} } @made], [201, 201],
          'two tokens of one name, one Idempotency-Key: both create');
isnt($made[0]{json}{id}, $made[1]{json}{id}, 'two keys, not a replay');
is($made[0]{json}{created_by}, 'twin',
   'a key\'s created_by: the management token\'s name');
$r = $ops->get('orgs/acme/events?per_page=1');
is_deeply([map { [$_->{actor}, $_->{action}] } @{$r->{json}{data}}],
          [['twin', 'created']], 'the event\'s actor: its name too');

###############################################################################
# revocation: refused by the other instance within 1 s

my $rd_b = as($reader->{token}, $t->port(2));

is($rd_b->get('orgs/acme/keys')->{status}, 200,
   'the reader works on the other instance');

$r = $ops->post("tokens/$reader->{id}/revoke", undef);
is($r->{status}, 200, 'revoke: 200') or diag($r->{body});
is($r->{json}{status}, 'revoked', 'status revoked');
like($r->{json}{revoked_at} // '', qr/Z$/, 'revoked_at set');

my $revoked = Time::HiRes::time;
my $refused = wait_for(1, sub { $rd_b->get('orgs/acme/keys')->{status} == 401 });
my $took = Time::HiRes::time - $revoked;

ok($refused, 'the other instance refuses it within 1 s')
    or diag("after $took s");
note(sprintf('the other instance refused it %.3f s after the revocation',
             $took));

$r = $rd_b->get('orgs/acme/keys');
is_admin_problem($r, 401, 'unauthorized', 'revoked: 401 unauthorized');
like($r->{headers}{'www-authenticate'} // '', qr/^Bearer/i,
     'with WWW-Authenticate: Bearer');
is($rd->get('orgs/acme/keys')->{status}, 401, 'and so does this one');

is_admin_problem($ops->post("tokens/$reader->{id}/revoke", undef), 400,
                 'already_revoked', 'revoked twice: 400');
is_admin_problem($ops->post('tokens/t_0000000000000000000000/revoke',
                            undef),
                 404, 'token_not_found', 'revoke of an unknown token: 404');

###############################################################################
# expiry: a record whose expires_at has passed (written by hand, as
# docs/data-model.md describes it)

is($mgr->get('tokens')->{status}, 200, 'the manager works');
$t->redis('HSET', "apikey:tok:$mgr_id", 'expires_at', time - 1);
is_admin_problem($mgr->get('tokens'), 401, 'unauthorized',
                 'expired: 401 unauthorized');
is($ops->get("tokens/$mgr_id")->{json}{status}, 'expired',
   'its status: expired');

###############################################################################
# file tokens, malformed tokens

is($ops->get('orgs/acme/keys')->{status}, 200, 'the file token still works');
is(as($tok->{acme_ops})->get('tokens')->{status}, 200,
   'an org-limited file token holds every permission');

my $bad = $reader->{token};
substr($bad, -1, 1) = substr($bad, -1, 1) eq 'A' ? 'B' : 'A';
is(as($bad)->get('orgs/acme/keys')->{status}, 401,
   'a token with a bad checksum: 401');
is(as($t->raw_key('akm'))->get('orgs/acme/keys')->{status}, 401,
   'an unknown akm_ token: 401');

###############################################################################
# the raw tokens are nowhere in Redis or the logs

my $dump = $t->redis_dump(streams => 1);

ok(!(grep { index($dump, $_) >= 0 } @raw), 'no raw token in Redis');
like($dump, qr/\Q$hash\E/, 'the token\'s hash is there');

$t->log_contains_no($_, 'management token') for @raw;

###############################################################################
# Redis down: a management token cannot be checked

is($sub->get('orgs/acme/keys')->{status}, 200, 'a valid token works');
$t->stop_redis;
is_admin_problem($sub->get('orgs/acme/keys'), 503, 'store_unavailable',
                 'Redis down: 503 store_unavailable, not 401');
is_admin_problem(as($t->raw_key('ak'))->get('orgs/acme/keys'), 401,
                 'unauthorized', 'a token of no management shape: 401 still');

$t->error_log_clean;

done_testing();

###############################################################################

sub epoch {
    my ($s) = @_;
    my ($y, $mo, $d, $h, $mi, $sec) =
        ($s // '') =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z$/
        or return 0;
    require Time::Local;
    return Time::Local::timegm($sec, $mi, $h, $d, $mo - 1, $y);
}
