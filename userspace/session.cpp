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
	traced_ = loader_.attachments().size();
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
	return loader_.counter(TDSBPF_CNT_RINGBUF_DROPS);
}

uint64_t Session::kernel_events() const
{
	return loader_.counter(TDSBPF_CNT_EVENTS);
}

int Session::run(const EventFn& on_event, const TickFn& tick, int poll_ms)
{
	// Records come in several sizes, the largest a packet copy; each is
	// copied so that its clock can be changed to wall-clock time.
	auto cb = [&](const tdsbpf_event& ev, std::size_t len) {
		alignas(8) unsigned char buf[sizeof(tdsbpf_packet_event) + TDSBPF_SNAPLEN_MAX];
		static_assert(sizeof(buf) >= sizeof(tdsbpf_ntlm_event) && sizeof(buf) >= sizeof(tdsbpf_browser_event));
		std::size_t n = len < sizeof(buf) ? len : sizeof(buf);
		std::memcpy(buf, &ev, n);
		auto* e = reinterpret_cast<tdsbpf_event*>(buf);
		e->ts_ns += offset_;
		if (e->kind == TDSBPF_EV_WORK) {
			// the times inside the counted work too (0: none)
			tdsbpf_work& w = e->u.work;
			for (__u64* t : {&w.pending_ns, &w.last_c2s_ns, &w.last_s2c_ns})
				if (*t)
					*t += offset_;
		}
		on_event(*e, n);
	};
	int rc = 0;
	uint64_t next_check = clock_ns(CLOCK_MONOTONIC) + 1'000'000'000ULL;
	bool none_logged = false;
	for (;;) {
		int n = loader_.poll(poll_ms, cb);
		if (n < 0) {
			spdlog::error("reading the ring buffer failed: {}", std::strerror(-n));
			rc = 1;
			break;
		}
		if (clock_ns(CLOCK_MONOTONIC) >= next_check) {
			next_check = clock_ns(CLOCK_MONOTONIC) + 1'000'000'000ULL;
			InterfaceChanges ch = loader_.check_interfaces();
			traced_ = ch.attached;
			if (ch.attached == 0 && stop_when_none_) {
				spdlog::error("no traced interface is left; stopping (--exit-when-iface-gone)");
				rc = 1;
				break;
			}
			if (ch.attached == 0 && !none_logged)
				spdlog::warn("no interface is traced now; waiting for one to come back");
			none_logged = ch.attached == 0;
		}
		if (!tick(now_ns()))
			break;
	}
	// what is still in the ring buffer belongs to the run; nothing is
	// added to it once detached
	loader_.detach();
	while (loader_.poll(0, cb) > 0) {
	}
	// and what the open flows counted since they last sent it
	loader_.send_counted_work(cb);
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
