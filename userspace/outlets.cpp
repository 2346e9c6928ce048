// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Output destinations (see outlets.h): the SPEC parser, the syslog message,
// standard output and files, and the non-blocking network outlet.
#include "outlets.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

namespace tdsbpf {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kFirstBackoff{100};
constexpr milliseconds kMaxBackoff{10000};
constexpr milliseconds kConnectTimeout{5000};
// --read: how long a full buffer may wait for the peer without progress
constexpr milliseconds kPatience{10000};
constexpr auto kDropLogEvery = std::chrono::seconds(10);
// what is buffered is sent at once past this (else at the next flush)
constexpr std::size_t kSendAt = 64 * 1024;
// the largest UDP payload over IPv4
constexpr std::size_t kMaxDatagram = 65507;

const char* const kSpecForms =
	"-, stdout, file:PATH, unix:PATH, tcp:HOST:PORT, syslog:HOST:PORT or syslog+udp:HOST:PORT";

// HOST:PORT, an IPv6 HOST in brackets.
void split_host_port(const std::string& spec, const std::string& rest, OutputSpec& s)
{
	std::string host, port;
	if (!rest.empty() && rest[0] == '[') {
		auto close = rest.find(']');
		if (close == std::string::npos)
			throw std::invalid_argument(spec + ": an IPv6 address ends with ']': [ADDRESS]:PORT");
		host = rest.substr(1, close - 1);
		if (close + 1 >= rest.size() || rest[close + 1] != ':')
			throw std::invalid_argument(spec + ": no port: use HOST:PORT");
		port = rest.substr(close + 2);
	} else {
		auto colon = rest.rfind(':');
		if (colon == std::string::npos)
			throw std::invalid_argument(spec + ": no port: use HOST:PORT");
		host = rest.substr(0, colon);
		if (host.find(':') != std::string::npos)
			throw std::invalid_argument(spec + ": an IPv6 address goes in brackets: [ADDRESS]:PORT");
		port = rest.substr(colon + 1);
	}
	if (host.empty())
		throw std::invalid_argument(spec + ": no host: use HOST:PORT");
	if (port.empty())
		throw std::invalid_argument(spec + ": no port: use HOST:PORT");
	if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
	    std::stoul(port) < 1 || std::stoul(port) > 65535)
		throw std::invalid_argument(spec + ": the port must be a number from 1 to 65535");
	s.host = host;
	s.port = port;
}

// An RFC 5424 header field: printable US-ASCII but space, at most max
// characters, "-" when empty.
std::string header_field(std::string_view v, std::size_t max)
{
	std::string out;
	for (char c : v) {
		if (out.size() == max)
			break;
		if (c > 32 && c < 127)
			out += c;
	}
	return out.empty() ? "-" : out;
}

int open_append(const std::string& path)
{
	return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

struct Address {
	sockaddr_storage sa{};
	socklen_t len = 0;
};

// The peer's addresses, resolved once at start (a name lookup may block:
// never in the loop).
std::vector<Address> resolve(const OutputSpec& spec, const OutletOptions& opt)
{
	std::vector<Address> out;
	if (spec.kind == OutputSpec::Kind::unix_stream) {
		Address a;
		auto* un = reinterpret_cast<sockaddr_un*>(&a.sa);
		un->sun_family = AF_UNIX;
		std::memcpy(un->sun_path, spec.path.data(), spec.path.size());
		a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + spec.path.size() + 1);
		out.push_back(a);
		return out;
	}
	addrinfo hints{};
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = spec.kind == OutputSpec::Kind::syslog_udp ? SOCK_DGRAM : SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	addrinfo* res = nullptr;
	int rc = getaddrinfo(spec.host.c_str(), spec.port.c_str(), &hints, &res);
	if (rc != 0)
		throw std::runtime_error(opt.option + " " + spec.text + ": cannot resolve " + spec.host + ": " +
					 (rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc)));
	for (addrinfo* ai = res; ai; ai = ai->ai_next) {
		Address a;
		std::memcpy(&a.sa, ai->ai_addr, ai->ai_addrlen);
		a.len = ai->ai_addrlen;
		out.push_back(a);
	}
	freeaddrinfo(res);
	if (out.empty())
		throw std::runtime_error(opt.option + " " + spec.text + ": " + spec.host + " has no address");
	return out;
}

uint64_t realtime_ns()
{
	timespec ts{};
	clock_gettime(CLOCK_REALTIME, &ts);
	return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

// ---- standard output and files ----------------------------------------------

class FileOutlet final : public Outlet {
public:
	FileOutlet(const OutputSpec& spec, const OutletOptions& opt, std::FILE* f, bool owned)
	    : Outlet(spec, opt), file_(f), owned_(owned), writer_(f)
	{
	}
	~FileOutlet() override
	{
		writer_.flush();
		if (owned_)
			std::fclose(file_);
	}
	void flush() override { writer_.flush(); }
	bool reopen() override;
	void close(Clock::time_point) override { writer_.flush(); }
	int error() const override { return writer_.error(); }

protected:
	void put(std::string&& message) override { writer_.write(message); }

private:
	std::FILE* file_;
	bool owned_;
	Writer writer_;
};

// The file was moved away (logrotate): what is buffered goes to it, then a
// file of the same name is opened in its place, under the same FILE.
bool FileOutlet::reopen()
{
	if (spec_.kind != OutputSpec::Kind::file)
		return false;
	writer_.flush();
	std::fflush(file_);
	int fd = open_append(spec_.path);
	if (fd < 0) {
		spdlog::error("{} {}: cannot open it again (SIGHUP): {}; still writing to the file opened before",
			      opt_.option, spec_.text, std::strerror(errno));
		return true;
	}
	if (dup2(fd, fileno(file_)) < 0)
		spdlog::error("{} {}: cannot open it again (SIGHUP): {}; still writing to the file opened before",
			      opt_.option, spec_.text, std::strerror(errno));
	else
		spdlog::info("{} {}: opened again (SIGHUP)", opt_.option, spec_.text);
	::close(fd);
	return true;
}

// ---- network -------------------------------------------------------------------

class NetOutlet final : public Outlet {
public:
	NetOutlet(const OutputSpec& spec, const OutletOptions& opt, std::vector<Address> addrs)
	    : Outlet(spec, opt), addrs_(std::move(addrs))
	{
	}
	~NetOutlet() override { disconnect(); }
	void flush() override
	{
		if (!closed_)
			pump();
	}
	void close(Clock::time_point deadline) override;
	uint64_t dropped() const override { return dropped_; }
	uint64_t reconnects() const override { return reconnects_; }

protected:
	void put(std::string&& message) override;

private:
	enum class State { down, connecting, up };
	bool datagram() const { return spec_.kind == OutputSpec::Kind::syslog_udp; }
	void pump();
	void start_connect();
	void connected();
	void fail(const std::string& why);
	void disconnect();
	bool peer_gone();
	void send_some();
	void send_datagrams();
	void sent(std::size_t n);
	void drop(uint64_t n, const char* why);
	void log_drops(bool now);
	void wait_io(Clock::time_point until);
	void wait_for_room(std::size_t size);

	std::vector<Address> addrs_;
	std::size_t next_addr_ = 0;
	int fd_ = -1;
	State state_ = State::down;
	Clock::time_point connect_started_{};
	Clock::time_point next_attempt_{};
	milliseconds backoff_ = kFirstBackoff;
	bool ever_up_ = false;
	bool outage_logged_ = false;
	bool closed_ = false;
	// messages whole; the first one may be partly sent (sent_ bytes)
	std::deque<std::string> queue_;
	std::size_t queued_ = 0;
	std::size_t sent_ = 0;
	uint64_t dropped_ = 0;
	uint64_t reconnects_ = 0;
	uint64_t drops_logged_ = 0;
	const char* drop_reason_ = "";
	Clock::time_point last_drop_log_{};
	Clock::time_point next_drop_log_{};
};

void NetOutlet::put(std::string&& message)
{
	if (closed_) {
		drop(1, "written after the end of the run");
		return;
	}
	if (datagram() && message.size() > kMaxDatagram) {
		drop(1, "a message longer than a UDP datagram can carry");
		return;
	}
	if (queued_ + message.size() > opt_.buffer_bytes) {
		if (opt_.patient)
			wait_for_room(message.size());
		if (queued_ + message.size() > opt_.buffer_bytes) {
			drop(1, state_ == State::up
					? "the buffer (--output-buffer-mb) is full: the peer reads too slowly"
					: "the buffer (--output-buffer-mb) is full while the peer is not there");
			return;
		}
	}
	queued_ += message.size();
	queue_.push_back(std::move(message));
	if (state_ == State::up && queued_ >= kSendAt)
		send_some();
}

void NetOutlet::pump()
{
	if (state_ == State::connecting) {
		pollfd p{fd_, POLLOUT, 0};
		if (::poll(&p, 1, 0) > 0) {
			int err = 0;
			socklen_t len = sizeof(err);
			getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
			if (err)
				fail(std::string("cannot connect: ") + std::strerror(err));
			else
				connected();
		} else if (Clock::now() - connect_started_ > kConnectTimeout) {
			fail("cannot connect: no answer in 5 s");
		}
	}
	if (state_ == State::down && Clock::now() >= next_attempt_)
		start_connect();
	if (state_ == State::up && !datagram())
		peer_gone();
	if (state_ == State::up && !queue_.empty())
		send_some();
	log_drops(false);
}

void NetOutlet::start_connect()
{
	const Address& a = addrs_[next_addr_ % addrs_.size()];
	int type = datagram() ? SOCK_DGRAM : SOCK_STREAM;
	fd_ = ::socket(a.sa.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd_ < 0) {
		fail(std::string("cannot make a socket: ") + std::strerror(errno));
		return;
	}
	connect_started_ = Clock::now();
	if (::connect(fd_, reinterpret_cast<const sockaddr*>(&a.sa), a.len) == 0) {
		connected();
		return;
	}
	if (errno == EINPROGRESS) {
		state_ = State::connecting;
		return;
	}
	// a Unix socket's EAGAIN (its backlog is full) is a refusal too
	fail(std::string("cannot connect: ") + std::strerror(errno));
}

void NetOutlet::connected()
{
	state_ = State::up;
	sent_ = 0;
	if (ever_up_) {
		reconnects_++;
		spdlog::info("{} {}: connected again", opt_.option, spec_.text);
	} else if (outage_logged_) {
		spdlog::info("{} {}: connected", opt_.option, spec_.text);
	} else {
		spdlog::debug("{} {}: connected", opt_.option, spec_.text);
	}
	ever_up_ = true;
	outage_logged_ = false;
	backoff_ = kFirstBackoff;
}

// The connection is gone or could not be made: try again after the
// back-off; the message that was cut short goes again whole.
void NetOutlet::fail(const std::string& why)
{
	bool was_up = state_ == State::up;
	disconnect();
	next_addr_++;
	next_attempt_ = Clock::now() + backoff_;
	if (!outage_logged_) {
		spdlog::warn("{} {}: {}; the {} wait in a buffer (--output-buffer-mb) until it is back; trying again "
			     "with back-off (up to 10 s)",
			     opt_.option, spec_.text, was_up ? "the connection was lost (" + why + ")" : why,
			     opt_.what);
		outage_logged_ = true;
	} else {
		spdlog::debug("{} {}: {}; next attempt in {} ms", opt_.option, spec_.text, why, backoff_.count());
	}
	backoff_ = std::min(backoff_ * 2, kMaxBackoff);
}

void NetOutlet::disconnect()
{
	if (fd_ >= 0)
		::close(fd_);
	fd_ = -1;
	state_ = State::down;
	sent_ = 0;
}

// Nothing is expected from the peer: a readable socket is one it closed
// (or data thrown away). Checked before each send, so that records are not
// written into a connection the peer has already left.
bool NetOutlet::peer_gone()
{
	char buf[1024];
	for (int i = 0; i < 64; i++) {
		ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n == 0) {
			fail("the peer closed the connection");
			return true;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return false;
		fail(std::strerror(errno));
		return true;
	}
	return false;
}

void NetOutlet::sent(std::size_t n)
{
	while (n > 0 && !queue_.empty()) {
		std::size_t left = queue_.front().size() - sent_;
		if (n < left) {
			sent_ += n;
			return;
		}
		n -= left;
		queued_ -= queue_.front().size();
		queue_.pop_front();
		sent_ = 0;
	}
}

void NetOutlet::send_some()
{
	if (datagram()) {
		send_datagrams();
		return;
	}
	while (state_ == State::up && !queue_.empty()) {
		iovec iov[64];
		std::size_t n = 0, total = 0;
		for (auto it = queue_.begin(); it != queue_.end() && n < 64; ++it, ++n) {
			std::size_t skip = n == 0 ? sent_ : 0;
			iov[n].iov_base = it->data() + skip;
			iov[n].iov_len = it->size() - skip;
			total += iov[n].iov_len;
		}
		msghdr mh{};
		mh.msg_iov = iov;
		mh.msg_iovlen = n;
		ssize_t w = ::sendmsg(fd_, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				fail(std::strerror(errno));
			return;
		}
		sent(static_cast<std::size_t>(w));
		if (static_cast<std::size_t>(w) < total)
			return; // the socket's buffer is full
	}
}

// One message per datagram. A refusal (ICMP port unreachable: nothing
// listens) is reported on a later send; the datagram it was about is lost
// and counted, the one being sent goes again.
void NetOutlet::send_datagrams()
{
	while (state_ == State::up && !queue_.empty()) {
		const std::string& m = queue_.front();
		if (::send(fd_, m.data(), m.size(), MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) {
			queued_ -= m.size();
			queue_.pop_front();
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == ECONNREFUSED) {
			drop(1, "the peer's host refused a datagram: nothing listens there");
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
			return;
		if (errno == EMSGSIZE) {
			queued_ -= m.size();
			queue_.pop_front();
			drop(1, "a message longer than a UDP datagram can carry");
			continue;
		}
		fail(std::strerror(errno));
		return;
	}
}

void NetOutlet::drop(uint64_t n, const char* why)
{
	dropped_ += n;
	drop_reason_ = why;
}

void NetOutlet::log_drops(bool now)
{
	if (dropped_ <= drops_logged_)
		return;
	auto t = Clock::now();
	if (!now && t < next_drop_log_)
		return;
	if (drops_logged_ == 0)
		spdlog::warn("{} {}: {} dropped: {} ({})", opt_.option, spec_.text, opt_.what, dropped_, drop_reason_);
	else if (now)
		spdlog::warn("{} {}: {} dropped by the end of the run: {} more, {} in all ({})", opt_.option,
			     spec_.text, opt_.what, dropped_ - drops_logged_, dropped_, drop_reason_);
	else
		spdlog::warn("{} {}: {} dropped in the last {:.0f} s: {} ({} in all; {})", opt_.option, spec_.text,
			     opt_.what, std::chrono::duration<double>(t - last_drop_log_).count(),
			     dropped_ - drops_logged_, dropped_, drop_reason_);
	drops_logged_ = dropped_;
	last_drop_log_ = t;
	next_drop_log_ = t + kDropLogEvery;
}

// Waits (at most until `until`) for the socket to take more, or for the
// next connection attempt.
void NetOutlet::wait_io(Clock::time_point until)
{
	auto now = Clock::now();
	if (now >= until)
		return;
	if (state_ == State::down) {
		std::this_thread::sleep_until(std::min(until, std::max(next_attempt_, now)));
		return;
	}
	int ms = static_cast<int>(std::chrono::duration_cast<milliseconds>(until - now).count()) + 1;
	pollfd p{fd_, static_cast<short>(POLLOUT | (state_ == State::up && !datagram() ? POLLIN : 0)), 0};
	::poll(&p, 1, std::min(ms, 100));
}

void NetOutlet::wait_for_room(std::size_t size)
{
	auto give_up = Clock::now() + kPatience;
	while (queued_ + size > opt_.buffer_bytes && state_ != State::down && Clock::now() < give_up) {
		std::size_t before = queued_;
		wait_io(give_up);
		pump();
		if (queued_ < before)
			give_up = Clock::now() + kPatience;
	}
}

void NetOutlet::close(Clock::time_point deadline)
{
	if (closed_)
		return;
	closed_ = true;
	pump();
	while (!queue_.empty() && Clock::now() < deadline) {
		wait_io(deadline);
		pump();
	}
	if (!queue_.empty()) {
		drop(queue_.size(), "not sent by the end of the run");
		queue_.clear();
		queued_ = 0;
	}
	log_drops(true);
	// the peer reads to the end of what the kernel still has to send
	if (fd_ >= 0 && !datagram())
		::shutdown(fd_, SHUT_WR);
	disconnect();
}

} // namespace

// ---- the SPEC ------------------------------------------------------------------

OutputSpec parse_output_spec(const std::string& spec)
{
	OutputSpec s;
	s.text = spec;
	if (spec == "-" || spec == "stdout")
		return s;
	auto colon = spec.find(':');
	if (colon == std::string::npos)
		throw std::invalid_argument("'" + spec + "' is not an output: use " + kSpecForms);
	std::string scheme = spec.substr(0, colon);
	std::string rest = spec.substr(colon + 1);
	if (scheme == "file" || scheme == "unix") {
		if (rest.empty())
			throw std::invalid_argument(spec + ": no path: use " + scheme + ":PATH");
		if (rest.find('\0') != std::string::npos)
			throw std::invalid_argument(spec + ": the path has a NUL byte");
		s.kind = scheme == "file" ? OutputSpec::Kind::file : OutputSpec::Kind::unix_stream;
		if (s.kind == OutputSpec::Kind::unix_stream && rest.size() >= sizeof(sockaddr_un::sun_path))
			throw std::invalid_argument(spec + ": a Unix socket's path has at most " +
						    std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
		s.path = rest;
		return s;
	}
	if (scheme == "tcp")
		s.kind = OutputSpec::Kind::tcp;
	else if (scheme == "syslog" || scheme == "syslog+tcp")
		s.kind = OutputSpec::Kind::syslog_tcp;
	else if (scheme == "syslog+udp")
		s.kind = OutputSpec::Kind::syslog_udp;
	else
		throw std::invalid_argument("'" + scheme + ":' is not a kind of output: use " + kSpecForms);
	split_host_port(spec, rest, s);
	return s;
}

// ---- syslog --------------------------------------------------------------------

std::string format_syslog(const SyslogHeader& h, std::string_view msg)
{
	time_t secs = static_cast<time_t>(h.time_ns / 1'000'000'000ULL);
	unsigned micros = static_cast<unsigned>(h.time_ns % 1'000'000'000ULL / 1000);
	tm t{};
	gmtime_r(&secs, &t);
	char stamp[48];
	std::snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", t.tm_year + 1900, t.tm_mon + 1,
		      t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, micros);
	std::string out = "<" + std::to_string(h.facility * 8 + h.severity) + ">1 ";
	out += stamp;
	out += ' ';
	out += header_field(h.hostname, 255);
	out += ' ';
	out += header_field(h.app_name, 48);
	out += ' ';
	out += h.procid > 0 ? std::to_string(h.procid) : "-";
	out += ' ';
	out += header_field(h.msgid, 32);
	out += " - "; // no structured data
	out.append(msg);
	return out;
}

std::string octet_counted(std::string_view message)
{
	std::string out = std::to_string(message.size());
	out += ' ';
	out.append(message);
	return out;
}

// A quote in a JSON string is escaped, so "severity":" outside one is a key.
int record_severity(std::string_view json)
{
	constexpr std::string_view key = "\"severity\":\"";
	int severity = kSyslogInfo;
	for (auto at = json.find(key); at != std::string_view::npos; at = json.find(key, at + key.size())) {
		std::string_view v = json.substr(at + key.size());
		if (v.starts_with("error\""))
			return kSyslogError;
		if (v.starts_with("warning\""))
			severity = kSyslogWarning;
	}
	return severity;
}

// ---- outlets ---------------------------------------------------------------

Outlet::Outlet(const OutputSpec& spec, const OutletOptions& opt) : spec_(spec), opt_(opt)
{
	if (spec.syslog()) {
		char name[256] = {};
		if (gethostname(name, sizeof(name) - 1) == 0)
			hostname_ = name;
		pid_ = static_cast<long>(getpid());
	}
}

std::unique_ptr<Outlet> Outlet::open(const OutputSpec& spec, const OutletOptions& opt)
{
	if (spec.kind == OutputSpec::Kind::standard_output)
		return std::make_unique<FileOutlet>(spec, opt, stdout, false);
	if (spec.kind == OutputSpec::Kind::file) {
		int fd = open_append(spec.path);
		std::FILE* f = fd < 0 ? nullptr : fdopen(fd, "a");
		if (!f) {
			std::string err = std::strerror(errno);
			if (fd >= 0)
				::close(fd);
			throw std::runtime_error(opt.option + " " + spec.text + ": cannot open " + spec.path + ": " +
						 err);
		}
		return std::make_unique<FileOutlet>(spec, opt, f, true);
	}
	auto out = std::make_unique<NetOutlet>(spec, opt, resolve(spec, opt));
	out->flush(); // starts connecting
	return out;
}

void Outlet::put_record(std::string_view json, RecordKind kind)
{
	if (!spec_.syslog()) {
		std::string line;
		line.reserve(json.size() + 1);
		line.append(json);
		line += '\n';
		put(std::move(line));
		return;
	}
	SyslogHeader h;
	h.severity = kind == RecordKind::event ? kSyslogInfo : record_severity(json);
	h.time_ns = realtime_ns();
	h.hostname = hostname_;
	h.procid = pid_;
	h.msgid = kind == RecordKind::connection ? "connection" : kind == RecordKind::snapshot ? "snapshot" : "event";
	std::string m = format_syslog(h, json);
	put(spec_.kind == OutputSpec::Kind::syslog_tcp ? octet_counted(m) : std::move(m));
}

std::string Outlet::where() const
{
	switch (spec_.kind) {
	case OutputSpec::Kind::standard_output: return "standard output";
	case OutputSpec::Kind::file: return spec_.path;
	default: return spec_.text;
	}
}

void OutletSink::on_connection(const ConnectionRecord& record)
{
	if (text_)
		out_.put_text(record.text());
	else
		out_.put_record(record.json(), record.final() ? RecordKind::connection : RecordKind::snapshot);
}

} // namespace tdsbpf
