// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Each message parser of parse.h on its own, over arbitrary bytes, with
// the scratch area the walk would hand it. The input format is in fuzz.h.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "fuzz.h"
#include "host_walker.h"

using namespace tdsbpf::fuzz;

namespace {

void check(bool ok, const char* what)
{
	if (!ok) {
		std::fprintf(stderr, "fuzz check failed: %s\n", what);
		std::abort();
	}
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
	Input in(data, size);
	int which = in.u8() % kParsers;
	uint16_t arg = in.u16();
	uint16_t end = in.u16();
	auto bytes = in.take(TDSBPF_BUF);

	auto sc = std::make_unique<tdsbpf_scratch>();
	std::memset(sc.get(), 0, sizeof(*sc));
	// the slack past the bytes holds whatever an earlier message left there
	std::memset(sc->b, 0xa5, sizeof(sc->b));
	std::memcpy(sc->b, bytes.data(), bytes.size());
	sc->n = static_cast<uint32_t>(bytes.size());
	sc->in.start = sc->in.tds71 = sc->in.type = sc->in.body = arg; // each parser reads its own
	sc->end = end;

	switch (which) {
	case 0:
		if (tdsbpf_host_parse_prelogin(sc.get()) == 0)
			check(sc->out.prelogin.instance_len <= sizeof(sc->out.prelogin.instance),
			      "prelogin instance length");
		break;
	case 1:
		// as the walk does: the first record, then what follows it
		tdsbpf_host_parse_tls(sc.get());
		if (tdsbpf_host_parse_tls_chain(sc.get()) < 0)
			check(sc->out.tls.chain_n == 0, "no chain without a record");
		break;
	case 2: {
		int kind = tdsbpf_host_classify_sspi(sc.get());
		check(kind >= TDSBPF_SSPI_NONE && kind <= TDSBPF_SSPI_UNKNOWN, "sspi kind");
		if (kind == TDSBPF_SSPI_NTLM)
			check(sc->res.sspi.ntlm_at + 12 <= sc->n, "NTLMSSP signature inside the bytes");
		break;
	}
	case 3: tdsbpf_host_parse_ntlm_auth(sc.get()); break;
	case 4:
		if (tdsbpf_host_parse_login7(sc.get()) == 0)
			check(sc->n >= 94, "LOGIN7 fixed part");
		break;
	case 5: tdsbpf_host_parse_features(sc.get()); break;
	case 6:
		sc->in.tds71 = arg & 1;
		tdsbpf_host_parse_reply(sc.get());
		check(sc->out.reply.routing_server_len <= sizeof(sc->out.reply.routing_server),
		      "routing server length");
		break;
	case 7:
		sc->in.tds71 = arg & 1;
		tdsbpf_host_parse_tail_done(sc.get());
		break;
	case 8: tdsbpf_host_parse_request(sc.get()); break;
	}
	return 0;
}
