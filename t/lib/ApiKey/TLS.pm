package ApiKey::TLS;

# Certificates for tests, made with the openssl command in a directory of
# the test's: a CA, a server certificate it signs (for localhost and
# 127.0.0.1), a client certificate it signs, and a second CA that signs
# nothing here (a client that trusts only it trusts no server).
#
#   my $pki = ApiKey::TLS::make($t->dir . '/pki');
#   # { ca, server_crt, server_key, client_crt, client_key, other_ca }
#
#   $t->run_redis(args => [ApiKey::TLS::redis_args($pki, $tls_port)]);

use strict;
use warnings;

use File::Path qw(make_path);
use POSIX ();

use ApiKey::Test::Util qw(which);


sub _openssl {
    my ($dir, @args) = @_;

    my $pid = fork // die "fork: $!";

    if ($pid == 0) {
        chdir $dir or POSIX::_exit(126);
        open STDOUT, '>>', 'openssl.log' or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT;
        exec 'openssl', @args or POSIX::_exit(127);
    }

    waitpid($pid, 0);
    die "openssl @args failed (see $dir/openssl.log)\n" if $?;
}


sub make {
    my ($dir) = @_;

    which('openssl') or die "the openssl command is not installed\n";
    make_path($dir);

    open my $fh, '>', "$dir/server.ext" or die "$dir/server.ext: $!";
    print $fh "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
              . "extendedKeyUsage=serverAuth\n";
    close $fh;

    open $fh, '>', "$dir/client.ext" or die "$dir/client.ext: $!";
    print $fh "extendedKeyUsage=clientAuth\n";
    close $fh;

    for my $ca (qw(ca other_ca)) {
        _openssl($dir, qw(req -x509 -newkey rsa:2048 -nodes -days 2),
                 '-keyout', "$ca.key", '-out', "$ca.crt",
                 '-subj', "/CN=apikey test $ca");
    }

    for my $who (qw(server client)) {
        _openssl($dir, qw(req -newkey rsa:2048 -nodes),
                 '-keyout', "$who.key", '-out', "$who.csr",
                 '-subj', $who eq 'server' ? '/CN=localhost'
                                           : '/CN=apikey test client');
        _openssl($dir, qw(x509 -req -days 2 -CA ca.crt -CAkey ca.key
                          -CAcreateserial), '-in', "$who.csr",
                 '-out', "$who.crt", '-extfile', "$who.ext");
    }

    chmod 0644, glob "$dir/*.key";

    return { ca => "$dir/ca.crt", other_ca => "$dir/other_ca.crt",
             server_crt => "$dir/server.crt",
             server_key => "$dir/server.key",
             client_crt => "$dir/client.crt",
             client_key => "$dir/client.key" };
}


# redis-server arguments for a TLS port beside the plain one; clients
# need no certificate unless asked (CONFIG SET tls-auth-clients yes)

sub redis_args {
    my ($pki, $port) = @_;

    return ('--tls-port', $port,
            '--tls-cert-file', $pki->{server_crt},
            '--tls-key-file', $pki->{server_key},
            '--tls-ca-cert-file', $pki->{ca},
            '--tls-auth-clients', 'no');
}


1;
