package ApiKey::Admin;

# Helpers for the admin API tests, on top of ApiKey::Test:
#
#   my $t = ApiKey::Test->new;
#   $t->run_redis;
#   my $tok = write_tokens($t, ops => '*', acme_only => 'acme');
#   $t->run_nginx(admin_config($t, http => 'apikey_max_keys 10;'));
#   my $a = ApiKey::Admin->new($t, $tok->{ops});
#   my $r = $a->post('orgs/acme/keys', { name => 'x' });   # {status, ...}
#   is_admin_problem($r, 400, 'invalid_field', 'name is required');
#
# reset_proxy() stands between nginx and Redis and drops connections just
# after a command reached Redis, before its reply gets back.
#
# admin_config() serves the admin API at /admin/ and a gatekept location
# at /api/ (empty_gif; X-Apikey-* headers carry the variables) on
# %%PORT_1%%.

use strict;
use warnings;

use Exporter qw(import);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use Socket qw(SOL_SOCKET SO_LINGER);
use Test::More;
use Time::HiRes ();

use ApiKey::Test;

our @EXPORT = qw(write_tokens admin_config is_admin_problem gate load_keys
                 reset_proxy parallel);

my $JSON = JSON::PP->new->utf8->canonical;

my %title = (
    400 => 'Bad Request', 401 => 'Unauthorized', 403 => 'Forbidden',
    404 => 'Not Found', 405 => 'Method Not Allowed',
    413 => 'Content Too Large', 415 => 'Unsupported Media Type',
    422 => 'Unprocessable Content', 503 => 'Service Unavailable',
);


# Makes a token per name with admin/apikey-token and writes the token
# file "tokens" in the test directory; returns { name => raw token }.

sub write_tokens {
    my ($t, %orgs) = @_;
    my (%token, $file);

    $file = '';

    for my $name (sort keys %orgs) {
        open my $fh, '-|', "$ApiKey::Test::ROOT/admin/apikey-token", $name,
            $orgs{$name}
            or die "apikey-token: $!";
        chomp(my $token = <$fh> // '');
        chomp(my $line = <$fh> // '');
        close $fh;
        die "apikey-token $name failed\n" if $? || !$line;

        $token{$name} = $token;
        $file .= "$line\n";
    }

    open my $out, '>', tokens_file($t) or die "tokens: $!";
    print $out $file;
    close $out;
    chmod 0644, tokens_file($t);

    return \%token;
}


sub tokens_file { $_[0]->dir . '/tokens' }


# The usual test configuration.  Options: http, server, admin, api (more
# directives at those levels), workers (default 2).

sub admin_config {
    my ($t, %o) = @_;

    my $tokens = tokens_file($t);
    my $workers = $o{workers} // 2;
    my $http = $o{http} // '';
    my $server = $o{server} // '';
    my $admin = $o{admin} // '';
    my $api = $o{api} // '';

    return <<"EOF";

%%TEST_GLOBALS%%
load_module %%MODULE%%;
error_log error.log info;
worker_processes $workers;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    access_log access.log;

    apikey_redis %%REDIS%%;
    apikey_admin_tokens $tokens;

    $http

    server {
        listen 127.0.0.1:%%PORT_1%%;
        server_name localhost;

        $server

        location /admin/ {
            apikey_admin;
            $admin
        }

        location /api/ {
            apikey on;
            add_header X-Apikey-Status \$apikey_status always;
            add_header X-Apikey-Id \$apikey_id always;
            add_header X-Apikey-Name \$apikey_name always;
            add_header X-Apikey-Prefix \$apikey_prefix always;
            $api
            empty_gif;
        }
    }
}

EOF
}


sub new {
    my ($class, $t, $token, %o) = @_;

    return bless { t => $t, token => $token, port => $o{port} // $t->port(1),
                   base => $o{base} // '/admin/' }, $class;
}


sub token { $_[0]{token} }
sub port { $_[0]{port} }


# A request to the admin API: $path is relative to /admin/.  Options:
# token (undef: none; default the object's), body (a reference is sent as
# JSON; a string as is), type (Content-Type; default application/json
# when there is a body), headers, raw_headers (header lines as they are
# sent).  Returns {status, headers, body, json}.

sub request {
    my ($self, $method, $path, %o) = @_;

    my $token = exists $o{token} ? $o{token} : $self->{token};
    my $body = $o{body};
    my %h = %{$o{headers} || {}};

    $body = $JSON->encode($body) if ref $body;

    $h{Authorization} //= "Bearer $token" if defined $token;

    if (defined $body) {
        $h{'Content-Type'} //= $o{type} // 'application/json'
            unless exists $o{type} && !defined $o{type};
        $h{'Content-Length'} = length $body;
    }

    my $req = "$method $self->{base}$path HTTP/1.0\r\nHost: localhost\r\n";

    for my $name (sort keys %h) {
        $req .= "$name: $h{$name}\r\n";
    }

    $req .= $o{raw_headers} // '';

    $req .= "\r\n" . ($body // '');

    my ($status, $headers, $resp) = http_request($self->{port}, $req,
                                                 %{$o{http} || {}});

    my $json = eval { JSON::PP->new->utf8->decode($resp) };

    return { status => $status // 0, headers => $headers, body => $resp,
             json => $json };
}


sub get { my ($s, $p, %o) = @_; $s->request('GET', $p, %o) }
sub delete { my ($s, $p, %o) = @_; $s->request('DELETE', $p, %o) }
sub post { my ($s, $p, $b, %o) = @_; $s->request('POST', $p, body => $b, %o) }
sub patch { my ($s, $p, $b, %o) = @_; $s->request('PATCH', $p, body => $b, %o) }


# Creates a key and dies unless it was created; returns the 201 body.

sub create {
    my ($self, $org, %fields) = @_;

    $fields{name} //= 'key ' . int(rand(1e9));

    my $r = $self->post("orgs/$org/keys", \%fields);

    die "create in $org: $r->{status} $r->{body}\n" unless $r->{status} == 201;
    return $r->{json};
}


# A request to the gatekept location /api/ with a key: (status, headers).

sub gate {
    my ($port, $key, $path) = @_;

    my ($status, $h) = http_get($port, '/api/' . ($path // ''),
                                defined $key ? { 'X-API-Key' => $key } : {});
    return ($status // 0, $h);
}


# Creates n keys in an organization quickly: the admin create script
# itself, sent over redis-cli --pipe.  Options: name and env (code refs
# of the index, 1 .. n), rate, namespace.  Returns the keys in creation
# order as [{id, name, env}].  The raw keys are not made (hashes are
# random), so these keys only serve the admin API.

sub load_keys {
    my ($t, $org, $n, %o) = @_;

    my $ns = $o{namespace} // 'apikey:';
    my $name = $o{name} // sub { sprintf('bulk key %06d', $_[0]) };
    my $env = $o{env} // sub { 'production' };

    # the script Redis runs: the admin library, then the create script

    my $script = '';

    for my $f (qw(ngx_http_apikey_admin_lib.lua.in
                  ngx_http_apikey_admin_create.lua))
    {
        my $path = "$ApiKey::Test::ROOT/admin/$f";
        open my $fh, '<', $path or die "$path: $!";
        $script .= do { local $/; <$fh> };
        close $fh;
    }

    my $sha = $t->redis('SCRIPT', 'LOAD', $script);

    my @a = ('0' .. '9', 'A' .. 'Z', 'a' .. 'z');
    my $r62 = sub { join '', map { $a[int rand 62] } 1 .. $_[0] };
    my (@keys, $resp);

    for my $i (1 .. $n) {
        my $id = 'k_' . $r62->(22);
        my $hash = join '', map { sprintf '%02x', int rand 256 } 1 .. 32;
        my @cmd = ('EVALSHA', $sha, 9, "${ns}key:$id", "${ns}org:$org:keys",
                   "${ns}org:$org:idx", "${ns}org:$org:active",
                   "${ns}org:$org:events", "${ns}org:$org:rebuild",
                   "${ns}org:$org:idx:new", "${ns}org:$org:active:new",
                   "$ns\{$hash\}", $ns, $org, $id,
                   $name->($i), '', 'ak_' . $r62->(5), $env->($i), '[]',
                   $o{rate} // 0, 1, 1, 0, 0, 0, 0, 'bulk', $hash, '', '', '');

        $resp .= '*' . @cmd . "\r\n";
        $resp .= '$' . length($_) . "\r\n$_\r\n" for @cmd;

        push @keys, { id => $id, name => $name->($i), env => $env->($i) };
    }

    my $file = $t->dir . "/load-$org.resp";
    open my $out, '>', $file or die "$file: $!";
    binmode $out;
    print $out $resp;
    close $out;

    my $port = $t->redis_port;
    my $res = `redis-cli -p $port --pipe < $file 2>&1`;
    die "redis-cli --pipe: $res\n" unless $res =~ /errors: 0, replies: $n\b/;

    unlink $file;

    return \@keys;
}


# A TCP proxy on 127.0.0.1:port to the test's Redis that, for every
# "every"-th read from nginx matching "match" (a regex; default one that
# names an Idempotency record, so only admin changes), forwards it, lets
# Redis run it, then resets the connection to nginx: the command ran, its
# reply is lost.  With "file", only while that file exists.  Returns the
# proxy's pid; it runs until the test ends.

sub reset_proxy {
    my ($t, %o) = @_;

    my $match = $o{match} // qr/:idem:[0-9a-f]{64}\r\n/;
    my $every = $o{every} // 1;
    my $upstream = $t->redis_port;

    my $ls = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$o{port}",
                                   Listen => 128, ReuseAddr => 1)
        or die "proxy: listen on $o{port}: $!";

    return $t->spawn(sub {
        my $sel = IO::Select->new($ls);
        my (%peer, %client);
        my $seen = 0;

        my $drop = sub {
            my ($s) = @_;
            my $p = delete $peer{$s};
            delete $peer{$p} if $p;
            for my $x ($s, $p) {
                next unless $x;
                delete $client{$x};
                $sel->remove($x);
                close $x;
            }
        };

        while (1) {
            for my $s ($sel->can_read(1)) {
                if ($s == $ls) {
                    my $c = $ls->accept or next;
                    my $u = IO::Socket::INET->new(
                        PeerAddr => "127.0.0.1:$upstream") or do {
                        close $c;
                        next;
                    };
                    $peer{$c} = $u;
                    $peer{$u} = $c;
                    $client{$c} = 1;
                    $sel->add($c, $u);
                    next;
                }

                my $p = $peer{$s} or next;
                my $n = sysread($s, my $buf, 65536);

                unless ($n) {
                    $drop->($s);
                    next;
                }

                syswrite($p, $buf);

                next unless $client{$s} && $buf =~ $match
                            && (!$o{file} || -e $o{file})
                            && ++$seen % $every == 0;

                # Redis runs it; its reply goes nowhere

                Time::HiRes::sleep(0.05);
                setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
                $drop->($s);
            }
        }
    });
}


# Runs $code->($i) for $i in 1 .. $n, each in a child, and returns what
# each returned (a string), in order.  Options: stagger (seconds between
# the starts), together (the children wait until all are spawned, then
# start at once; "started", a code ref, runs just after).

sub parallel {
    my ($t, $n, $code, %o) = @_;

    my $go = $t->dir . '/go-' . int(rand 1e9);
    my @kids;

    for my $i (1 .. $n) {
        pipe(my $rd, my $wr) or die "pipe: $!";

        push @kids, [$t->spawn(sub {
            close $rd;
            die "no start signal\n"
                if $o{together} && !wait_for(30, sub { -e $go });
            print $wr $code->($i) // '';
            close $wr;
        }), $rd];

        close $wr;
        Time::HiRes::sleep($o{stagger}) if $o{stagger};
    }

    if ($o{together}) {
        open my $fh, '>', $go or die "$go: $!";
        close $fh;
        $o{started}->() if $o{started};
    }

    my @out;

    for my $k (@kids) {
        my $fh = $k->[1];
        local $/;
        push @out, <$fh> // '';
        close $fh;
        $t->wait_children($k->[0]);
    }

    return @out;
}


# One subtest: a problem+json answer with this status and code.

sub is_admin_problem {
    my ($r, $status, $code, $name) = @_;

    subtest $name => sub {
        is($r->{status}, $status, "status $status") or diag($r->{body});
        like($r->{headers}{'content-type'} // '',
             qr{^application/problem\+json(;|$)},
             'Content-Type application/problem+json');

        my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};

        ok(ref $r->{json} eq 'HASH', 'a JSON object');
        is($j->{type}, 'about:blank', 'type about:blank');
        is($j->{title}, $title{$status}, 'title');
        is($j->{status}, $status, 'status field');
        is($j->{code}, $code, "code $code");
        like($j->{detail} // '', qr/\S/, 'a detail');
    };
}


1;
