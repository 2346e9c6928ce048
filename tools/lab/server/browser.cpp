// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "browser.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <spdlog/spdlog.h>
#include <stdexcept>

namespace tdslab {

namespace {

constexpr std::uint8_t kBcastEx = 0x02;
constexpr std::uint8_t kUcastEx = 0x03;
constexpr std::uint8_t kUcastInst = 0x04;
constexpr std::uint8_t kSvrResp = 0x05;
constexpr std::uint8_t kUcastDac = 0x0F;
constexpr std::size_t kMaxRequestName = 32; // [MC-SQLR] 2.2.3 and 2.2.4
// Replies waiting for --browser-delay-ms: a flood of requests must not
// grow the server without bound.
constexpr std::size_t kMaxHeld = 4096;
constexpr int kMaxDatagramsPerEvent = 256; // then the TCP side gets its turn

std::string peer_text(const sockaddr_storage& ss)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (ss.ss_family == AF_INET) {
		auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
		return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
	}
	auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
	inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
	return "[" + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port));
}

// Instance names are compared as SQL Server's Browser does: ignoring case.
bool same_name(std::string_view a, std::string_view b)
{
	return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
		       auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
		       return lower(x) == lower(y);
	       });
}

// A requested name for the log: whatever the client sent, made readable.
std::string loggable(ByteView s)
{
	std::string out;
	for (std::size_t i = 0; i < s.size() && i < 40; ++i) {
		out.push_back(s[i] >= 0x20 && s[i] < 0x7F ? static_cast<char>(s[i]) : '?');
	}
	if (s.size() > 40)
		out += "...";
	return out;
}

Bytes svr_resp(const std::string& data)
{
	Bytes b(3 + data.size());
	b[0] = kSvrResp;
	b[1] = static_cast<std::uint8_t>(data.size() & 0xFF);
	b[2] = static_cast<std::uint8_t>(data.size() >> 8);
	std::copy(data.begin(), data.end(), b.begin() + 3);
	return b;
}

// The INSTANCENAME of 0x04 and 0x0F, or nullopt with the reason. The name
// ends at its NUL or, for a client that leaves the NUL out, at the end of
// the datagram.
std::optional<std::string> requested_name(ByteView rest, std::string& why_not)
{
	auto nul = std::find(rest.begin(), rest.end(), std::uint8_t{0});
	std::size_t len = static_cast<std::size_t>(nul - rest.begin());
	if (len == 0) {
		why_not = "empty instance name";
		return std::nullopt;
	}
	if (len > kMaxRequestName) {
		why_not = "instance name longer than 32 bytes";
		return std::nullopt;
	}
	if (nul != rest.end() && rest.size() > len + 1) {
		why_not = "bytes after the instance name";
		return std::nullopt;
	}
	return std::string(reinterpret_cast<const char*>(rest.data()), len);
}

} // namespace

std::string browser_instance_string(const BrowserInstance& self)
{
	return "ServerName;" + self.server_name + ";InstanceName;" + self.instance + ";IsClustered;No;Version;" +
	       self.version + ";tcp;" + std::to_string(self.tcp_port) + ";;";
}

BrowserDecision answer_browser_request(ByteView d, const BrowserInstance& self)
{
	BrowserDecision out;
	if (d.empty()) {
		out.request = "an empty datagram";
		out.why_not = "not a request";
		return out;
	}
	switch (d[0]) {
	case kBcastEx:
	case kUcastEx:
		out.request = d[0] == kBcastEx ? "CLNT_BCAST_EX" : "CLNT_UCAST_EX";
		if (d.size() != 1) {
			out.why_not = "a one-byte request with " + std::to_string(d.size() - 1) + " more bytes";
			return out;
		}
		out.reply = svr_resp(browser_instance_string(self));
		return out;
	case kUcastInst:
	case kUcastDac: {
		const bool dac = d[0] == kUcastDac;
		const std::size_t name_at = dac ? 2 : 1;
		ByteView rest = d.size() > name_at ? d.subspan(name_at) : ByteView{};
		auto nul = std::find(rest.begin(), rest.end(), std::uint8_t{0});
		out.request = std::string(dac ? "CLNT_UCAST_DAC" : "CLNT_UCAST_INST") + " '" +
			      loggable(rest.first(static_cast<std::size_t>(nul - rest.begin()))) + "'";
		if (dac && (d.size() < 2 || d[1] != 0x01)) {
			out.why_not = "DAC PROTOCOLVERSION is not 1";
			return out;
		}
		auto name = requested_name(rest, out.why_not);
		if (!name)
			return out;
		if (!same_name(*name, self.instance)) {
			out.why_not = "no instance of that name";
			return out;
		}
		if (dac) {
			// SVR_RESP (DAC), [MC-SQLR] 2.2.6: RESP_SIZE counts all 6 bytes.
			out.reply = {kSvrResp,
				     0x06,
				     0x00,
				     0x01,
				     static_cast<std::uint8_t>(self.tcp_port & 0xFF),
				     static_cast<std::uint8_t>(self.tcp_port >> 8)};
		} else {
			out.reply = svr_resp(browser_instance_string(self));
		}
		return out;
	}
	default: {
		char type[8];
		std::snprintf(type, sizeof type, "0x%02X", d[0]);
		out.request = "type " + std::string(type) + " (" + std::to_string(d.size()) + " bytes)";
		out.why_not = "not an SSRP request";
		return out;
	}
	}
}

Browser::Browser(BrowserOptions options, BrowserInstance self, bool verbose)
    : options_(std::move(options)), self_(std::move(self)), verbose_(verbose)
{
}

Browser::~Browser()
{
	if (fd_ >= 0)
		::close(fd_);
}

void Browser::open(const std::string& address)
{
	sockaddr_storage ss{};
	socklen_t len = 0;
	auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
	auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
	if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(options_.port);
		len = sizeof(sockaddr_in);
	} else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(options_.port);
		len = sizeof(sockaddr_in6);
	} else {
		throw std::runtime_error("--listen: '" + address + "' is not an IPv4 or IPv6 address");
	}
	address_ = ss.ss_family == AF_INET6 ? "[" + address + "]" : address;
	// No SO_REUSEADDR: on UDP it would let a second browser share the port
	// and take some of the requests.
	fd_ = ::socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd_ < 0)
		throw std::runtime_error(std::string("browser socket: ") + std::strerror(errno));
	if (::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
		int e = errno;
		std::string where = address_ + ":" + std::to_string(options_.port) + "/udp";
		if (e == EADDRINUSE) {
			throw std::runtime_error(
				"port busy: " + where +
				" is already in use (another SQL Browser? pick another --browser-port)");
		}
		throw std::runtime_error("cannot bind the browser to " + where + ": " + std::strerror(e));
	}
}

std::string Browser::describe() const
{
	std::string text = "SQL Browser on " + address_ + ":" + std::to_string(options_.port) + "/udp: instance " +
			   self_.instance + " -> tcp port " + std::to_string(self_.tcp_port);
	if (options_.silent)
		return text + " (silent: requests are never answered)";
	if (options_.delay_ms > 0)
		text += " (replies " + std::to_string(options_.delay_ms) + " ms late)";
	return text;
}

void Browser::on_readable(Clock::time_point now)
{
	std::uint8_t buf[65536];
	for (int i = 0; i < kMaxDatagramsPerEvent; ++i) {
		sockaddr_storage from{};
		socklen_t from_len = sizeof from;
		ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			// EAGAIN: all read. Anything else (an ICMP error for an earlier
			// reply) concerns no request: read on next time.
			return;
		}
		BrowserDecision d = answer_browser_request(ByteView(buf, static_cast<std::size_t>(n)), self_);
		std::string outcome;
		if (options_.silent) {
			outcome = "not answered (--browser-silent)";
		} else if (d.reply.empty()) {
			outcome = "no reply: " + d.why_not;
		} else if (options_.delay_ms > 0) {
			if (held_.size() >= kMaxHeld) {
				outcome = "dropped: " + std::to_string(held_.size()) + " replies already held";
			} else {
				held_.push_back(
					{now + std::chrono::milliseconds(options_.delay_ms), from, from_len, d.reply});
				outcome = "SVR_RESP of " + std::to_string(d.reply.size()) + " bytes in " +
					  std::to_string(options_.delay_ms) + " ms";
			}
		} else {
			send(from, from_len, d.reply);
			outcome = "SVR_RESP of " + std::to_string(d.reply.size()) + " bytes";
		}
		if (verbose_)
			spdlog::debug("browser: <- {} from {}: {}", d.request, peer_text(from), outcome);
	}
}

void Browser::on_timer(Clock::time_point now)
{
	while (!held_.empty() && held_.front().due <= now) {
		const Held& h = held_.front();
		send(h.to, h.to_len, h.reply);
		if (verbose_)
			spdlog::debug("browser: -> SVR_RESP of {} bytes to {} (held)", h.reply.size(), peer_text(h.to));
		held_.pop_front();
	}
}

std::optional<Browser::Clock::time_point> Browser::next_deadline() const
{
	if (held_.empty())
		return std::nullopt;
	return held_.front().due;
}

void Browser::send(const sockaddr_storage& to, socklen_t len, const Bytes& reply)
{
	// One datagram, or nothing: UDP has no partial send, and a full socket
	// buffer loses the reply as the network could.
	if (::sendto(fd_, reply.data(), reply.size(), MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&to), len) < 0 &&
	    verbose_) {
		spdlog::debug("browser: reply to {} not sent: {}", peer_text(to), std::strerror(errno));
	}
}

} // namespace tdslab
