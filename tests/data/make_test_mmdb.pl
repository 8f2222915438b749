#!/usr/bin/perl
# make_test_mmdb.pl OUTDIR - writes small MaxMind-format test databases for
# the privacy reduction (gateway/policy/privacy.c), with the record layouts of
# GeoLite2-Country ({country: {iso_code}}) and GeoLite2-ASN
# ({autonomous_system_number, autonomous_system_organization}):
#
#   OUTDIR/test-country.mmdb     IPv6 tree (IPv4 under ::/96)
#   OUTDIR/test-asn.mmdb         IPv6 tree
#   OUTDIR/test-country-v4.mmdb  IPv4-only tree (an IPv6 lookup finds nothing)
#
# Built at test time with libmaxmind-db-writer-perl; never commit the
# output.  Only documentation, benchmarking and private ranges are mapped
# (remove_reserved_networks => 0 lets the writer take them).  The mapping
# below is what tests/unit/test_gw_privacy.c and
# tests/integration/test_gw_geo.sh expect; change them together.
use strict;
use warnings;

use MaxMind::DB::Writer::Tree;

my $dir = shift @ARGV or die "usage: $0 OUTDIR\n";

my %types = (
    country                        => 'map',
    registered_country             => 'map',
    iso_code                       => 'utf8_string',
    names                          => 'map',
    en                             => 'utf8_string',
    geoname_id                     => 'uint32',
    autonomous_system_number       => 'uint32',
    autonomous_system_organization => 'utf8_string',
);

sub tree {
    my ( $ip_version, $type ) = @_;
    return MaxMind::DB::Writer::Tree->new(
        ip_version               => $ip_version,
        record_size              => 24,
        database_type            => $type,
        languages                => ['en'],
        description              => { en => "panelgate test database ($type)" },
        map_key_type_callback    => sub { $types{ $_[0] } },
        remove_reserved_networks => 0,
        alias_ipv6_to_ipv4       => 0,
    );
}

sub country { return { country => { iso_code => $_[0], names => { en => "Country $_[0]" } } } }

sub write_db {
    my ( $t, $name ) = @_;
    open my $fh, '>:raw', "$dir/$name" or die "$dir/$name: $!\n";
    $t->write_tree($fh);
    close $fh or die "$dir/$name: $!\n";
}

my @country = (
    [ '192.0.2.0/24',     country('DE') ],
    [ '198.51.100.0/24',  country('FR') ],
    [ '203.0.113.0/24',   country('US') ],
    # only a registered country (as MaxMind has for some networks)
    [ '198.18.0.0/15',    { registered_country => { iso_code => 'NL' } } ],
    # a record without any iso_code, and one with a malformed code
    [ '198.51.100.128/25', { country => { names => { en => 'Nowhere' } } } ],
    [ '2001:db8:1::/48',  country('JP') ],
    [ '2001:db8:2::/48',  country('DE') ],
    [ '2001:db8:3::/48',  country('d3') ],
    # private ranges mapped on purpose: the reducer must never look them up
    [ '10.0.0.0/8',       country('CN') ],
    [ 'fc00::/7',         country('CN') ],
);
my @asn = (
    [ '192.0.2.0/24',    64500, 'Example DE Net' ],
    [ '198.51.100.0/24', 64501, 'Example FR Net' ],
    [ '2001:db8:1::/48', 64502, 'Example JP Net' ],
    [ '2001:db8:2::/48', 64500, 'Example DE Net' ],
    [ '198.18.0.0/15',   64510, 'Example Bench Net' ],
    [ '10.0.0.0/8',      64999, 'Private' ],
);

my $c6 = tree( 6, 'PanelgateTest-Country' );
$c6->insert_network( $_->[0], $_->[1] ) for @country;
write_db( $c6, 'test-country.mmdb' );

my $c4 = tree( 4, 'PanelgateTest-Country' );
$c4->insert_network( $_->[0], $_->[1] ) for grep { $_->[0] !~ /:/ } @country;
write_db( $c4, 'test-country-v4.mmdb' );

my $a6 = tree( 6, 'PanelgateTest-ASN' );
$a6->insert_network( $_->[0],
    { autonomous_system_number => $_->[1], autonomous_system_organization => $_->[2] } )
    for @asn;
write_db( $a6, 'test-asn.mmdb' );
