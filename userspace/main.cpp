// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// tdsbpf: a live tracer for SQL Server (TDS) connections.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "aggregator/aggregator.h"
#include "demo.h"
#include "event_json.h"
#include "host_parser.h"
#include "loader.h"
#include "reader.h"
#include "session.h"

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_summary{false};

void on_signal(int sig)
{
	if (sig == SIGUSR1)
		g_summary = true;
	else
		g_stop = true;
}

void install_signals()
{
	struct sigaction sa{};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; // no SA_RESTART: let poll() return at once
	sigaction(SIGINT, &sa, nullptr);
	sigaction(SIGTERM, &sa, nullptr);
	sigaction(SIGHUP, &sa, nullptr);
	sigaction(SIGUSR1, &sa, nullptr);
	signal(SIGPIPE, SIG_IGN);
}

struct Options {
	std::vector<std::string> ifaces;
	std::vector<uint16_t> ports;
	std::string attach = "auto";
	std::string xdp_mode = "auto";
	uint32_t max_flows = 65536;
	uint32_t ringbuf_mb = 8;
	uint32_t flush_interval_s = 10;
	bool events = false;
	std::string read;
	std::string format = "json";
	uint32_t emit_interval_s = 0;
	uint32_t idle_timeout_s = 0;
	std::size_t max_connections = 65536;
	bool redact = false;
	uint32_t slow_login_ms = 1000;
	double duration_s = 0;
	std::string ready_file;
	bool verbose = false;
};

// Takes every record, converts its clock, and hands it on.
class Output {
public:
	Output(const Options& o) : opt_(o)
	{
		if (o.events)
			return;
		tdsbpf::AggregatorConfig cfg;
		cfg.slow_login_threshold_ms = o.slow_login_ms;
		cfg.idle_timeout_s = o.idle_timeout_s;
		cfg.emit_interval_s = o.emit_interval_s;
		cfg.max_connections = o.max_connections;
		cfg.redact = o.redact;
		cfg.format = o.format == "text" ? tdsbpf::OutputFormat::text : tdsbpf::OutputFormat::json;
		cfg.ifname = tdsbpf::interface_name;
		sink_ = tdsbpf::make_sink(cfg.format, stdout);
		agg_ = std::make_unique<tdsbpf::Aggregator>(cfg, *sink_);
	}

	void on_event(const tdsbpf_event& ev, std::size_t len)
	{
		events_++;
		last_ts_ = ev.ts_ns;
		if (agg_) {
			agg_->on_event(ev, len);
		} else {
			std::string line = tdsbpf::event_to_json(ev, len, true, opt_.redact)
						   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
			line += '\n';
			std::fwrite(line.data(), 1, line.size(), stdout);
		}
	}

	void tick(uint64_t now_ns)
	{
		if (agg_)
			agg_->tick(now_ns);
		std::fflush(stdout);
	}

	void finish(uint64_t now_ns, uint64_t kernel_drops)
	{
		if (agg_) {
			agg_->note_drops(kernel_drops, 0);
			agg_->finish(now_ns);
		}
		std::fflush(stdout);
	}

	void summary(uint64_t kernel_drops)
	{
		if (agg_) {
			agg_->note_drops(kernel_drops, 0);
			tdsbpf::print_summary(stderr, agg_->summary(),
					      opt_.format == "text" ? tdsbpf::OutputFormat::text : tdsbpf::OutputFormat::json);
		} else {
			std::fprintf(stderr, "{\"events\":%llu,\"kernel_drops\":%llu}\n",
				     static_cast<unsigned long long>(events_), static_cast<unsigned long long>(kernel_drops));
		}
	}

	uint64_t last_ts() const { return last_ts_; }

private:
	const Options& opt_;
	std::unique_ptr<tdsbpf::Sink> sink_;
	std::unique_ptr<tdsbpf::Aggregator> agg_;
	uint64_t events_ = 0;
	uint64_t last_ts_ = 0;
};

int run_read(const Options& o)
{
	Output out(o);
	tdsbpf::HostParserConfig pc;
	if (!o.ports.empty())
		pc.ports = o.ports;
	pc.max_flows = o.max_flows;
	pc.flush_interval_ns = static_cast<uint64_t>(o.flush_interval_s) * 1'000'000'000ULL;
	tdsbpf::HostParser parser(pc, [&](const tdsbpf_event& ev, std::size_t len) { out.on_event(ev, len); });
	tdsbpf::ReadStats st;
	try {
		st = tdsbpf::read_capture(o.read, parser);
	} catch (const std::exception& e) {
		spdlog::error("{}", e.what());
		return 2;
	}
	out.finish(out.last_ts(), 0);
	if (st.truncated)
		spdlog::warn("{}", st.warning);
	spdlog::info("read {} frames ({}), {} duplicates skipped, {} not IP, {} cut short by the snap length",
		     st.frames, st.linktype_name, st.duplicates, st.unsupported, st.short_frames);
	out.summary(0);
	return 0;
}

int run_live(const Options& o)
{
	tdsbpf::LoaderConfig lc;
	lc.interfaces = o.ifaces;
	if (lc.interfaces.empty()) {
		std::string def = tdsbpf::default_route_interface();
		if (def.empty()) {
			spdlog::error("no --iface given and no default route to take one from");
			return 2;
		}
		lc.interfaces.push_back(def);
	}
	if (!o.ports.empty())
		lc.ports = o.ports;
	lc.attach = o.attach == "xdp" ? tdsbpf::AttachMode::xdp
		    : o.attach == "tc" ? tdsbpf::AttachMode::tc
				       : tdsbpf::AttachMode::automatic;
	lc.xdp_mode = o.xdp_mode == "native" ? tdsbpf::XdpMode::native
		      : o.xdp_mode == "generic" ? tdsbpf::XdpMode::generic
						: tdsbpf::XdpMode::automatic;
	lc.max_flows = o.max_flows;
	lc.ringbuf_mb = o.ringbuf_mb;
	lc.flush_interval_ns = static_cast<uint64_t>(o.flush_interval_s) * 1'000'000'000ULL;

	Output out(o);
	std::optional<tdsbpf::Session> session;
	try {
		session.emplace(lc);
	} catch (const std::exception& e) {
		spdlog::error("{}", e.what());
		return 2;
	}
	if (!o.ready_file.empty())
		std::ofstream(o.ready_file) << "ready\n";

	const uint64_t start = session->now_ns();
	int rc = session->run([&](const tdsbpf_event& ev, std::size_t len) { out.on_event(ev, len); },
			      [&](uint64_t now) {
				      out.tick(now);
				      if (g_summary.exchange(false))
					      out.summary(session->kernel_drops());
				      if (o.duration_s > 0 && now - start >= static_cast<uint64_t>(o.duration_s * 1e9))
					      return false;
				      return !g_stop.load();
			      });
	uint64_t drops = session->kernel_drops();
	session->detach();
	out.finish(session->now_ns(), drops);
	out.summary(drops);
	if (drops)
		spdlog::warn("{} events were lost because the ring buffer was full (raise --ringbuf-mb)", drops);
	return rc;
}

} // namespace

int main(int argc, char** argv)
{
	auto log = spdlog::stderr_color_mt("tdsbpf");
	spdlog::set_default_logger(log);
	spdlog::set_pattern("%^%l%$: %v");
	if (argc > 1 && std::strcmp(argv[1], "demo") == 0)
		return tdsbpf::run_demo(argc - 1, argv + 1);

	Options o;
	CLI::App app{"tdsbpf: trace SQL Server (TDS) connections live, from the kernel, or from a capture file"};
	app.set_version_flag("--version", "tdsbpf " TDSBPF_VERSION);
	app.add_option("-i,--iface", o.ifaces, "Interface to trace (repeatable; default: the default route's)");
	app.add_option("-p,--port", o.ports, "SQL Server TCP port (repeatable, up to 64; default 1433)")
		->check(CLI::Range(1, 65535));
	app.add_option("--attach", o.attach, "How to see ingress: xdp, tc, or auto (XDP, falling back to tc)")
		->check(CLI::IsMember({"auto", "xdp", "tc"}));
	app.add_option("--xdp-mode", o.xdp_mode, "XDP mode: native, generic, or auto")
		->check(CLI::IsMember({"auto", "native", "generic"}));
	app.add_option("--max-flows", o.max_flows, "Flows tracked in the kernel (LRU)")->check(CLI::Range(1, 16777216));
	app.add_option("--ringbuf-mb", o.ringbuf_mb, "Ring buffer size in MiB")->check(CLI::Range(1, 1024));
	app.add_option("--flush-interval", o.flush_interval_s, "Seconds between counter updates of long flows (0: only at close)");
	app.add_flag("--events", o.events, "Print the raw events, one JSON object per line (debug view)");
	app.add_option("-r,--read", o.read, "Read a pcap or pcapng file instead of tracing live");
	app.add_option("-f,--format", o.format, "Output: json (NDJSON) or text (timelines)")
		->check(CLI::IsMember({"json", "text"}));
	app.add_option("--emit-interval", o.emit_interval_s, "Also print snapshots of long-lived connections every N seconds");
	app.add_option("--idle-timeout", o.idle_timeout_s, "End connections silent for N seconds");
	app.add_option("--max-connections", o.max_connections, "Connections tracked at most (oldest idle evicted)");
	app.add_flag("--redact", o.redact, "Hide NTLM domain, user and workstation names");
	app.add_option("--slow-login-ms", o.slow_login_ms, "A login slower than this is diagnosed slow");
	app.add_option("--duration", o.duration_s, "Stop after N seconds");
	app.add_option("--ready-file", o.ready_file, "Write this file once attached (for scripts)");
	app.add_flag("-v,--verbose", o.verbose, "More log lines");
	try {
		app.parse(argc, argv);
	} catch (const CLI::ParseError& e) {
		// --help and --version exit 0; every bad command line exits 2, as
		// the README says (not CLI11's own codes)
		return app.exit(e) == 0 ? 0 : 2;
	}
	if (o.verbose)
		spdlog::set_level(spdlog::level::debug);
	if (o.ports.size() > TDSBPF_MAX_PORTS) {
		spdlog::error("at most {} ports can be traced", TDSBPF_MAX_PORTS);
		return 2;
	}
	install_signals();
	if (!o.read.empty())
		return run_read(o);
	return run_live(o);
}
