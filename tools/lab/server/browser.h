// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The lab's SQL Server Browser ([MC-SQLR], UDP 1434): it tells clients the
// TCP port of the lab's one named instance, so drivers can connect by
// instance name (host\LAB) and the tracer sees the lookup before the
// connection. It lives in the server's event loop: one non-blocking UDP
// socket, replies held for --browser-delay-ms on a deadline of its own.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "byte_io.h"

namespace tdslab {

struct BrowserOptions {
	bool enabled = false;
	std::string instance = "LAB"; // the instance name it announces
	std::uint16_t port = 1434;    // UDP port, on the server's listen address
	int delay_ms = 0;	      // every reply held this long
	bool silent = false;	      // requests are read and logged, never answered
};

// What the browser says about the instance.
struct BrowserInstance {
	std::string server_name; // --server-name
	std::string instance;	 // --instance
	std::string version;	 // four parts, e.g. 16.0.1000.0 (as the PRELOGIN reply)
	std::uint16_t tcp_port = 0;
};

// One request and what the browser makes of it.
struct BrowserDecision {
	std::string request; // "CLNT_UCAST_INST 'LAB'", ... for the log
	Bytes reply;	     // empty: no reply
	std::string why_not; // when there is no reply
};

// "ServerName;...;tcp;<port>;;": the instance's part of every SVR_RESP.
std::string browser_instance_string(const BrowserInstance& self);

// The reply to one datagram, as SQL Server's Browser gives it: CLNT_BCAST_EX
// and CLNT_UCAST_EX get the instance list, CLNT_UCAST_INST the instance when
// the name matches (case-insensitively), CLNT_UCAST_DAC the 6-byte DAC reply
// with the instance's TCP port (the lab serves a DAC client there like any
// other). Anything else, and an unknown instance, gets nothing ([MC-SQLR]
// 3.1.5.2: the server ignores what it cannot answer).
BrowserDecision answer_browser_request(ByteView datagram, const BrowserInstance& self);

class Browser {
public:
	using Clock = std::chrono::steady_clock;

	Browser(BrowserOptions options, BrowserInstance self, bool verbose);
	~Browser();
	Browser(const Browser&) = delete;
	Browser& operator=(const Browser&) = delete;

	// Binds UDP address:port; throws std::runtime_error with a readable reason.
	void open(const std::string& address);
	int fd() const { return fd_; }
	std::string describe() const;

	// Reads the pending datagrams; answers now or queues the reply.
	void on_readable(Clock::time_point now);
	// Sends the queued replies that are due.
	void on_timer(Clock::time_point now);
	std::optional<Clock::time_point> next_deadline() const;

private:
	struct Held {
		Clock::time_point due;
		sockaddr_storage to{};
		socklen_t to_len = 0;
		Bytes reply;
	};

	void send(const sockaddr_storage& to, socklen_t len, const Bytes& reply);

	BrowserOptions options_;
	BrowserInstance self_;
	bool verbose_ = false;
	int fd_ = -1;
	std::string address_;
	std::deque<Held> held_; // in due order: every reply waits the same delay
};

} // namespace tdslab
