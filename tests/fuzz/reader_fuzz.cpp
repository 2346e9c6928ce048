// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The capture reader fed arbitrary files (pcap, pcapng, anything): the
// input is written to an in-memory file and read with read_capture, the
// frames going on through the host walk into the aggregator.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "fuzz.h"
#include "reader.h"

using namespace tdsbpf::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
	int fd = memfd_create("tdsbpf-fuzz-capture", MFD_CLOEXEC);
	if (fd < 0) {
		std::perror("memfd_create");
		std::abort();
	}
	for (std::size_t off = 0; off < size;) {
		ssize_t n = write(fd, data + off, size - off);
		if (n <= 0) {
			std::perror("write");
			std::abort();
		}
		off += static_cast<std::size_t>(n);
	}
	std::string path = "/proc/self/fd/" + std::to_string(fd);

	Pipeline pipe(aggregator_config(0));
	uint64_t newest = 0;
	tdsbpf::HostParser parser({}, [&](const tdsbpf_event& ev, std::size_t len) {
		newest = ev.ts_ns > newest ? ev.ts_ns : newest;
		pipe.on_event(ev, len);
	});
	try {
		tdsbpf::ReadStats st = tdsbpf::read_capture(path, parser);
		parser.send_counted_work();
		if (st.frames < st.duplicates + st.unsupported) {
			std::fprintf(stderr, "fuzz check failed: more frames skipped than read\n");
			std::abort();
		}
	} catch (const std::runtime_error&) {
		// not a capture it can read: said so, nothing else to check
	}
	close(fd);
	pipe.finish(newest);
	return 0;
}
