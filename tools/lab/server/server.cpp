// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <spdlog/spdlog.h>
#include <stdexcept>

namespace tdslab {

namespace {

constexpr std::size_t kReadChunk = 65536;
constexpr std::size_t kMaxReadPerEvent = 1 << 20; // fairness between connections
constexpr auto kDrainTimeout = std::chrono::seconds(5);

std::string errno_text(int e)
{
	return std::strerror(e);
}

std::string peer_name(const sockaddr_storage& ss)
{
	char host[INET6_ADDRSTRLEN] = "?";
	std::uint16_t port = 0;
	if (ss.ss_family == AF_INET) {
		auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
		port = ntohs(a->sin_port);
		return std::string(host) + ":" + std::to_string(port);
	}
	auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
	inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
	port = ntohs(a->sin6_port);
	return "[" + std::string(host) + "]:" + std::to_string(port);
}

// Thousands of connections need more descriptors than the usual soft limit.
void raise_fd_limit()
{
	rlimit rl{};
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

} // namespace

Server::Server(ServerSettings settings, ListenOptions options)
    : settings_(std::move(settings)), options_(std::move(options))
{
}

Server::~Server()
{
	for (auto& [fd, slot] : slots_)
		::close(fd);
	if (listen_fd_ >= 0)
		::close(listen_fd_);
	if (epoll_fd_ >= 0)
		::close(epoll_fd_);
	if (signal_fd_ >= 0)
		::close(signal_fd_);
}

void Server::listen()
{
	raise_fd_limit();
	sockaddr_storage ss{};
	socklen_t len = 0;
	auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
	auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
	if (inet_pton(AF_INET, options_.address.c_str(), &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(options_.port);
		len = sizeof(sockaddr_in);
	} else if (inet_pton(AF_INET6, options_.address.c_str(), &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(options_.port);
		len = sizeof(sockaddr_in6);
	} else {
		throw std::runtime_error("--listen: '" + options_.address + "' is not an IPv4 or IPv6 address");
	}
	listen_fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listen_fd_ < 0)
		throw std::runtime_error("socket: " + errno_text(errno));
	int one = 1;
	setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
		int e = errno;
		std::string where = options_.address + ":" + std::to_string(options_.port);
		if (e == EADDRINUSE)
			throw std::runtime_error("port busy: " + where + " is already in use (pick another --port)");
		if (e == EACCES)
			throw std::runtime_error("cannot bind " + where + ": permission denied");
		if (e == EADDRNOTAVAIL)
			throw std::runtime_error("cannot bind " + where + ": no such local address");
		throw std::runtime_error("cannot bind " + where + ": " + errno_text(e));
	}
	if (::listen(listen_fd_, 4096) != 0)
		throw std::runtime_error("listen: " + errno_text(errno));
	sockaddr_storage bound{};
	socklen_t blen = sizeof bound;
	getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &blen);
	bound_port_ = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
						       : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
	settings_.own_port = bound_port_;

	epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
	if (epoll_fd_ < 0)
		throw std::runtime_error("epoll_create1: " + errno_text(errno));
	epoll_event ev{};
	ev.events = EPOLLIN;
	ev.data.fd = listen_fd_;
	epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, nullptr);
	signal(SIGPIPE, SIG_IGN);
	signal_fd_ = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (signal_fd_ < 0)
		throw std::runtime_error("signalfd: " + errno_text(errno));
	ev.data.fd = signal_fd_;
	epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, signal_fd_, &ev);

	if (options_.browser.enabled) {
		// Bound before the ready file appears, so a test that waits for the
		// file can send its lookup at once. The version has the fourth part
		// the PRELOGIN reply carries too (sub-build 0).
		BrowserInstance self{settings_.server_name, options_.browser.instance,
				     std::to_string(settings_.version_major) + "." +
					     std::to_string(settings_.version_minor) + "." +
					     std::to_string(settings_.version_build) + ".0",
				     bound_port_};
		browser_ = std::make_unique<Browser>(options_.browser, std::move(self), settings_.verbose);
		browser_->open(options_.address);
		ev.data.fd = browser_->fd();
		epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, browser_->fd(), &ev);
	}

	write_ready_file();
}

void Server::write_ready_file()
{
	if (options_.ready_file.empty())
		return;
	// Written to a temporary name and renamed, so a reader never sees half a file.
	std::string tmp = options_.ready_file + ".tmp";
	{
		std::ofstream f(tmp);
		f << bound_port_ << "\n";
		if (!f)
			throw std::runtime_error("cannot write ready file " + tmp);
	}
	if (std::rename(tmp.c_str(), options_.ready_file.c_str()) != 0) {
		throw std::runtime_error("cannot create ready file " + options_.ready_file + ": " + errno_text(errno));
	}
}

int Server::timeout_ms() const
{
	if (accept_resume_at_)
		return 100;
	std::optional<Clock::time_point> next;
	if (!timers_.empty())
		next = timers_.begin()->first;
	if (auto held = browser_ ? browser_->next_deadline() : std::nullopt; held && (!next || *held < *next))
		next = held;
	if (!next)
		return 1000;
	auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(*next - Clock::now()).count();
	return static_cast<int>(std::clamp<long long>(wait + 1, 0, 1000));
}

int Server::run()
{
	spdlog::info("listening on {}:{} (encryption {}, faults {})", options_.address, bound_port_,
		     encryption_mode_name(settings_.encryption), settings_.faults.describe());
	if (browser_)
		spdlog::info("{}", browser_->describe());
	epoll_event events[256];
	for (;;) {
		int n = epoll_wait(epoll_fd_, events, 256, timeout_ms());
		if (n < 0) {
			if (errno == EINTR)
				continue;
			spdlog::error("epoll_wait: {}", errno_text(errno));
			return 1;
		}
		for (int i = 0; i < n; ++i) {
			int fd = events[i].data.fd;
			if (fd == listen_fd_) {
				accept_all();
				continue;
			}
			if (browser_ && fd == browser_->fd()) {
				browser_->on_readable(Clock::now());
				continue;
			}
			if (fd == signal_fd_) {
				signalfd_siginfo si{};
				if (::read(signal_fd_, &si, sizeof si) > 0) {
					spdlog::info("signal {}: stopping; {} connection(s) open, {} served",
						     si.ssi_signo, slots_.size(), accepted_);
					return 0;
				}
				continue;
			}
			auto it = slots_.find(fd);
			if (it == slots_.end())
				continue;
			Slot& s = it->second;
			if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				on_readable(s);
				if (!slots_.count(fd))
					continue;
			}
			if (events[i].events & EPOLLOUT) {
				if (!flush(s)) {
					close_slot(fd, false);
					continue;
				}
				after_io(s);
			}
		}
		fire_timers();
		if (browser_)
			browser_->on_timer(Clock::now());
		if (accept_resume_at_ && Clock::now() >= *accept_resume_at_) {
			accept_resume_at_.reset();
			epoll_event ev{};
			ev.events = EPOLLIN;
			ev.data.fd = listen_fd_;
			epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev);
		}
	}
}

void Server::accept_all()
{
	for (;;) {
		sockaddr_storage ss{};
		socklen_t len = sizeof ss;
		int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return;
			if (errno == EMFILE || errno == ENFILE) {
				// The pending connection stays in the backlog and the listening
				// socket stays readable: stop watching it for a moment instead of
				// spinning, and try again when descriptors may have been freed.
				if (!accept_paused_logged_)
					spdlog::warn("accept: out of file descriptors ({} open); pausing accepts",
						     slots_.size());
				accept_paused_logged_ = true;
				epoll_event ev{};
				ev.data.fd = listen_fd_;
				epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev);
				accept_resume_at_ = Clock::now() + std::chrono::milliseconds(100);
				return;
			}
			if (errno == ECONNABORTED)
				continue;
			spdlog::warn("accept: {}", errno_text(errno));
			return;
		}
		accept_paused_logged_ = false;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		Slot& s = slots_[fd];
		s.fd = fd;
		std::uint16_t spid = next_spid_++;
		if (next_spid_ > 32000)
			next_spid_ = 51;
		s.conn = std::make_unique<Connection>(settings_, spid, peer_name(ss));
		++accepted_;
		if (settings_.verbose)
			spdlog::debug("accepted {} as spid {}", s.conn->peer(), spid);
		epoll_event ev{};
		ev.events = EPOLLIN | EPOLLRDHUP;
		ev.data.fd = fd;
		epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
	}
}

void Server::on_readable(Slot& s)
{
	std::uint8_t buf[kReadChunk];
	std::size_t total = 0;
	const int fd = s.fd;
	while (total < kMaxReadPerEvent) {
		ssize_t n = ::recv(fd, buf, sizeof buf, 0);
		if (n > 0) {
			total += static_cast<std::size_t>(n);
			if (!s.draining)
				s.conn->on_bytes(ByteView(buf, static_cast<std::size_t>(n)), Clock::now());
			if (s.conn->close_action() == CloseAction::rst_now)
				break;
			continue;
		}
		if (n == 0) {
			if (s.draining) {
				close_slot(fd, false);
				return;
			}
			s.conn->on_peer_closed();
			break;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		if (errno == EINTR)
			continue;
		if (settings_.verbose)
			spdlog::debug("conn {}: recv: {}", s.conn->peer(), errno_text(errno));
		close_slot(fd, false);
		return;
	}
	after_io(s);
}

bool Server::flush(Slot& s)
{
	while (s.out_pos < s.out.size()) {
		ssize_t n = ::send(s.fd, s.out.data() + s.out_pos, s.out.size() - s.out_pos, MSG_NOSIGNAL);
		if (n > 0) {
			s.out_pos += static_cast<std::size_t>(n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 && errno == EINTR)
			continue;
		return false;
	}
	if (s.out_pos == s.out.size()) {
		s.out.clear();
		s.out_pos = 0;
	}
	bool want = !s.out.empty();
	if (want != s.writing) {
		epoll_event ev{};
		ev.events = EPOLLIN | EPOLLRDHUP | (want ? static_cast<std::uint32_t>(EPOLLOUT) : 0u);
		ev.data.fd = s.fd;
		epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, s.fd, &ev);
		s.writing = want;
	}
	return true;
}

void Server::after_io(Slot& s)
{
	const int fd = s.fd;
	Connection& c = *s.conn;
	if (c.wants_keepalive() && !s.keepalive) {
		// Per-socket keep-alive timings: the idle connection shows TCP
		// keep-alive probes long before the system default (2 hours) would.
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &options_.keepalive_idle_s, sizeof(int));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &options_.keepalive_interval_s, sizeof(int));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &options_.keepalive_count, sizeof(int));
		s.keepalive = true;
	}
	if (c.close_action() == CloseAction::rst_now) {
		close_slot(fd, true);
		return;
	}
	Bytes out = c.take_output();
	if (!out.empty()) {
		if (s.out.empty())
			s.out = std::move(out);
		else
			s.out.insert(s.out.end(), out.begin(), out.end());
	}
	if (!flush(s)) {
		close_slot(fd, false);
		return;
	}
	auto action = c.close_action();
	// fin_now drops nothing the connection already queued either: the FIN
	// follows the last written byte, whichever way the close was asked for.
	if (!s.draining && s.out.empty() &&
	    (action == CloseAction::fin_now || (action == CloseAction::fin_after_flush && !c.output_held()))) {
		// FIN first; keep reading (and discarding) until the peer closes too,
		// so unread bytes never turn our close into a reset.
		::shutdown(fd, SHUT_WR);
		s.draining = true;
		s.drain_deadline = Clock::now() + kDrainTimeout;
		arm_timer(s, s.drain_deadline);
		return;
	}
	if (!s.draining)
		arm_timer(s, c.next_deadline());
}

void Server::arm_timer(Slot& s, std::optional<Clock::time_point> when)
{
	if (s.timer == when)
		return;
	s.timer = when;
	if (when)
		timers_.emplace(*when, s.fd);
}

void Server::fire_timers()
{
	auto now = Clock::now();
	while (!timers_.empty() && timers_.begin()->first <= now) {
		auto [when, fd] = *timers_.begin();
		timers_.erase(timers_.begin());
		auto it = slots_.find(fd);
		if (it == slots_.end() || it->second.timer != when)
			continue; // stale entry
		Slot& s = it->second;
		s.timer.reset();
		if (s.draining) {
			close_slot(fd, false);
			continue;
		}
		s.conn->on_timer(now);
		after_io(s);
	}
}

void Server::close_slot(int fd, bool reset)
{
	auto it = slots_.find(fd);
	if (it == slots_.end())
		return;
	if (reset) {
		linger lg{1, 0};
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	}
	epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
	::close(fd);
	if (settings_.verbose)
		spdlog::debug("conn {}: closed{}", it->second.conn->peer(), reset ? " with RST" : "");
	slots_.erase(it);
}

} // namespace tdslab
