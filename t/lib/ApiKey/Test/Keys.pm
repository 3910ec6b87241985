package ApiKey::Test::Keys;

# Keys written straight into Redis, as docs/data-model.md describes, for
# the gatekeeper's tests (the admin API's tests make theirs through the
# API): methods of ApiKey::Test (its parent class).
#
#   my $k = $t->create_key(rate => '10r/s', burst => 20, scopes => ['a']);
#   $t->update_key($k, rev => 1);

use strict;
use warnings;

use Time::HiRes qw(time);


sub _keytool {
    my (@args) = @_;

    open my $fh, '-|', $ApiKey::Test::KEYTOOL, @args or die "$ApiKey::Test::KEYTOOL: $!";
    my $out = <$fh>;
    close $fh;
    die "apikey-key $args[0]: failed\n" if $? || !defined $out;
    chomp $out;
    return $out;
}


sub key_hash { _keytool('hash', $_[1]) }

# a well-formed key that is in no store
sub raw_key { _keytool('gen', $_[1] // 'ak') }


sub _random_base62 {
    my ($n) = @_;
    my @a = ('0' .. '9', 'A' .. 'Z', 'a' .. 'z');

    open my $r, '<', '/dev/urandom' or die "/dev/urandom: $!";
    read($r, my $bytes, $n);
    return join '', map { $a[$_ % 62] } unpack 'C*', $bytes;
}


sub create_key {
    my ($self, %o) = @_;

    my $ns = $o{namespace} // 'apikey:';
    my $org = $o{org} // 'acme';
    my $env = $o{env} // 'production';
    my @scopes = @{$o{scopes} || []};
    my $rate = exists $o{rate} ? $o{rate} : '5r/s';
    my $now = time;

    my $raw = _keytool('gen', $o{prefix} // 'ak');
    my $hash = _keytool('hash', $raw);
    my $id = 'k_' . _random_base62(22);
    my $name = $o{name} // "test key $id";

    my ($n, $per, $burst) = (0, 1, 0);

    if (defined $rate) {
        $rate =~ m{^(\d+)r/([sm])$} or die "bad rate '$rate'\n";
        ($n, $per) = ($1, $2 eq 's' ? 1 : 60);
        $burst = $o{burst} // _ceil($n / $per);
    }

    my $exp = $o{expires_at} // 0;
    my $rev = $o{revoked} ? 1 : 0;

    my @record = (
        id => $id, org => $org, name => $name, description => '',
        prefix => substr($raw, 0, 8), env => $env,
        scopes => '[' . join(',', map { "\"$_\"" } @scopes) . ']',
        rate => $n, per => $per, burst => $burst,
        created_at => int($now), updated_at => int($now),
        created_by => 'test', expires_at => $exp,
        revoked_at => $rev ? int($now) : 0, secret => $hash,
    );

    # the secret's packed gate field, docs/data-model.md
    my $gate = join(' ', $rev, $exp, $o{grace} // 0, $n, $per, $burst, $env,
                    @scopes)
               . "\n" . join("\n", $id, $org, substr($raw, 0, 8), $name);

    my @secret = (g => $gate);

    $self->redis('MULTI');
    $self->redis('HSET', "${ns}key:$id", @record);
    $self->redis('ZADD', "${ns}org:$org:keys", int($now * 1000), $id);
    $self->redis('HSET', "$ns\{$hash\}", @secret);
    $self->redis('XADD', "${ns}changes", '*', 'h', $hash);
    my $r = $self->redis('EXEC');
    die "create_key: EXEC failed\n" unless ref $r eq 'ARRAY' && @$r == 4;

    return { key => $raw, id => $id, hash => $hash, org => $org,
             prefix => substr($raw, 0, 8), namespace => $ns };
}


# Changes check values of a key's secret (rev, exp, grace, rate, per,
# burst, env) in place, as the admin API would.

sub update_key {
    my ($self, $k, %set) = @_;

    my $secret = "$k->{namespace}\{$k->{hash}\}";
    my ($checks, $identity) = split /\n/, $self->redis('HGET', $secret, 'g'), 2;
    my @v = split / /, $checks;
    my %at = (rev => 0, exp => 1, grace => 2, rate => 3, per => 4,
              burst => 5, env => 6);

    $v[$at{$_}] = $set{$_} for keys %set;
    $self->redis('HSET', $secret, 'g', join(' ', @v) . "\n$identity");
    $self->redis('XADD', "$k->{namespace}changes", '*', 'h', $k->{hash});
}


# last_used_at of a key's secret in Unix seconds, undef if never used

sub last_used {
    my ($self, $k) = @_;

    return $self->redis('HGET', "$k->{namespace}\{$k->{hash}\}", 'u');
}


sub _ceil { my $x = shift; my $i = int $x; $i < $x ? $i + 1 : $i }

1;
