#!/usr/bin/perl
# make_bench_mmdb.pl OUTDIR - two small MaxMind-format databases for
# bench_sink: 198.18.N.0/24 (N = 0..19, the benchmarking range) mapped to
# 20 different (country, ASN) pairs, so a frame's viewer connections fall
# into about 20 geo buckets as on a busy edge server.  Needs
# libmaxmind-db-writer-perl; writes OUTDIR/bench-country.mmdb and
# OUTDIR/bench-asn.mmdb.  Never commit the output.
use strict;
use warnings;

use MaxMind::DB::Writer::Tree;

my $dir = shift @ARGV or die "usage: $0 OUTDIR\n";
my %types = (
    country                        => 'map',
    iso_code                       => 'utf8_string',
    autonomous_system_number       => 'uint32',
    autonomous_system_organization => 'utf8_string',
);
my @cc = qw(DE FR US GB NL SE PL IT ES BR JP IN CA AU CH AT BE CZ FI NO);

sub tree {
    return MaxMind::DB::Writer::Tree->new(
        ip_version               => 6,
        record_size              => 24,
        database_type            => $_[0],
        languages                => ['en'],
        description              => { en => "panelgate bench database ($_[0])" },
        map_key_type_callback    => sub { $types{ $_[0] } },
        remove_reserved_networks => 0,
        alias_ipv6_to_ipv4       => 0,
    );
}

my $c = tree('PanelgateBench-Country');
my $a = tree('PanelgateBench-ASN');
for my $n ( 0 .. 19 ) {
    my $net = "::198.18.$n.0/120";
    $c->insert_network( $net, { country => { iso_code => $cc[$n] } } );
    $a->insert_network( $net,
        { autonomous_system_number => 64500 + $n, autonomous_system_organization => "Bench $n" } );
}
for ( [ $c, 'bench-country.mmdb' ], [ $a, 'bench-asn.mmdb' ] ) {
    open my $fh, '>:raw', "$dir/$_->[1]" or die "$dir/$_->[1]: $!\n";
    $_->[0]->write_tree($fh);
    close $fh or die "$dir/$_->[1]: $!\n";
}
