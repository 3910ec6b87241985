#!/usr/bin/perl

# Docs that run: every ```nginx block of README.md and docs/*.md, and
# docs/example-nginx.conf, passes nginx -t with the built module.
#
# The convention for writers (docs/contributing.md says it too): a block
# whose fence reads ```nginx is a whole nginx.conf, and this test runs it;
# a block that is only part of one (a directive, a location) is marked
# with the fence info string ```nginx fragment and is not run.  Any other
# info string after "nginx" (a misspelt "fragment" too) counts as a whole
# nginx.conf.  The quick start under README's "Example" heading and every
# block under an "Example Configuration" heading must be whole.  The
# blocks read are counted against a plain count of the files' nginx
# fences, so none is skipped unseen; and every apikey_admin_tokens of the
# docs names apikey-admin-tokens.
#
# What the test changes in a block before
# nginx -t -p PREFIX/ -c nginx.conf -e error.log (one prefix a block), and
# nothing else:
#
# - the argument of "load_module ...ngx_http_apikey_module.so;" becomes the
#   built module;
# - the address of each "listen" becomes 127.0.0.1 and a free port (its
#   parameters stay);
# - an absolute path given to a directive that names a file or directory
#   (FILE_DIRECTIVES below) moves into the prefix: /etc/nginx/x becomes
#   PREFIX/etc/nginx/x.  Relative paths stay: the prefix is also the
#   configuration's directory.
#
# It then makes the files those directives name, inside the prefix: the
# parent directory of each; an admin tokens file with one line of
# admin/apikey-token; a certificate or a key (one test CA, made with
# openssl) for a *certificate or *certificate_key directive; the directory
# of root and alias.  docs/example-nginx.conf is the content of an http
# block (conf.d of Debian's nginx.conf): its text runs inside
# "load_module ...; events { } http { ... }", with the same changes.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Basename qw(dirname);
use File::Path qw(make_path);
use Test::More;

use ApiKey::Test;
use ApiKey::TLS;

my $root = $ApiKey::Test::ROOT;

my $FILE_DIRECTIVES = qr/^(?:include|pid|error_log|access_log|root|alias
                           |\w+_temp_path|\w+_certificate(?:_key)?
                           |ssl_dhparam|\w+_crl|auth_basic_user_file
                           |apikey_admin_tokens)$/x;

my $t = ApiKey::Test->new;


###############################################################################
# the blocks

sub read_text {
    my ($path) = @_;

    open my $fh, '<', $path or die "$path: $!";
    local $/;
    return scalar <$fh>;
}


# Every fenced block of a Markdown file whose info string starts with
# "nginx": { file, line, info, heading, text }.

sub nginx_blocks {
    my ($file) = @_;

    my (@blocks, $open, $heading);
    my $n = 0;

    for my $line (split /\n/, read_text("$root/$file")) {
        $n++;

        if ($open) {
            if ($line =~ /^\s*\Q$open->{fence}\E[`~]*\s*$/) {
                push @blocks, $open if $open->{info} =~ /^nginx\b/i;
                undef $open;
            } else {
                (my $body = $line) =~ s/^ {0,$open->{indent}}//;
                $open->{text} .= "$body\n";
            }
            next;
        }

        if ($line =~ /^( *)(`{3,}|~{3,})\s*(.*?)\s*$/) {
            $open = { file => $file, line => $n, indent => length $1,
                      fence => $2, info => $3, heading => $heading // '',
                      text => '' };
            next;
        }

        $heading = $1 if $line =~ /^#+\s+(.*?)\s*$/;
    }

    return @blocks;
}


my @files = ('README.md',
             map { s{^\Q$root\E/}{}r } sort glob "$root/docs/*.md");

my (@blocks, $fences);

for my $file (@files) {
    push @blocks, nginx_blocks($file);
    $fences += () = read_text("$root/$file")
                    =~ /^[ \t]*(?:```|~~~)[ \t]*nginx/gmi;
}

is(scalar @blocks, $fences,
   "every nginx fence of README.md and docs/*.md is read ($fences)");

my @whole = grep { $_->{info} ne 'nginx fragment' } @blocks;

for my $b (grep { $_->{heading} =~ /^Example(?: Configuration)?$/ } @blocks)
{
    isnt($b->{info}, 'nginx fragment',
         "$b->{file}:$b->{line}: the example under \"$b->{heading}\" is a"
         . ' whole nginx.conf');
}

my ($quick) = grep { $_->{file} eq 'README.md' } @blocks;

ok($quick && $quick->{info} eq 'nginx'
   && $quick->{heading} eq 'Example',
   "README.md's first nginx block, its quick start, is a whole nginx.conf");

note('whole nginx.conf blocks: ' . scalar @whole . ' of ' . scalar @blocks);


###############################################################################
# one name for the admin tokens file

my @named = map { /^\s*apikey_admin_tokens\s+(\S+);/mg } map { $_->{text} }
            @blocks;
push @named, read_text("$root/docs/example-nginx.conf")
             =~ /^\s*apikey_admin_tokens\s+(\S+);/mg;

ok(@named, 'the docs name an admin tokens file');

for my $path (@named) {
    like($path, qr{(?:^|/)apikey-admin-tokens$},
         "the admin tokens file is apikey-admin-tokens: $path");
}


###############################################################################
# nginx -t of each whole block

my ($pki, $ports);

sub prefix_path {
    my ($prefix, $path) = @_;

    return $path =~ m{^/} ? "$prefix$path" : "$prefix/$path";
}


# The files a directive names, made in the prefix.

sub make_file {
    my ($prefix, $directive, $path) = @_;

    my $full = prefix_path($prefix, $path);
    make_path(dirname($full));

    if ($directive eq 'root' || $directive eq 'alias') {
        make_path($full);

    } elsif ($directive eq 'apikey_admin_tokens') {
        open my $tool, '-|', "$root/admin/apikey-token", 'docs', '*'
            or die "apikey-token: $!";
        my (undef, $line) = <$tool>;
        close $tool or die "apikey-token failed\n";

        open my $fh, '>', $full or die "$full: $!";
        print $fh $line;
        close $fh;
        chmod 0644, $full;

    } elsif ($directive =~ /_certificate(_key)?$/) {
        $pki //= ApiKey::TLS::make($t->dir . '/pki');
        my $from = $1 ? $pki->{server_key} : $pki->{server_crt};
        $from = $pki->{ca} if $directive =~ /trusted|client_cert/;

        open my $in, '<', $from or die "$from: $!";
        open my $out, '>', $full or die "$full: $!";
        print {$out} <$in>;
        close $out;
    }
}


# The block as the test runs it (see the top of the file).

sub rewrite {
    my ($text, $prefix) = @_;

    $text =~ s{^(\s*load_module\s+)\S*ngx_http_apikey_module\.so;}
              {$1%%MODULE%%;}mg;

    $text =~ s{^(\s*listen\s+)(?!unix:)[^\s;]+}
              {$1 . '127.0.0.1:%%PORT_' . ++$ports . '%%'}mge;

    $text =~ s{^(\s*(\w+)\s+)(\S+)}{
        my ($lead, $directive, $path) = ($1, $2, $3);
        my $semi = $path =~ s/;$// ? ';' : '';

        if ($directive =~ $FILE_DIRECTIVES && $path ne 'off') {
            $path =~ s{^/}{%%PREFIX%%/};
            make_file($prefix, $directive, $path =~ s{^%%PREFIX%%}{}r);
        }

        "$lead$path$semi";
    }mge;

    return $text;
}


# nginx -t of a text whose line n is line $first + n of $file; on failure
# nginx's messages are shown with the place in that file.

sub nginx_t {
    my ($name, $what, $file, $first, $conf) = @_;

    my $prefix = $t->dir . "/$name";
    my ($rc, $out) = $t->nginx_test(rewrite($conf, $prefix), $name);

    $out =~ s{ in \S*/\Q$name\E/nginx\.conf:(\d+)}
             {" in $file:" . ($first + $1)}ge;

    is($rc, 0, "nginx -t of $what") or diag($out);
}


my $i = 0;

for my $b (@whole) {
    nginx_t('snippet' . ++$i, "the block at $b->{file}:$b->{line}",
            $b->{file}, $b->{line}, $b->{text});
}

# the example is the content of an http block: 6 lines come before it

nginx_t('example', 'docs/example-nginx.conf in an http block',
        'docs/example-nginx.conf', -6,
        "load_module ngx_http_apikey_module.so;\n\nevents {\n}\n\n"
        . "http {\n" . read_text("$root/docs/example-nginx.conf") . "}\n");

done_testing;
