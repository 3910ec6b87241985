package ApiKey::FakeDNS;

# A DNS server for tests, on a loopback UDP port: it answers A queries
# for the names of a file the test rewrites at will ("name ip ip ..." a
# line), with a TTL of one second; a name not in the file is NXDOMAIN,
# other types get no answer records.  It runs in a child of the test,
# stopped with the test's other children.
#
#   my $dns = ApiKey::FakeDNS->start($t);
#   $dns->set('redis.test' => '127.0.0.1');
#   "resolver 127.0.0.1:" . $dns->port . ";"

use strict;
use warnings;

use IO::Socket::INET;


sub start {
    my ($class, $t) = @_;

    my $self = bless { t => $t, file => $t->dir . '/dns.names' }, $class;
    $self->set();

    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                     Proto => 'udp')
        or die "dns: $!";
    $self->{port} = $sock->sockport;

    my $pid = $t->spawn(sub { $self->_serve($sock) });
    $t->{children}{$pid} = 1;

    close $sock;
    return $self;
}


sub port { $_[0]{port} }


sub set {
    my ($self, %names) = @_;

    open my $fh, '>', "$self->{file}.new" or die "$self->{file}.new: $!";
    print $fh "$_ " . (ref $names{$_} ? "@{$names{$_}}" : $names{$_}) . "\n"
        for sort keys %names;
    close $fh;
    rename "$self->{file}.new", $self->{file} or die "$self->{file}: $!";
}


sub _names {
    my ($self) = @_;
    my %n;

    open my $fh, '<', $self->{file} or return {};
    while (<$fh>) {
        my ($name, @ip) = split;
        $n{lc $name} = \@ip if defined $name;
    }

    return \%n;
}


sub _serve {
    my ($self, $sock) = @_;

    while (1) {
        my $peer = $sock->recv(my $q, 512) // next;
        next if length $q < 12;

        my ($id, $flags, $qd) = unpack 'n n n', $q;
        next unless $qd == 1;

        # the question: labels, then type and class
        my ($pos, @labels) = (12);
        while ($pos < length $q) {
            my $len = ord substr($q, $pos, 1);
            last if $len == 0;
            push @labels, substr($q, $pos + 1, $len);
            $pos += 1 + $len;
        }
        next if $pos + 5 > length $q;

        my $question = substr($q, 12, $pos + 5 - 12);
        my ($type) = unpack 'n', substr($q, $pos + 1, 2);
        my $name = lc join '.', @labels;

        my $ips = $self->_names->{$name};
        my @ans;

        if ($ips && $type == 1) {
            @ans = map {
                pack('n n n N n', 0xc00c, 1, 1, 1, 4)
                . pack('C4', split /\./)
            } @$ips;
        }

        my $rcode = $ips ? 0 : 3;
        my $head = pack 'n n n n n n', $id, 0x8180 | $rcode, 1, scalar @ans,
                        0, 0;

        $sock->send($head . $question . join('', @ans), 0, $peer);
    }
}


1;
