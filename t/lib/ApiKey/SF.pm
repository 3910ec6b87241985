package ApiKey::SF;

# A strict parser of RFC 8941 Structured Field lists, enough for the rate
# headers (draft-ietf-httpapi-ratelimit-headers: RateLimit-Policy and
# RateLimit are lists of items with parameters): sf_list($value) returns
# [[bare item, {parameter => value}], ...] with strings, tokens, integers
# and booleans as Perl scalars (a string keeps its quotes out, a token is
# marked by a leading "="), or dies naming where the value is not a list.

use strict;
use warnings;

use Exporter qw(import);

our @EXPORT_OK = qw(sf_list);

sub sf_list {
    my ($in) = @_;
    my @list;

    local $_ = $in // '';
    s/^ +//;

    return [] if $_ eq '';

    while (1) {
        my $item = _bare(\$_, $in);
        my %params;

        while (s/^;//) {
            s/^ +//;
            s/^([a-z*][a-z0-9_.*-]*)// or die "bad parameter key in '$in'\n";
            my $key = $1;
            die "parameter $key twice in '$in'\n" if exists $params{$key};
            $params{$key} = s/^=// ? _bare(\$_, $in) : 1;
        }

        push @list, [$item, \%params];

        s/^[ \t]+//;
        last if $_ eq '';
        s/^,[ \t]*// or die "expected ',' at '$_' in '$in'\n";
        die "trailing ',' in '$in'\n" if $_ eq '';
    }

    return \@list;
}

sub _bare {
    my ($s, $in) = @_;

    if ($$s =~ s/^(-?\d{1,15})(?![\d.])//) {
        return $1 + 0;
    }

    if ($$s =~ s/^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"//) {
        (my $v = $1) =~ s/\\(["\\])/$1/g;
        return $v;
    }

    if ($$s =~ s/^\?([01])//) {
        return $1 + 0;
    }

    if ($$s =~ s/^([A-Za-z*][!#\$%&'*+\-.^_`|~0-9A-Za-z:\/]*)//) {
        return "=$1";
    }

    die "not a bare item at '$$s' in '$in'\n";
}

1;
