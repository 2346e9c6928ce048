// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "session.h"

#include <net/if.h>
#include <time.h>

#include <cstring>

#include <spdlog/spdlog.h>

namespace tdsbpf {

namespace {

uint64_t clock_ns(clockid_t id)
{
	timespec ts{};
	clock_gettime(id, &ts);
	return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

} // namespace

Session::Session(const LoaderConfig& cfg) : loader_(cfg)
{
	loader_.attach();
	offset_ = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);
}

std::string Session::describe() const
{
	const auto& a = attachments();
	if (a.empty())
		return "nothing attached";
	return a[0].ingress + " ingress, " + a[0].egress + " egress";
}

uint64_t Session::now_ns() const
{
	return clock_ns(CLOCK_MONOTONIC) + offset_;
}

uint64_t Session::kernel_drops() const
{
	return loader_.counters()[TDSBPF_CNT_RINGBUF_DROPS];
}

int Session::run(const EventFn& on_event, const TickFn& tick, int poll_ms)
{
	// Records come in two sizes; each is copied so that its clock can be
	// changed to wall-clock time.
	auto cb = [&](const tdsbpf_event& ev, std::size_t len) {
		alignas(8) unsigned char buf[sizeof(tdsbpf_ntlm_event)];
		std::size_t n = len < sizeof(buf) ? len : sizeof(buf);
		std::memcpy(buf, &ev, n);
		auto* e = reinterpret_cast<tdsbpf_event*>(buf);
		e->ts_ns += offset_;
		on_event(*e, n);
	};
	int rc = 0;
	for (;;) {
		int n = loader_.poll(poll_ms, cb);
		if (n < 0) {
			spdlog::error("reading the ring buffer failed: {}", std::strerror(-n));
			rc = 1;
			break;
		}
		if (!tick(now_ns()))
			break;
	}
	// what is still in the ring buffer belongs to the run
	while (loader_.poll(0, cb) > 0) {
	}
	return rc;
}

std::string interface_name(uint32_t ifindex)
{
	char name[IF_NAMESIZE] = {};
	if (ifindex && if_indextoname(ifindex, name))
		return name;
	return {};
}

} // namespace tdsbpf
