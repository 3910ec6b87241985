#!/usr/bin/perl

# The key codec (build/apikey-key, the module's own C code) against vectors
# computed independently at test time by python3: zlib.crc32,
# hashlib.sha256 and a base62 written with Python's big integers.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Temp qw(tempfile);
use Test::More;

use ApiKey::Test;

my $tool = $ApiKey::Test::KEYTOOL;
my $python = ApiKey::Test::which('python3');

plan(skip_all => 'no build/apikey-key (run make)') unless -x $tool;
plan(skip_all => 'no python3') unless $python;

my $reference = <<'EOF';
import re, sys, zlib, hashlib
A = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
def b62(n, w):
    s = ''
    while n:
        n, r = divmod(n, 62)
        s = A[r] + s
    return s.rjust(w, '0')
for line in open(sys.argv[1]):
    op, arg = line.rstrip('\n').split(' ', 1)
    if op == 'body':
        r = b62(int.from_bytes(bytes.fromhex(arg), 'big'), 43)
        print(r + b62(zlib.crc32(r.encode()), 6))
    elif op == 'crc':
        print(zlib.crc32(arg.encode()))
    elif op == 'hash':
        print(hashlib.sha256(arg.encode()).hexdigest())
    elif op == 'valid':
        m = re.fullmatch('[a-z][a-z0-9]{0,15}_([0-9A-Za-z]{43})(.{6})', arg)
        print(int(bool(m) and b62(zlib.crc32(m[1].encode()), 6) == m[2]))
EOF

# every question for python in one run: [op, arg] -> answer
sub python {
    my (@q) = @_;

    my ($fh, $file) = tempfile(UNLINK => 1);
    print $fh "$_->[0] $_->[1]\n" for @q;
    close $fh;

    open my $py, '-|', $python, '-c', $reference, $file or die "python3: $!";
    my @a = <$py>;
    close $py;
    die "python3 failed\n" if $? || @a != @q;
    chomp @a;
    return @a;
}

sub tool {
    my (@args) = @_;

    open my $err, '>&', \*STDERR;
    open STDERR, '>', '/dev/null';
    open my $fh, '-|', $tool, @args or die "$tool: $!";
    open STDERR, '>&', $err;
    my $out = join '', <$fh>;
    close $fh;
    chomp $out;
    return ($? >> 8, $out);
}

sub random_hex { join '', map { sprintf '%02x', int rand 256 } 1 .. 32 }

###############################################################################

my @numbers = (
    '00' x 32, 'ff' x 32, '00' x 31 . '01', '80' . '00' x 31,
    join('', map { sprintf '%02x', $_ } 1 .. 32), map { random_hex() } 1 .. 5,
);

my @body = python(map { ['body', $_] } @numbers);

for my $i (0 .. $#numbers) {
    my ($rc, $out) = tool('body', $numbers[$i]);
    is($out, $body[$i], "body of $numbers[$i]");
}

is($body[0], '0' x 43 . substr($body[0], 43), 'zero is 43 zeros');
like($body[1], qr/^[0-9A-Za-z]{49}$/, 'all-0xff fits 43 + 6 digits');

my @strings = ('', 'a', '123456789', '0' x 43, substr($body[5], 0, 43),
               'The quick brown fox jumps over the lazy dog');
my @crc = python(map { ['crc', $_] } @strings);

is($crc[2], 3421780262, 'python agrees with the CRC-32 check value');

for my $i (0 .. $#strings) {
    is((tool('crc', $strings[$i]))[1], $crc[$i], "crc of '$strings[$i]'");
}

###############################################################################

my @keys = map { (tool('gen', $_))[1] } qw(ak ak x abcdefghijklmnop z9);

like($keys[0], qr/^ak_[0-9A-Za-z]{49}$/, 'generated key shape');
isnt($keys[0], $keys[1], 'two generated keys differ');
is(length $keys[3], 16 + 50, 'key length is prefix + 50');

my @hash = python(map { ['hash', $_] } @keys, 'ak_', '');
my @valid = python(map { ['valid', $_] } @keys);

for my $i (0 .. $#keys) {
    is((tool('hash', $keys[$i]))[1], $hash[$i], "sha256 of key $i");
    is($valid[$i], 1, "python accepts generated key $i");
    is((tool('check', $keys[$i]))[0], 0, "check accepts generated key $i");
}

is((tool('hash', 'ak_'))[1], $hash[-2], 'sha256 of a short string');
is((tool('hash', ''))[1], $hash[-1], 'sha256 of the empty string');

for my $p ('', 'A', '1ak', 'a_b', 'a-b', 'abcdefghijklmnopq') {
    isnt((tool('gen', $p))[0], 0, "gen refuses prefix '$p'");
}

###############################################################################

my $k = $keys[0];
my $body = substr($k, 3);
my $flip = sub {
    my ($s, $i) = @_;
    my $c = substr($s, $i, 1);
    substr($s, $i, 1) = $c eq 'z' ? 'y' : $c eq '9' ? '8' : chr(ord($c) + 1);
    return $s;
};

my %bad = (
    'one random char off by one' => $flip->($k, 10),
    'first random char changed' => $flip->($k, 3),
    'checksum char changed' => $flip->($k, length($k) - 1),
    'random and checksum swapped' => 'ak_' . substr($body, 6) . substr($body, 0, 6),
    'uppercase prefix' => "AK_$body",
    'prefix starts with a digit' => "1a_$body",
    'prefix with a dash' => "a-k_$body",
    'empty prefix' => "_$body",
    'prefix of 17 chars' => 'abcdefghijklmnopq_' . $body,
    'no underscore' => "ak$body",
    'dash for underscore' => "ak-$body",
    'one char short' => substr($k, 0, -1),
    'one char long' => $k . '0',
    'checksum missing' => substr($k, 0, -6),
    'non-base62 char' => substr($k, 0, 20) . '-' . substr($k, 21),
    'space inside' => substr($k, 0, 20) . ' ' . substr($k, 21),
    'body only' => $body,
    'empty' => '',
);

my @py = python(map { ['valid', $bad{$_}] } sort keys %bad);
my $i = 0;

for my $case (sort keys %bad) {
    is((tool('check', $bad{$case}))[0], 1, "check rejects: $case");
    is($py[$i++], 0, "python rejects it too: $case");
}

is((tool('check', "zz9_$body"))[0], 0, 'any well-formed prefix passes');
is((tool('check', 'abcdefghijklmnop_' . $body))[0], 0,
   'a 16-char prefix passes');

done_testing;
