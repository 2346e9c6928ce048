// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Loads the packet programs, attaches them to interfaces, reads the ring
// buffer. One owner for everything it creates: the destructor (also run on
// errors and after signals) detaches and frees all of it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tdsbpf/events.h"

struct tdsbpf_bpf;
struct ring_buffer;

namespace tdsbpf {

enum class AttachMode { automatic, xdp, tc };
enum class XdpMode { automatic, native, generic };
// How tc programs attach: tcx links (Linux 6.6+), or filters on a clsact
// qdisc (older kernels, or where other tools manage tc that way).
enum class TcApi { automatic, tcx, clsact };

struct LoaderConfig {
	std::vector<std::string> interfaces;
	std::vector<uint16_t> ports{TDSBPF_DEFAULT_PORT};
	AttachMode attach = AttachMode::automatic;
	XdpMode xdp_mode = XdpMode::automatic;
	TcApi tc_api = TcApi::automatic;
	uint32_t max_flows = 65536;
	uint32_t ringbuf_mb = 8;
	uint64_t flush_interval_ns = 10'000'000'000ULL;
	// The kernel adds the port of every ENVCHANGE routing it reads in a
	// server's login reply to the traced ports.
	bool follow_redirects = false;
	// SQL Server Browser datagrams (UDP 1434) are reported, and the kernel
	// adds the TCP ports their replies name to the traced ports.
	bool follow_browser = false;
	// Count routine requests and replies in the flow entries (TDSBPF_EV_WORK)
	// instead of an event per TDS packet; false: --every-request, --events.
	bool count_work = true;
	// Copy out the first this many bytes of every packet taken (--write-pcap;
	// at most TDSBPF_SNAPLEN_MAX). 0: none.
	uint32_t capture_snaplen = 0;
};

// What was attached where, for logs and tests.
struct Attachment {
	std::string iface;
	int ifindex = 0;
	std::string ingress; // "xdp native", "xdp generic", "tcx", "tc clsact"
	std::string egress;
};

// What changed when the interfaces were checked again.
struct InterfaceChanges {
	std::vector<std::string> gone;	   // removed since the last check: detached
	std::vector<std::string> returned; // back (by name): attached again
	std::size_t attached = 0;	   // interfaces traced now
};

// One of the programs' per-CPU counters (the counters map's fd), summed over
// the CPUs; 0 when it cannot be read.
uint64_t counter_sum(int counters_fd, tdsbpf_counter which);

class Loader {
public:
	using Callback = std::function<void(const tdsbpf_event& ev, std::size_t len)>;

	// Throws std::runtime_error with a message that says what to do.
	explicit Loader(LoaderConfig cfg);
	~Loader();
	Loader(const Loader&) = delete;
	Loader& operator=(const Loader&) = delete;

	// Attaches to every configured interface; an interface named twice (or
	// by two names) is traced once.
	void attach();
	const std::vector<Attachment>& attachments() const { return attached_; }

	// Notices traced interfaces that were removed (detaching what was on
	// them) and configured ones that are there again (attaching to them).
	InterfaceChanges check_interfaces();

	// Calls cb for each record; waits at most timeout_ms. Returns records read.
	int poll(int timeout_ms, const Callback& cb);

	// Adds a TCP port to the traced ports, at once (the programs read the
	// map on every packet).
	void trace_port(uint16_t port);

	// Sums of the per-CPU counters (index: tdsbpf_counter).
	std::vector<uint64_t> counters() const;
	uint64_t counter(tdsbpf_counter which) const;

	// Detach everything now (also done by the destructor).
	void detach();

	// Once detached and the ring buffer read: the routine work the flows
	// still open counted and have not sent (TDSBPF_EV_WORK records, kernel
	// times), to cb. Returns how many.
	std::size_t send_counted_work(const Callback& cb);

private:
	struct TcFilter;
	struct Traced; // one interface: its links and filters
	void attach_one(const std::string& iface);
	bool attach_xdp(Traced& t, std::string& why);
	std::string attach_tc(Traced& t, bool ingress);
	void detach_one(Traced& t, bool device_gone);
	int tc_ingress_fd();
	void list_attached();

	LoaderConfig cfg_;
	tdsbpf_bpf* skel_ = nullptr;
	tdsbpf_bpf* ingress_skel_ = nullptr; // the tc ingress program, when XDP could not attach
	ring_buffer* rb_ = nullptr;
	std::vector<std::unique_ptr<Traced>> traced_;
	std::vector<std::string> waiting_; // configured, not there now
	std::vector<std::string> warned_;  // back but not attachable: said once
	std::vector<Attachment> attached_;
	const Callback* cb_ = nullptr;
};

// The interface of the default IPv4 route (from /proc/net/route), or "".
std::string default_route_interface();

} // namespace tdsbpf
