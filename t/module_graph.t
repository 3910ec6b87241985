#!/usr/bin/perl

# Data flows one way through the module's C files: no file calls a
# function of a file that calls it, directly or through others.  A file
# that must tell one above it does so through a handler it was given (a
# function pointer), which this test does not count as a call.  The
# graph is read from the sources: a function's home is the file that
# defines it, a call is its name followed by "(" in another file.
# Also: no file of the two source folders passes 1,000 lines.

use strict;
use warnings;

use FindBin;
use File::Basename qw(basename);
use Test::More;

my $top = "$FindBin::Bin/..";
my @files = sort map { glob "$top/$_/*.c" } qw(ngx_http_apikey_module admin);

plan(skip_all => 'no sources') unless @files;

my (%home, %text);

for my $f (@files) {
    my $name = basename($f, '.c');
    open my $fh, '<', $f or die "$f: $!";
    local $/;
    my $src = <$fh>;

    # comments and strings say nothing of calls

    $src =~ s{/\*.*?\*/}{}gs;
    $src =~ s{"(?:\\.|[^"\\])*"}{""}g;

    $text{$name} = $src;

    # a definition: the name at the start of a line, after its type's line

    $home{$1} = $name while $src =~ /^(ngx_http_apikey_\w+)\(/mg;
}

my %calls;

for my $file (keys %text) {
    while ($text{$file} =~ /\b(ngx_http_apikey_\w+)\s*\(/g) {
        my $to = $home{$1} or next;
        $calls{$file}{$to}{$1} = 1 if $to ne $file;
    }
}

# cycles: a depth-first walk, reporting the first path back to a file

my (%state, @stack, @cycles);

sub walk {
    my ($f) = @_;

    $state{$f} = 1;
    push @stack, $f;

    for my $to (sort keys %{$calls{$f} || {}}) {
        if (($state{$to} // 0) == 1) {
            my @at = @stack;
            shift @at while $at[0] ne $to;
            push @cycles, [@at, $to];

        } elsif (!$state{$to}) {
            walk($to);
        }
    }

    pop @stack;
    $state{$f} = 2;
}

walk($_) for sort keys %text;

ok(!@cycles, 'no file calls back into a file that calls it')
    or diag(join "\n", map {
        my @c = @$_;
        join(' -> ', map {
            my ($a, $b) = ($c[$_], $c[$_ + 1]);
            defined $b ? "$a (" . join(', ', sort keys %{$calls{$a}{$b}})
                         . ')'
                       : $a
        } 0 .. $#c)
    } @cycles);

for my $f (@files) {
    open my $fh, '<', $f or die "$f: $!";
    my $n = () = <$fh>;
    ok($n <= 1000, basename($f) . " has $n lines, at most 1,000");
}

done_testing;
