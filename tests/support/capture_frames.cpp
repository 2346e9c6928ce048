// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "capture_frames.h"

#include <pcap/pcap.h>

namespace tdsbpf::test {

std::vector<Bytes> capture_frames(const std::string& path, std::string& error)
{
	char err[PCAP_ERRBUF_SIZE];
	pcap_t* p = pcap_open_offline(path.c_str(), err);
	if (!p) {
		error = err;
		return {};
	}
	int lt = pcap_datalink(p);
	std::vector<Bytes> out;
	Bytes last_l3;
	pcap_pkthdr* h;
	const u_char* d;
	while (pcap_next_ex(p, &h, &d) == 1) {
		Bytes eth, l3;
		if (lt == DLT_EN10MB && h->caplen >= 14) {
			eth.assign(d, d + h->caplen);
			l3.assign(d + 14, d + h->caplen);
		} else if (lt == DLT_LINUX_SLL && h->caplen >= 16) {
			eth.assign(12, 0);
			eth.push_back(d[14]);
			eth.push_back(d[15]);
			l3.assign(d + 16, d + h->caplen);
			append(eth, l3);
		} else {
			error = "link type " + std::to_string(lt) + " not handled by this test";
			break;
		}
		if (l3 == last_l3)
			continue;
		last_l3 = l3;
		out.push_back(eth);
	}
	pcap_close(p);
	return out;
}

} // namespace tdsbpf::test
