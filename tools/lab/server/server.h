// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The lab server's event loop: one thread, one epoll set, non-blocking
// sockets, a timer queue for held replies and idle closes, and signalfd for
// a clean stop on SIGINT/SIGTERM.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "browser.h"
#include "connection.h"

namespace tdslab {

struct ListenOptions {
	std::string address = "0.0.0.0";
	std::uint16_t port = 1433; // 0: any free port (see the ready file)
	std::string ready_file;	   // written with the bound port once listening
	int keepalive_idle_s = 1;  // per-socket TCP_KEEPIDLE for idle_<n> connections
	int keepalive_interval_s = 1;
	int keepalive_count = 3;
	BrowserOptions browser; // --browser: SQL Browser on UDP, same address
};

class Server {
public:
	Server(ServerSettings settings, ListenOptions options);
	~Server();
	Server(const Server&) = delete;
	Server& operator=(const Server&) = delete;

	// Binds and listens; throws std::runtime_error with a readable reason.
	void listen();
	std::uint16_t port() const { return bound_port_; }
	// Serves until SIGINT/SIGTERM. Returns the process exit code.
	int run();

private:
	struct Slot {
		int fd = -1;
		std::unique_ptr<Connection> conn;
		Bytes out;
		std::size_t out_pos = 0;
		bool writing = false;  // EPOLLOUT armed
		bool draining = false; // FIN sent; reading until the peer closes
		bool keepalive = false;
		std::optional<Clock::time_point> timer;
		Clock::time_point drain_deadline{};
	};

	void accept_all();
	void on_readable(Slot& s);
	void after_io(Slot& s);
	bool flush(Slot& s); // false when the socket failed
	void close_slot(int fd, bool reset);
	void arm_timer(Slot& s, std::optional<Clock::time_point> when);
	void fire_timers();
	void write_ready_file();
	int timeout_ms() const;

	ServerSettings settings_;
	ListenOptions options_;
	int listen_fd_ = -1;
	int epoll_fd_ = -1;
	int signal_fd_ = -1;
	std::uint16_t bound_port_ = 0;
	std::uint16_t next_spid_ = 51;
	std::unordered_map<int, Slot> slots_;
	std::multimap<Clock::time_point, int> timers_;
	std::uint64_t accepted_ = 0;
	bool accept_paused_logged_ = false;
	std::optional<Clock::time_point> accept_resume_at_; // accepts paused after EMFILE
	std::unique_ptr<Browser> browser_;		    // --browser
};

} // namespace tdslab
