// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "loader.h"

#include "host_walker.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "privileges.h"
#include "tdsbpf.skel.h"

namespace tdsbpf {
namespace {

// tcx attach points (Linux 6.6+); not in older uapi headers.
constexpr int kTcxIngress = 46;
constexpr int kTcxEgress = 47;

// The tc filter handle and priority tdsbpf uses, fixed so that a filter left
// by a killed earlier run is replaced rather than doubled.
constexpr uint32_t kTcHandle = 0x7d5b;
constexpr uint32_t kTcPriority = 0x7d5b;

std::string errstr(int err)
{
	return std::strerror(err < 0 ? -err : err);
}

} // namespace

struct Loader::TcFilter {
	bpf_tc_hook hook{};
	bpf_tc_opts opts{};
};

struct Loader::Traced {
	Attachment a;
	std::vector<int> link_fds;
	std::vector<std::unique_ptr<TcFilter>> filters;
	bool created_qdisc = false; // the clsact qdisc was added by tdsbpf
};

namespace {

// How many tc filters sit on one side of a device's clsact qdisc (a netlink
// dump); -1 when that cannot be told.
int count_tc_filters(int ifindex, bool ingress)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -1;
	struct {
		nlmsghdr n;
		tcmsg t;
	} req{};
	req.n.nlmsg_len = NLMSG_LENGTH(sizeof(tcmsg));
	req.n.nlmsg_type = RTM_GETTFILTER;
	req.n.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.n.nlmsg_seq = 1;
	req.t.tcm_family = AF_UNSPEC;
	req.t.tcm_ifindex = ifindex;
	req.t.tcm_parent = TC_H_MAKE(TC_H_CLSACT, ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
	int count = -1;
	if (send(fd, &req, req.n.nlmsg_len, 0) == static_cast<ssize_t>(req.n.nlmsg_len)) {
		alignas(nlmsghdr) char buf[16384];
		int n = 0;
		bool done = false;
		count = 0;
		while (!done && (n = static_cast<int>(recv(fd, buf, sizeof(buf), 0))) > 0) {
			for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, static_cast<unsigned>(n));
			     h = NLMSG_NEXT(h, n)) {
				if (h->nlmsg_type == NLMSG_DONE) {
					done = true;
					break;
				}
				if (h->nlmsg_type == NLMSG_ERROR) {
					count = -1;
					done = true;
					break;
				}
				if (h->nlmsg_type == RTM_NEWTFILTER)
					count++;
			}
		}
		if (n <= 0 && !done)
			count = -1;
	}
	close(fd);
	return count;
}

} // namespace

std::string default_route_interface()
{
	std::ifstream rt("/proc/net/route");
	std::string line;
	std::getline(rt, line); // header
	while (std::getline(rt, line)) {
		std::istringstream in(line);
		std::string iface, dest, gw, flags;
		in >> iface >> dest >> gw >> flags;
		if (dest == "00000000" && (std::stoul(flags, nullptr, 16) & 0x1))
			return iface;
	}
	return {};
}

Loader::Loader(LoaderConfig cfg) : cfg_(std::move(cfg))
{
	if (auto why = missing_privileges(); !why.empty())
		throw std::runtime_error(why);
	if (cfg_.ports.empty())
		cfg_.ports.push_back(TDSBPF_DEFAULT_PORT);
	if (cfg_.ports.size() > TDSBPF_MAX_PORTS)
		throw std::runtime_error("at most " + std::to_string(TDSBPF_MAX_PORTS) + " ports can be traced");

	libbpf_set_print([](enum libbpf_print_level level, const char* fmt, va_list ap) -> int {
		if (level == LIBBPF_DEBUG)
			return 0;
		char buf[1024];
		vsnprintf(buf, sizeof(buf), fmt, ap);
		std::string s(buf);
		while (!s.empty() && s.back() == '\n')
			s.pop_back();
		// warnings too: the failures they lead to are reported by the caller,
		// and --verbose shows the verifier's log
		spdlog::debug("libbpf: {}", s);
		return 0;
	});

	skel_ = tdsbpf_bpf__open();
	if (!skel_)
		throw std::runtime_error("cannot open the BPF object: " + errstr(errno));
	if (skel_->rodata->event_abi != TDSBPF_EVENT_ABI) {
		unsigned built = skel_->rodata->event_abi;
		tdsbpf_bpf__destroy(skel_);
		skel_ = nullptr;
		throw std::runtime_error("the BPF programs were built for event layout " + std::to_string(built) +
					 " and this tdsbpf reads layout " + std::to_string(TDSBPF_EVENT_ABI) +
					 ": rebuild both from the same source");
	}
	skel_->rodata->flush_interval_ns = cfg_.flush_interval_ns;
	skel_->rodata->follow_redirects = cfg_.follow_redirects ? 1 : 0;
	skel_->rodata->follow_browser = cfg_.follow_browser ? 1 : 0;
	skel_->rodata->count_work = cfg_.count_work ? 1 : 0;
	skel_->rodata->capture_snaplen = std::min<uint32_t>(cfg_.capture_snaplen, TDSBPF_SNAPLEN_MAX);
	// the ring buffer: a power of two number of pages
	uint64_t bytes = static_cast<uint64_t>(cfg_.ringbuf_mb) * 1024 * 1024;
	uint64_t rb = 4096;
	while (rb < bytes)
		rb <<= 1;
	skel_->rodata->wakeup_bytes = rb / 8;
	bpf_map__set_max_entries(skel_->maps.events, static_cast<uint32_t>(rb));
	bpf_map__set_max_entries(skel_->maps.flows, cfg_.max_flows ? cfg_.max_flows : 1);
	// only the programs we attach are verified and loaded: in auto mode the
	// tc ingress program is loaded later, only where XDP cannot attach
	bool want_xdp = cfg_.attach != AttachMode::tc;
	bpf_program__set_autoload(skel_->progs.tdsbpf_xdp, want_xdp);
	bpf_program__set_autoload(skel_->progs.tdsbpf_tc_ingress, !want_xdp);
	int err = tdsbpf_bpf__load(skel_);
	if (err) {
		tdsbpf_bpf__destroy(skel_);
		skel_ = nullptr;
		throw std::runtime_error(
			"cannot load the BPF programs: " + errstr(err) +
			" (a kernel with BPF ring buffers, bpf_loop and bpf_xdp_load_bytes, Linux 5.18 or later,"
			" is needed;"
			" run with --verbose for the verifier's log)");
	}
	for (uint16_t p : cfg_.ports)
		skel_->bss->server_ports[p >> 6] |= 1ULL << (p & 63);

	rb_ = ring_buffer__new(
		bpf_map__fd(skel_->maps.events),
		[](void* ctx, void* data, size_t len) -> int {
			auto* self = static_cast<Loader*>(ctx);
			if (self->cb_ && len >= sizeof(tdsbpf_event))
				(*self->cb_)(*static_cast<const tdsbpf_event*>(data), len);
			return 0;
		},
		this, nullptr);
	if (!rb_) {
		int e = errno;
		tdsbpf_bpf__destroy(skel_);
		skel_ = nullptr;
		throw std::runtime_error("cannot map the ring buffer: " + errstr(e));
	}
}

Loader::~Loader()
{
	detach();
	if (rb_)
		ring_buffer__free(rb_);
	if (ingress_skel_)
		tdsbpf_bpf__destroy(ingress_skel_);
	if (skel_)
		tdsbpf_bpf__destroy(skel_);
}

int Loader::tc_ingress_fd()
{
	if (bpf_program__fd(skel_->progs.tdsbpf_tc_ingress) >= 0)
		return bpf_program__fd(skel_->progs.tdsbpf_tc_ingress);
	if (ingress_skel_)
		return bpf_program__fd(ingress_skel_->progs.tdsbpf_tc_ingress);
	// a second copy of the object with only this program, on the maps of
	// the first (flows, ring buffer, ports and settings are shared)
	auto* s = tdsbpf_bpf__open();
	if (!s)
		throw std::runtime_error("cannot open the BPF object: " + errstr(errno));
	bpf_program* prog;
	bpf_object__for_each_program(prog, s->obj) bpf_program__set_autoload(prog, prog == s->progs.tdsbpf_tc_ingress);
	bpf_map* m;
	int err = 0;
	bpf_object__for_each_map(m, s->obj)
	{
		bpf_map* mine = bpf_object__find_map_by_name(skel_->obj, bpf_map__name(m));
		err = mine ? bpf_map__reuse_fd(m, bpf_map__fd(mine)) : -ENOENT;
		if (err)
			break;
	}
	if (!err)
		err = tdsbpf_bpf__load(s);
	if (err) {
		tdsbpf_bpf__destroy(s);
		throw std::runtime_error("cannot load the tc ingress program: " + errstr(err));
	}
	ingress_skel_ = s;
	return bpf_program__fd(s->progs.tdsbpf_tc_ingress);
}

void Loader::attach()
{
	for (const auto& iface : cfg_.interfaces)
		attach_one(iface);
}

bool Loader::attach_xdp(Traced& t, std::string& why)
{
	struct Try {
		uint32_t flags;
		const char* name;
	};
	std::vector<Try> tries;
	if (cfg_.xdp_mode != XdpMode::generic)
		tries.push_back({XDP_FLAGS_DRV_MODE, "xdp native"});
	if (cfg_.xdp_mode != XdpMode::native)
		tries.push_back({XDP_FLAGS_SKB_MODE, "xdp generic"});
	for (const auto& x : tries) {
		LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = x.flags);
		// a bpf_link: the kernel detaches it when this process goes away
		int fd = bpf_link_create(bpf_program__fd(skel_->progs.tdsbpf_xdp), t.a.ifindex, BPF_XDP, &opts);
		if (fd >= 0) {
			t.link_fds.push_back(fd);
			t.a.ingress = x.name;
			return true;
		}
		why += std::string(why.empty() ? "" : "; ") + x.name + ": " + errstr(errno);
		if (errno == EBUSY || errno == EEXIST)
			why += " (another XDP program is attached: remove it, or use --attach tc)";
	}
	return false;
}

std::string Loader::attach_tc(Traced& t, bool ingress)
{
	int prog = ingress ? tc_ingress_fd() : bpf_program__fd(skel_->progs.tdsbpf_tc_egress);
	if (cfg_.tc_api != TcApi::clsact) {
		// tcx links (Linux 6.6+) go away with the process, like the XDP link
		int fd = bpf_link_create(prog, t.a.ifindex,
					 static_cast<bpf_attach_type>(ingress ? kTcxIngress : kTcxEgress), nullptr);
		if (fd >= 0) {
			t.link_fds.push_back(fd);
			return "tcx";
		}
		if (cfg_.tc_api == TcApi::tcx)
			throw std::runtime_error("cannot attach a tcx link to " + t.a.iface + ": " + errstr(errno) +
						 " (Linux 6.6 or later is needed; or use --tc-api clsact)");
	}
	// a filter on a clsact qdisc: removed on exit, replaced at start
	auto f = std::make_unique<TcFilter>();
	f->hook.sz = sizeof(f->hook);
	f->hook.ifindex = t.a.ifindex;
	f->hook.attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
	int err = bpf_tc_hook_create(&f->hook);
	if (err && err != -EEXIST)
		throw std::runtime_error("cannot add a clsact qdisc to " + t.a.iface + ": " + errstr(err));
	t.created_qdisc |= err == 0;
	f->opts.sz = sizeof(f->opts);
	f->opts.handle = kTcHandle;
	f->opts.priority = kTcPriority;
	f->opts.prog_fd = prog;
	f->opts.flags = BPF_TC_F_REPLACE;
	err = bpf_tc_attach(&f->hook, &f->opts);
	if (err)
		throw std::runtime_error(std::string("cannot attach the tc ") + (ingress ? "ingress" : "egress") +
					 " program to " + t.a.iface + ": " + errstr(err));
	// detach needs only the handle and priority
	f->opts.prog_fd = 0;
	f->opts.prog_id = 0;
	f->opts.flags = 0;
	t.filters.push_back(std::move(f));
	return "tc clsact";
}

void Loader::attach_one(const std::string& iface)
{
	int ifindex = static_cast<int>(if_nametoindex(iface.c_str()));
	if (ifindex == 0)
		throw std::runtime_error("unknown interface '" + iface + "' (see: ip link)");
	for (const auto& t : traced_) {
		if (t->a.ifindex == ifindex) {
			// twice would count every packet twice
			spdlog::warn("--iface {}: ifindex {} is already traced (as {}); tracing it once", iface,
				     ifindex, t->a.iface);
			return;
		}
	}
	auto t = std::make_unique<Traced>();
	t->a.iface = iface;
	t->a.ifindex = ifindex;
	try {
		if (cfg_.attach != AttachMode::tc) {
			std::string why;
			if (!attach_xdp(*t, why)) {
				if (cfg_.attach == AttachMode::xdp)
					throw std::runtime_error("cannot attach XDP to " + iface + ": " + why);
				spdlog::warn("XDP cannot attach to {} ({}); tracing ingress with tc instead", iface,
					     why);
			}
		}
		if (t->a.ingress.empty())
			t->a.ingress = attach_tc(*t, true);
		t->a.egress = attach_tc(*t, false);
	} catch (...) {
		detach_one(*t, false);
		throw;
	}
	spdlog::info("tracing {} (ifindex {}): ingress {}, egress {}", iface, ifindex, t->a.ingress, t->a.egress);
	traced_.push_back(std::move(t));
	list_attached();
}

void Loader::detach_one(Traced& t, bool device_gone)
{
	for (int fd : t.link_fds)
		close(fd);
	t.link_fds.clear();
	if (device_gone) {
		// the device took its qdisc and filters with it
		t.filters.clear();
		return;
	}
	for (auto& f : t.filters) {
		int err = bpf_tc_detach(&f->hook, &f->opts);
		if (err && err != -ENOENT && err != -ENODEV && err != -EINVAL)
			spdlog::warn("could not remove the tc filter from {}: {}", t.a.iface, errstr(err));
	}
	if (t.created_qdisc && !t.filters.empty()) {
		// remove the clsact qdisc tdsbpf added, unless a filter of someone
		// else's is on it now; one that was there before is left alone
		int in = count_tc_filters(t.a.ifindex, true);
		int out = count_tc_filters(t.a.ifindex, false);
		if (in == 0 && out == 0) {
			bpf_tc_hook all = t.filters[0]->hook;
			all.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
			int err = bpf_tc_hook_destroy(&all);
			if (err && err != -ENOENT)
				spdlog::warn("could not remove the clsact qdisc tdsbpf added to {}: {}", t.a.iface,
					     errstr(err));
		} else {
			spdlog::info("leaving the clsact qdisc on {}: other tc filters use it now", t.a.iface);
		}
	}
	t.filters.clear();
}

void Loader::list_attached()
{
	attached_.clear();
	for (const auto& t : traced_)
		attached_.push_back(t->a);
}

InterfaceChanges Loader::check_interfaces()
{
	InterfaceChanges ch;
	// gone: the index no longer names the device we attached to
	for (auto it = traced_.begin(); it != traced_.end();) {
		Traced& t = **it;
		char name[IF_NAMESIZE] = {};
		bool there = if_indextoname(static_cast<unsigned>(t.a.ifindex), name) != nullptr;
		if (there) {
			++it;
			continue;
		}
		spdlog::warn("interface {} (ifindex {}) was removed: not traced until it is back", t.a.iface,
			     t.a.ifindex);
		detach_one(t, true);
		ch.gone.push_back(t.a.iface);
		waiting_.push_back(t.a.iface);
		it = traced_.erase(it);
	}
	// back: a configured name exists again
	for (auto it = waiting_.begin(); it != waiting_.end();) {
		if (if_nametoindex(it->c_str()) == 0) {
			++it;
			continue;
		}
		std::string name = *it;
		it = waiting_.erase(it);
		auto warned = std::find(warned_.begin(), warned_.end(), name);
		try {
			attach_one(name);
			spdlog::info("interface {} is back: traced again", name);
			ch.returned.push_back(name);
			if (warned != warned_.end())
				warned_.erase(warned);
		} catch (const std::exception& e) {
			if (warned == warned_.end()) {
				spdlog::warn("interface {} is back but cannot be traced: {}", name, e.what());
				warned_.push_back(name);
			}
			waiting_.push_back(name);
			break; // tried again at the next check
		}
	}
	list_attached();
	ch.attached = traced_.size();
	return ch;
}

void Loader::detach()
{
	for (auto& t : traced_)
		detach_one(*t, false);
	traced_.clear();
	waiting_.clear();
	attached_.clear();
}

int Loader::poll(int timeout_ms, const Callback& cb)
{
	cb_ = &cb;
	int n = ring_buffer__poll(rb_, timeout_ms);
	/*
	 * Routine records are submitted without a wake-up (batching), so epoll
	 * may time out with records waiting: read them now. Without this the
	 * reader would fall behind for good, since the kernel only wakes a
	 * reader that has caught up.
	 */
	int m = ring_buffer__consume(rb_);
	cb_ = nullptr;
	if (n == -EINTR)
		n = 0;
	if (n < 0)
		return n;
	return m > 0 ? n + m : n;
}

std::size_t Loader::send_counted_work(const Callback& cb)
{
	if (!skel_)
		return 0;
	int fd = bpf_map__fd(skel_->maps.flows);
	tdsbpf_flow_key key{}, next{};
	tdsbpf_flow flow{};
	std::size_t sent = 0;
	const void* prev = nullptr;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &flow) != 0 || !flow.work.events)
			continue;
		tdsbpf_event ev;
		tdsbpf_host_work_record(&flow, &key, &ev);
		cb(ev, sizeof(ev));
		sent++;
	}
	return sent;
}

uint64_t counter_sum(int counters_fd, tdsbpf_counter which)
{
	int ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0 || counters_fd < 0)
		return 0;
	std::vector<uint64_t> per(static_cast<std::size_t>(ncpu));
	uint32_t k = which;
	uint64_t sum = 0;
	if (bpf_map_lookup_elem(counters_fd, &k, per.data()) == 0)
		for (uint64_t v : per)
			sum += v;
	return sum;
}

uint64_t Loader::counter(tdsbpf_counter which) const
{
	return counter_sum(bpf_map__fd(skel_->maps.counters), which);
}

void Loader::trace_port(uint16_t port)
{
	// the packet programs may set bits of the same word at the same time
	__atomic_fetch_or(&skel_->bss->server_ports[port >> 6], 1ULL << (port & 63), __ATOMIC_RELAXED);
}

std::vector<uint64_t> Loader::counters() const
{
	std::vector<uint64_t> out(TDSBPF_CNT_MAX, 0);
	for (uint32_t k = 0; k < TDSBPF_CNT_MAX; k++)
		out[k] = counter(static_cast<tdsbpf_counter>(k));
	return out;
}

} // namespace tdsbpf
