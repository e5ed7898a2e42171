// SPDX-License-Identifier: MIT
/*
 * pcapfilter: pcap-filter expressions on raw IP bytes (see pcapfilter.h).
 */
#include "pcapfilter.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>

struct pcap_filter {
	struct bpf_program prog;
};

/* A snapshot length no header read reaches: the filter sees every byte. */
#define FILTER_SNAPLEN 65535

int pcap_filter_compile(struct pcap_filter **out, const char *expr, char *err, size_t errlen)
{
	pcap_t *dead = pcap_open_dead(DLT_RAW, FILTER_SNAPLEN);
	struct pcap_filter *f = calloc(1, sizeof(*f));
	int ret = 0;

	*out = NULL;
	if (!dead || !f) {
		snprintf(err, errlen, "out of memory compiling the pcap filter");
		ret = -ENOMEM;
	} else if (pcap_compile(dead, &f->prog, expr, 1, PCAP_NETMASK_UNKNOWN)) {
		snprintf(err, errlen, "bad --pcap-filter '%s': %s", expr, pcap_geterr(dead));
		ret = -EINVAL;
	}
	if (dead)
		pcap_close(dead);
	if (ret)
		free(f);
	else
		*out = f;
	return ret;
}

bool pcap_filter_match(const struct pcap_filter *f, const uint8_t *bytes, size_t caplen, uint32_t wire_len)
{
	struct pcap_pkthdr h = { .caplen = (bpf_u_int32)caplen, .len = wire_len };

	return caplen && pcap_offline_filter(&f->prog, &h, bytes) != 0;
}

void pcap_filter_free(struct pcap_filter *f)
{
	if (f)
		pcap_freecode(&f->prog);
	free(f);
}
