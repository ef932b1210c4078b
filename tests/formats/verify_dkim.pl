#!/usr/bin/perl
# Independent DKIM verifier for the tests: Mail::DKIM with its DNS lookup answered from
# the command line ("NAME=TXT VALUE" arguments) instead of the network.
# Reads the message on stdin; prints "<result> <domain> <selector>" per signature.
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Net::DNS;

my %records = map { split /=/, $_, 2 } @ARGV;
no warnings 'redefine';
*Mail::DKIM::DNS::query = sub {
    my ($name, $type) = @_;
    my $value = $records{lc $name};
    return () unless defined $value && $type eq 'TXT';
    my @chunks = unpack('(A255)*', $value);
    return (Net::DNS::RR->new(name => $name, type => 'TXT', txtdata => [@chunks]));
};
use warnings 'redefine';

my $verifier = Mail::DKIM::Verifier->new();
while (my $line = <STDIN>) {
    $line =~ s/\r?\n\z/\r\n/;
    $verifier->PRINT($line);
}
$verifier->CLOSE();
foreach my $signature ($verifier->signatures) {
    printf "%s %s %s\n", $signature->result, $signature->domain, $signature->selector;
}
