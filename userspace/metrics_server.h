// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// --metrics-addr: the Prometheus page served over HTTP by civetweb. The
// thread that reads the ring buffer renders the page (Metrics::render) and
// publishes it; civetweb's threads only hand out the last one published.
#pragma once

#include <mutex>
#include <string>

struct mg_context;
struct mg_connection;

namespace tdsbpf {

// "HOST:PORT" as --metrics-addr takes it (127.0.0.1:9433, [::1]:9433,
// 0.0.0.0:9433, or :9433 for every address) as civetweb's listening_ports
// value; empty with *error set when it is not one of those.
std::string metrics_listen_spec(const std::string& addr, std::string* error);

// Whether the address can be listened at now (a socket is bound to it and
// closed again); *error says why not. The server itself starts only once
// privileges are dropped, so that its threads never hold them.
bool metrics_addr_free(const std::string& addr, std::string* error);

class MetricsServer {
public:
	// Listens at once; throws std::runtime_error saying why it cannot.
	explicit MetricsServer(const std::string& addr);
	~MetricsServer();
	MetricsServer(const MetricsServer&) = delete;
	MetricsServer& operator=(const MetricsServer&) = delete;

	void publish(std::string page);

private:
	static int serve_metrics(mg_connection* conn, void* self);
	static int serve_index(mg_connection* conn, void* self);
	mg_context* ctx_ = nullptr;
	std::mutex mu_;
	std::string page_;
};

} // namespace tdsbpf
