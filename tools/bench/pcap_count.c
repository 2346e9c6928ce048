// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// tdsbpf-pcap-count: the floor for reading a capture. Opens it with libpcap,
// takes every record and only counts them (and their bytes, so the loop
// cannot be optimised away), then prints "packets bytes".
#include <pcap/pcap.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	char err[PCAP_ERRBUF_SIZE];

	if (argc != 2) {
		fprintf(stderr, "usage: %s FILE\n", argv[0]);
		return 2;
	}
	pcap_t *p = pcap_open_offline(argv[1], err);
	if (!p) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	struct pcap_pkthdr *h;
	const unsigned char *data;
	unsigned long long packets = 0, bytes = 0;
	int rc;
	while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
		packets++;
		bytes += h->caplen;
	}
	if (rc == PCAP_ERROR)
		fprintf(stderr, "%s\n", pcap_geterr(p));
	pcap_close(p);
	printf("%llu %llu\n", packets, bytes);
	return rc == PCAP_ERROR ? 1 : 0;
}
