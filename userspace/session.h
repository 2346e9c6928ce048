// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// One live tracing session, for `tdsbpf` and `tdsbpf demo` alike: the
// programs loaded and attached (Loader), the poll loop, the clock that
// turns the kernel's monotonic times into wall-clock times, and the count
// of events lost in the ring buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "loader.h"

namespace tdsbpf {

class Session {
public:
	using EventFn = std::function<void(const tdsbpf_event& ev, std::size_t len)>;
	// After each poll, with the wall-clock time; false ends the loop.
	using TickFn = std::function<bool(uint64_t now_ns)>;

	// Loads and attaches; throws std::runtime_error with what to do.
	explicit Session(const LoaderConfig& cfg);

	const std::vector<Attachment>& attachments() const { return loader_.attachments(); }
	// "xdp native ingress, tcx egress" for the first interface.
	std::string describe() const;

	// Once a second the interfaces are checked again: one that was removed
	// is detached and logged, and traced again when it is back. With
	// stop_when_none set, the run ends (returning 1) once none is left.
	void stop_when_no_interface(bool on) { stop_when_none_ = on; }

	// Polls until tick returns false (or the ring buffer cannot be read,
	// or no interface is left and that should stop the run: then the
	// error is logged and 1 returned), then detaches and reads what is
	// left, so that every event the kernel put out is read.
	// Events reach on_event with wall-clock times. poll_ms bounds the wait
	// between ticks.
	int run(const EventFn& on_event, const TickFn& tick, int poll_ms = 100);

	// Wall-clock time on the events' scale.
	uint64_t now_ns() const;
	// Events the kernel could not put in the ring buffer so far.
	uint64_t kernel_drops() const;
	// Events the kernel put in the ring buffer so far.
	uint64_t kernel_events() const;
	void detach() { loader_.detach(); }
	void trace_port(uint16_t port) { loader_.trace_port(port); }
	// Interfaces with the programs attached, as of the last check.
	std::size_t interfaces_traced() const { return traced_; }
	// The kernel's counters (tdsbpf_counter), summed over CPUs.
	uint64_t counter(tdsbpf_counter which) const { return loader_.counter(which); }

private:
	Loader loader_;
	uint64_t offset_; // CLOCK_REALTIME - CLOCK_MONOTONIC at start
	bool stop_when_none_ = false;
	std::size_t traced_ = 0;
};

// The name of an interface by index ("" when there is none now).
std::string interface_name(uint32_t ifindex);

} // namespace tdsbpf
