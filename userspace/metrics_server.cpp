// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <civetweb.h>
#include <spdlog/spdlog.h>

namespace tdsbpf {

std::string metrics_listen_spec(const std::string& addr, std::string* error)
{
	auto fail = [&](const std::string& why) {
		if (error)
			*error = why;
		return std::string();
	};
	size_t colon = addr.rfind(':');
	if (colon == std::string::npos)
		return fail("must be HOST:PORT, e.g. 127.0.0.1:9433, [::1]:9433 or :9433 for every address");
	std::string host = addr.substr(0, colon), port = addr.substr(colon + 1);
	unsigned long p = 0;
	if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
	    (p = std::stoul(port)) == 0 || p > 65535)
		return fail("the port must be a number from 1 to 65535");
	if (host.empty())
		return "+" + port; // every IPv4 and IPv6 address
	unsigned char buf[16];
	if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
		if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), buf) != 1)
			return fail("'" + host + "' is not an IPv6 address");
		return host + ":" + port;
	}
	if (inet_pton(AF_INET, host.c_str(), buf) != 1)
		return fail("'" + host + "' is not an IPv4 address (write IPv6 addresses in brackets, [::1])");
	return host + ":" + port;
}

bool metrics_addr_free(const std::string& addr, std::string* error)
{
	std::string spec = metrics_listen_spec(addr, error);
	if (spec.empty())
		return false;
	// "+PORT": every address; "[v6]:PORT"; "v4:PORT"
	size_t colon = spec.rfind(':');
	std::string host = spec[0] == '+' ? "" : spec.substr(0, colon);
	uint16_t port = static_cast<uint16_t>(std::stoul(spec[0] == '+' ? spec.substr(1) : spec.substr(colon + 1)));
	sockaddr_storage ss{};
	socklen_t len = 0;
	if (!host.empty() && host.front() == '[') {
		auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a->sin6_addr);
		len = sizeof(*a);
	} else {
		auto* a = reinterpret_cast<sockaddr_in*>(&ss);
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		a->sin_addr.s_addr = htonl(INADDR_ANY);
		if (!host.empty())
			inet_pton(AF_INET, host.c_str(), &a->sin_addr);
		len = sizeof(*a);
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	bool ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
		  bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 && listen(fd, 1) == 0;
	if (!ok && error)
		*error = std::string("cannot listen: ") + std::strerror(errno);
	if (fd >= 0)
		close(fd);
	return ok;
}

namespace {

int log_message(const mg_connection*, const char* message)
{
	spdlog::warn("metrics server: {}", message);
	return 1;
}

bool is_get(mg_connection* conn)
{
	const mg_request_info* ri = mg_get_request_info(conn);
	if (std::strcmp(ri->request_method, "GET") == 0 || std::strcmp(ri->request_method, "HEAD") == 0)
		return true;
	mg_send_http_error(conn, 405, "only GET and HEAD\n");
	return false;
}

} // namespace

MetricsServer::MetricsServer(const std::string& addr)
{
	std::string why;
	std::string spec = metrics_listen_spec(addr, &why);
	if (spec.empty())
		throw std::runtime_error("--metrics-addr " + addr + ": " + why);
	mg_init_library(0);
	const char* options[] = {"listening_ports", spec.c_str(),	 "num_threads", "2",	"request_timeout_ms",
				 "10000",	    "enable_keep_alive", "no",		nullptr};
	mg_callbacks callbacks{};
	callbacks.log_message = log_message;
	mg_init_data init{};
	init.callbacks = &callbacks;
	init.user_data = this;
	init.configuration_options = options;
	char text[256] = {};
	unsigned code = 0;
	mg_error_data err{};
	err.code = &code;
	err.text = text;
	err.text_buffer_size = sizeof(text);
	ctx_ = mg_start2(&init, &err);
	if (!ctx_)
		throw std::runtime_error("--metrics-addr " + addr + ": cannot listen: " +
					 (text[0] ? std::string(text) : std::string("unknown error")));
	mg_set_request_handler(ctx_, "/metrics$", serve_metrics, this);
	mg_set_request_handler(ctx_, "/$", serve_index, this);
}

MetricsServer::~MetricsServer()
{
	if (ctx_)
		mg_stop(ctx_);
}

void MetricsServer::publish(std::string page)
{
	std::lock_guard<std::mutex> lock(mu_);
	page_.swap(page);
}

int MetricsServer::serve_metrics(mg_connection* conn, void* self)
{
	if (!is_get(conn))
		return 405;
	std::string page;
	{
		auto* s = static_cast<MetricsServer*>(self);
		std::lock_guard<std::mutex> lock(s->mu_);
		page = s->page_;
	}
	mg_send_http_ok(conn, "text/plain; version=0.0.4; charset=utf-8", static_cast<long long>(page.size()));
	if (std::strcmp(mg_get_request_info(conn)->request_method, "HEAD") != 0)
		mg_write(conn, page.data(), page.size());
	return 200;
}

int MetricsServer::serve_index(mg_connection* conn, void*)
{
	if (!is_get(conn))
		return 405;
	static const char body[] = "tdsbpf: Prometheus metrics at /metrics\n";
	mg_send_http_ok(conn, "text/plain; charset=utf-8", sizeof(body) - 1);
	mg_write(conn, body, sizeof(body) - 1);
	return 200;
}

} // namespace tdsbpf
