// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// tdsbpf: a live tracer for SQL Server (TDS) connections.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include "aggregator/aggregator.h"
#include "demo.h"
#include "event_json.h"
#include "host_parser.h"
#include "loader.h"
#include "metrics_server.h"
#include "outlets.h"
#include "owners.h"
#include "packet_capture.h"
#include "privileges.h"
#include "reader.h"
#include "session.h"

namespace {

// Thrown from inside a capture's walk when the output has failed.
struct OutputFailed {};

std::atomic<bool> g_stop{false};
std::atomic<bool> g_summary{false};
std::atomic<bool> g_reopen{false};

void on_signal(int sig)
{
	if (sig == SIGUSR1)
		g_summary = true;
	else if (sig == SIGHUP)
		g_reopen = true; // logrotate: files are opened again
	else
		g_stop = true;
}

void install_signals()
{
	struct sigaction sa {};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; // no SA_RESTART: let poll() return at once
	sigaction(SIGINT, &sa, nullptr);
	sigaction(SIGTERM, &sa, nullptr);
	// these two do not stop anything: a capture read from a pipe goes on
	// (poll() returns at once all the same)
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, nullptr);
	sigaction(SIGUSR1, &sa, nullptr);
	signal(SIGPIPE, SIG_IGN);
}

// The capture frame being walked (--read), for the records' frame numbers.
uint64_t g_read_frame = 0;

struct Options {
	std::vector<std::string> ifaces;
	std::vector<uint16_t> ports;
	std::string attach = "auto";
	std::string xdp_mode = "auto";
	std::string tc_api = "auto";
	bool exit_when_iface_gone = false;
	std::string user;
	uint32_t max_flows = 65536;
	uint32_t ringbuf_mb = 8;
	uint32_t flush_interval_s = 10;
	bool events = false;
	bool every_request = false;
	std::string output = "-";
	std::string events_output;
	uint32_t output_buffer_mb = 16;
	std::string read;
	std::string format = "json";
	uint32_t emit_interval_s = 0;
	std::string summary_output; // --summary-output: where summaries go (default: standard error)
	uint32_t idle_timeout_s = 0;
	std::size_t max_connections = 65536;
	bool redact = false;
	uint32_t slow_login_ms = 1000;
	double duration_s = 0;
	std::string ready_file;
	std::string metrics_addr;
	bool follow_redirects = false;
	bool follow_browser = false;
	std::string write_pcap;
	uint32_t snaplen = 512;
	uint32_t pcap_size_mb = 0;
	uint32_t pcap_files = 0;
	bool pcap_diagnosed_only = false;
	bool metrics_owner_labels = false;
	std::string cgroup_root = "/sys/fs/cgroup";
	bool verbose = false;
};

// Takes every record, converts its clock, and hands it on.
class Output {
public:
	// Opens the outputs; throws std::runtime_error naming the option.
	Output(const Options& o) : opt_(o)
	{
		tdsbpf::OutletOptions oo;
		oo.buffer_bytes = static_cast<std::size_t>(o.output_buffer_mb) << 20;
		oo.patient = !o.read.empty();
		oo.what = o.events ? "events" : "records";
		out_ = tdsbpf::Outlet::open(tdsbpf::parse_output_spec(o.output), oo);
		if (!o.events_output.empty()) {
			oo.option = "--events-output";
			oo.what = "events";
			events_out_ = tdsbpf::Outlet::open(tdsbpf::parse_output_spec(o.events_output), oo);
		}
		if (!o.summary_output.empty()) {
			oo.option = "--summary-output";
			oo.what = "summaries";
			summary_out_ = tdsbpf::Outlet::open(tdsbpf::parse_output_spec(o.summary_output), oo);
		}
		events_to_ = o.events ? out_.get() : events_out_.get();
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
		if (!o.metrics_addr.empty()) {
			metrics_ = std::make_unique<tdsbpf::Metrics>();
			metrics_->set_owner_labels(o.metrics_owner_labels);
			cfg.metrics = metrics_.get();
		}
		if (!o.write_pcap.empty()) {
			tdsbpf::PacketCaptureOptions po;
			po.file.path = o.write_pcap;
			po.file.rotate_bytes = static_cast<uint64_t>(o.pcap_size_mb) << 20;
			po.file.keep_files = o.pcap_files;
			po.file.snaplen = o.snaplen;
			po.file.application = "tdsbpf " TDSBPF_VERSION;
			po.diagnosed_only = o.pcap_diagnosed_only;
			po.ifname = [live = o.read.empty()](uint32_t i) {
				return live ? tdsbpf::interface_name(i) : std::string();
			};
			capture_ = std::make_unique<tdsbpf::PacketCapture>(po);
			cfg.on_packet = [this](uint64_t id, const tdsbpf_packet_event& pk, std::span<const uint8_t> b) {
				capture_->packet(id, pk, b);
			};
			cfg.on_connection_end = [this](uint64_t id, bool diagnosed) {
				capture_->connection_end(id, diagnosed);
			};
		}
		if (!o.read.empty())
			cfg.frame_number = [] { return g_read_frame; };
		if (o.read.empty()) {
			resolver_ = std::make_unique<tdsbpf::OwnerResolver>(o.cgroup_root);
			// a cgroup not found is looked for again at most once a second:
			// a walk of a large tree must not hold up the events
			resolver_->set_rescan_interval(std::chrono::milliseconds(1000));
			if (!resolver_->available())
				spdlog::info(
					"--cgroup-root {}: no cgroup2 file system there; records give the cgroup id of a "
					"local socket, not its service",
					o.cgroup_root);
			cfg.resolve_owner = [this](uint64_t id) { return owner_of(id); };
		}
		if (o.follow_browser)
			cfg.on_browser_port = [this](uint16_t port) {
				if (browser_ports_.insert(port).second)
					spdlog::info(
						"the SQL Server Browser named port {}: tracing it too (--follow-browser)",
						port);
				if (on_port_)
					on_port_(port);
			};
		if (o.follow_redirects)
			cfg.on_redirect = [this](uint16_t port) {
				if (followed_.insert(port).second)
					spdlog::info("a server routed its client to port {}: tracing that port too "
						     "(--follow-redirects)",
						     port);
			};
		sink_ = std::make_unique<tdsbpf::OutletSink>(*out_, cfg.format);
		agg_ = std::make_unique<tdsbpf::Aggregator>(cfg, *sink_);
	}

	void on_event(const tdsbpf_event& ev, std::size_t len)
	{
		events_++;
		last_ts_ = ev.ts_ns;
		// SIGHUP while a capture is read: what comes after it goes to the
		// files opened again
		if (g_reopen.load(std::memory_order_relaxed) && g_reopen.exchange(false))
			reopen();
		if (agg_)
			agg_->on_event(ev, len);
		// packet copies go to the capture file, not into the event lines;
		// excerpts are read into the records (their bytes are not shown)
		if (events_to_ && ev.kind != TDSBPF_EV_PACKET && ev.kind != TDSBPF_EV_EXCERPT) {
			std::string line = tdsbpf::event_to_json(ev, len, true, opt_.redact)
						   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
			events_to_->put_record(line, tdsbpf::RecordKind::event);
		}
		// a capture is not read to its end into an output that is gone
		if ((events_ & 4095) == 0 && write_error())
			throw OutputFailed();
	}

	// The errno of the first failed write of records or events (0: none).
	int write_error()
	{
		if (events_to_)
			events_to_->flush(); // records are flushed by the aggregator
		for (const auto* out : {out_.get(), events_out_.get()})
			if (out && out->error())
				return out->error();
		return 0;
	}

	// Logs a failed write; true when there was one.
	bool report_write_error()
	{
		write_error();
		for (const auto* out : {out_.get(), events_out_.get()}) {
			if (out && out->error()) {
				spdlog::error("cannot write the {} to {}: {}; stopping", out->options().what,
					      out->where(), std::strerror(out->error()));
				return true;
			}
		}
		return false;
	}

	// SIGHUP: files are opened again by their names (logrotate moved them).
	void reopen()
	{
		bool any = false;
		for (auto* out : {out_.get(), events_out_.get()})
			if (out && out->reopen())
				any = true;
		if (!any)
			spdlog::debug("SIGHUP: no file output to open again");
	}

	// kernel_drops: the ring buffer's drop count now, so that records of
	// connections open while events were dropped say so.
	void tick(uint64_t now_ns, uint64_t kernel_drops)
	{
		if (agg_) {
			agg_->note_drops(kernel_drops, 0, now_ns);
			agg_->tick(now_ns);
		}
		if (capture_)
			capture_->flush();
		for (auto* out : {out_.get(), events_out_.get()})
			if (out)
				out->flush();
	}

	void finish(uint64_t now_ns, uint64_t kernel_drops)
	{
		if (agg_) {
			agg_->note_drops(kernel_drops, 0, now_ns);
			agg_->finish(now_ns);
		}
		if (capture_) {
			capture_->finish();
			const auto& st = capture_->stats();
			spdlog::info(
				"--write-pcap {}: {} packets in {} file(s){}{}", opt_.write_pcap, st.written, st.files,
				st.not_kept ? fmt::format(", {} not kept (buffers full)", st.not_kept) : "",
				st.discarded ? fmt::format(", {} of connections with no finding left out", st.discarded)
					     : "");
			if (st.write_failed)
				spdlog::error("--write-pcap {}: {} packets not written: {}", opt_.write_pcap,
					      st.write_failed, capture_->error());
		}
		// what network outputs still hold gets a last chance to go out
		auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
		for (auto* out : {out_.get(), events_out_.get(), summary_out_.get()})
			if (out)
				out->close(deadline);
	}

	// submitted: the events the kernel (or the capture walk) put out.
	void summary(uint64_t kernel_drops, uint64_t submitted)
	{
		if (agg_) {
			agg_->note_drops(kernel_drops, 0);
			agg_->note_submitted(submitted);
			tdsbpf::Summary s = agg_->summary();
			s.output = output_summary(*out_);
			if (events_out_)
				s.events_output = output_summary(*events_out_);
			auto format = opt_.format == "text" ? tdsbpf::OutputFormat::text : tdsbpf::OutputFormat::json;
			if (summary_out_) {
				std::string text = tdsbpf::format_summary(s, format);
				if (!text.empty() && text.back() == '\n')
					text.pop_back();
				summary_out_->put_record(text, tdsbpf::RecordKind::event);
				summary_out_->flush();
			} else {
				tdsbpf::print_summary(stderr, s, format);
			}
		} else {
			std::fprintf(stderr,
				     "{\"events\":%llu,\"events_submitted\":%llu,\"kernel_drops\":%llu,\"output\":{"
				     "\"events_dropped\":%llu,\"reconnects\":%llu}}\n",
				     static_cast<unsigned long long>(events_),
				     static_cast<unsigned long long>(submitted),
				     static_cast<unsigned long long>(kernel_drops),
				     static_cast<unsigned long long>(out_->dropped()),
				     static_cast<unsigned long long>(out_->reconnects()));
		}
	}

	uint64_t last_ts() const { return last_ts_; }

	// Where a port the Browser named is added to the traced ports (the
	// kernel has done so already for what fit its look at the reply).
	void on_port(std::function<void(uint16_t)> fn) { on_port_ = std::move(fn); }

	// The Prometheus page of what was counted so far ("" without
	// --metrics-addr).
	std::string metrics_page(const tdsbpf::TracerCounters& t)
	{
		if (!metrics_ || !agg_)
			return {};
		agg_->note_drops(t.kernel_drops, t.user_drops);
		agg_->note_submitted(t.events_submitted);
		return metrics_->render(agg_->summary(), t);
	}

private:
	static tdsbpf::OutputSummary output_summary(const tdsbpf::Outlet& out)
	{
		return {out.spec().text, out.dropped(), out.reconnects()};
	}

	// The process behind a local socket, by its cgroup (remembered: the
	// same services open many connections).
	std::shared_ptr<const tdsbpf::SocketOwner> owner_of(uint64_t cgroup_id)
	{
		if (auto it = owners_.find(cgroup_id); it != owners_.end())
			return it->second;
		std::shared_ptr<const tdsbpf::SocketOwner> who;
		if (auto o = resolver_->resolve(cgroup_id)) {
			auto s = std::make_shared<tdsbpf::SocketOwner>();
			s->cgroup_path = o->cgroup_path;
			s->systemd_unit = o->systemd_unit;
			s->container_id = o->container_id;
			s->container_runtime = o->container_runtime;
			s->pod_uid = o->pod_uid;
			who = std::move(s);
		}
		// an id not found now may be a cgroup made a moment ago: asked again next time
		if (who) {
			if (owners_.size() >= 4096)
				owners_.clear();
			owners_.emplace(cgroup_id, who);
		}
		return who;
	}

	const Options& opt_;
	std::unique_ptr<tdsbpf::OwnerResolver> resolver_;
	std::unordered_map<uint64_t, std::shared_ptr<const tdsbpf::SocketOwner>> owners_;
	std::unique_ptr<tdsbpf::PacketCapture> capture_; // before agg_, which hands it packets
	std::set<uint16_t> browser_ports_;
	std::function<void(uint16_t)> on_port_;
	std::unique_ptr<tdsbpf::Metrics> metrics_;    // before agg_, which counts into it
	std::set<uint16_t> followed_;		      // ports routed to, logged once each
	std::unique_ptr<tdsbpf::Outlet> out_;	      // --output
	std::unique_ptr<tdsbpf::Outlet> events_out_;  // --events-output
	std::unique_ptr<tdsbpf::Outlet> summary_out_; // --summary-output
	tdsbpf::Outlet* events_to_ = nullptr;	      // where raw events go, if anywhere
	std::unique_ptr<tdsbpf::Sink> sink_;
	std::unique_ptr<tdsbpf::Aggregator> agg_;
	uint64_t events_ = 0;
	uint64_t last_ts_ = 0;
};

// Opens the outputs before anything else; empty when one cannot be.
std::optional<Output> open_output(const Options& o)
{
	std::optional<Output> out;
	try {
		out.emplace(o);
	} catch (const std::exception& e) {
		spdlog::error("{}", e.what());
	}
	return out;
}

// An event for every TDS packet: asked for, or the events are shown.
bool per_packet_events(const Options& o)
{
	return o.every_request || o.events || !o.events_output.empty();
}

int run_read(const Options& o)
{
	std::optional<Output> opened = open_output(o);
	if (!opened)
		return 2;
	Output& out = *opened;
	tdsbpf::HostParserConfig pc;
	if (!o.ports.empty())
		pc.ports = o.ports;
	pc.max_flows = o.max_flows;
	pc.follow_redirects = o.follow_redirects;
	pc.follow_browser = o.follow_browser;
	pc.snaplen = o.write_pcap.empty() ? 0 : o.snaplen;
	pc.flush_interval_ns = static_cast<uint64_t>(o.flush_interval_s) * 1'000'000'000ULL;
	pc.count_work = !per_packet_events(o);
	pc.frame = &g_read_frame;
	tdsbpf::HostParser parser(pc, [&](const tdsbpf_event& ev, std::size_t len) { out.on_event(ev, len); });
	tdsbpf::ReadStats st;
	try {
		st = tdsbpf::read_capture(o.read, parser, &g_read_frame);
		parser.send_counted_work();
	} catch (const OutputFailed&) {
		out.report_write_error();
		return 1;
	} catch (const std::exception& e) {
		spdlog::error("{}", e.what());
		return 2;
	}
	out.finish(out.last_ts(), 0);
	if (out.report_write_error())
		return 1;
	spdlog::info("read {} frames ({}), {} duplicates skipped, {} not IP, {} cut short by the snap length",
		     st.frames, st.linktype_name, st.duplicates, st.unsupported, st.short_frames);
	out.summary(0, parser.counter(TDSBPF_CNT_EVENTS));
	if (st.truncated) {
		// what was read is written; the status says the file was not whole
		spdlog::error("{}", st.warning);
		return 2;
	}
	return 0;
}

// Says so while events are being lost, at most once every 10 seconds.
class DropLog {
public:
	void note(uint64_t drops, uint64_t now_ns)
	{
		if (drops <= logged_ || now_ns < next_ns_)
			return;
		double secs = last_ns_ ? static_cast<double>(now_ns - last_ns_) / 1e9 : 0;
		if (last_ns_)
			spdlog::warn(
				"the ring buffer was full: {} events lost in the last {:.0f} s ({} in all); the records of "
				"connections open then say so (tracer.events_lost); raise --ringbuf-mb",
				drops - logged_, secs, drops);
		else
			spdlog::warn(
				"the ring buffer is full: {} events lost so far; the records of connections open now say "
				"so (tracer.events_lost); raise --ringbuf-mb",
				drops);
		logged_ = drops;
		last_ns_ = now_ns;
		next_ns_ = now_ns + 10'000'000'000ULL;
	}

private:
	uint64_t logged_ = 0;
	uint64_t last_ns_ = 0;
	uint64_t next_ns_ = 0;
};

// Once attached, tdsbpf keeps only what attaching again needs, or (with
// --user) nothing at all.
bool drop_privileges(const Options& o, const tdsbpf::Session& session)
{
	try {
		if (o.user.empty()) {
			tdsbpf::drop_to_attach_only();
			spdlog::debug(
				"privileges: kept {} (to attach again to an interface that returns, and to remove tc "
				"filters at exit); every other capability dropped, no_new_privs set",
				tdsbpf::effective_capabilities());
			return true;
		}
		for (const auto& a : session.attachments()) {
			if (a.ingress == "tc clsact" || a.egress == "tc clsact") {
				spdlog::error(
					"--user cannot be used with tc filters on a clsact qdisc (on {}): they are "
					"removed at exit, which needs CAP_NET_ADMIN; use tcx links (Linux 6.6+)",
					a.iface);
				return false;
			}
		}
		tdsbpf::become_user(o.user);
		spdlog::debug("privileges: running as user {} with no capabilities ({}); an interface that is removed "
			      "cannot be attached again",
			      o.user, tdsbpf::effective_capabilities());
		return true;
	} catch (const std::exception& e) {
		spdlog::error("{}", e.what());
		return false;
	}
}

// Checked before attaching, so that a typo costs no start-up.
bool ready_dir_writable(const std::string& file)
{
	std::filesystem::path dir = std::filesystem::path(file).parent_path();
	if (dir.empty())
		dir = ".";
	if (access(dir.c_str(), W_OK) != 0) {
		spdlog::error("--ready-file {}: cannot write in {}: {}", file, dir.string(), std::strerror(errno));
		return false;
	}
	return true;
}

bool write_ready_file(std::ofstream& f, const std::string& file)
{
	f << "ready\n";
	f.close();
	if (!f) {
		spdlog::error("--ready-file {}: cannot write it: {}", file, std::strerror(errno));
		return false;
	}
	return true;
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
	lc.attach = o.attach == "xdp"  ? tdsbpf::AttachMode::xdp
		    : o.attach == "tc" ? tdsbpf::AttachMode::tc
				       : tdsbpf::AttachMode::automatic;
	lc.xdp_mode = o.xdp_mode == "native"	? tdsbpf::XdpMode::native
		      : o.xdp_mode == "generic" ? tdsbpf::XdpMode::generic
						: tdsbpf::XdpMode::automatic;
	lc.tc_api = o.tc_api == "tcx"	   ? tdsbpf::TcApi::tcx
		    : o.tc_api == "clsact" ? tdsbpf::TcApi::clsact
					   : tdsbpf::TcApi::automatic;
	lc.max_flows = o.max_flows;
	lc.follow_redirects = o.follow_redirects;
	lc.follow_browser = o.follow_browser;
	lc.capture_snaplen = o.write_pcap.empty() ? 0 : o.snaplen;
	lc.ringbuf_mb = o.ringbuf_mb;
	lc.flush_interval_ns = static_cast<uint64_t>(o.flush_interval_s) * 1'000'000'000ULL;
	lc.count_work = !per_packet_events(o);

	if (!o.ready_file.empty() && !ready_dir_writable(o.ready_file))
		return 2;
	if (!o.user.empty() && !tdsbpf::known_user(o.user)) {
		spdlog::error("--user {}: no such user", o.user);
		return 2;
	}
	std::optional<Output> opened = open_output(o);
	if (!opened)
		return 2;
	Output& out = *opened;
	// a metrics port in use is a bad command line, found before anything
	// is attached; the server starts once privileges are dropped, so that
	// none of its threads (which read from the network) holds them
	if (!o.metrics_addr.empty()) {
		std::string why;
		if (!tdsbpf::metrics_addr_free(o.metrics_addr, &why)) {
			spdlog::error("--metrics-addr {}: {}", o.metrics_addr, why);
			return 2;
		}
	}
	std::optional<tdsbpf::Session> session;
	try {
		session.emplace(lc);
	} catch (const std::exception& e) {
		spdlog::error("{}", e.what());
		return 2;
	}
	session->stop_when_no_interface(o.exit_when_iface_gone);
	out.on_port([&session](uint16_t port) { session->trace_port(port); });
	// opened while the privileges to create it are still there, written
	// once they are dropped (a script may look at them then)
	std::ofstream ready;
	if (!o.ready_file.empty()) {
		ready.open(o.ready_file);
		if (!ready) {
			spdlog::error("--ready-file {}: cannot write it: {}", o.ready_file, std::strerror(errno));
			return 2;
		}
	}
	if (!drop_privileges(o, *session))
		return 2;
	std::unique_ptr<tdsbpf::MetricsServer> metrics;
	if (!o.metrics_addr.empty()) {
		try {
			metrics = std::make_unique<tdsbpf::MetricsServer>(o.metrics_addr);
		} catch (const std::exception& e) {
			spdlog::error("{}", e.what());
			return 2;
		}
	}
	const double started_s = static_cast<double>(session->now_ns()) / 1e9;
	uint64_t metrics_at = 0;		 // when the page was last published
	uint64_t summary_at = session->now_ns(); // when the summary was last printed (--emit-interval)
	auto publish_metrics = [&](uint64_t now) {
		if (!metrics)
			return;
		tdsbpf::TracerCounters t;
		t.live = true;
		t.events_submitted = session->kernel_events();
		t.kernel_drops = session->kernel_drops();
		t.packets = session->counter(TDSBPF_CNT_PACKETS_SEEN);
		t.flows_created = session->counter(TDSBPF_CNT_FLOWS_CREATED);
		t.flow_insert_failures = session->counter(TDSBPF_CNT_FLOW_INSERT_FAIL);
		t.interfaces = static_cast<uint32_t>(session->interfaces_traced());
		t.start_time_s = started_s;
		t.version = TDSBPF_VERSION;
		metrics->publish(out.metrics_page(t));
		metrics_at = now;
	};
	// a scrape from the start finds the page
	publish_metrics(session->now_ns());
	if (!o.ready_file.empty() && !write_ready_file(ready, o.ready_file))
		return 2;
	// systemd's Type=notify (a no-op when not started by it)
	std::string traced;
	for (const auto& a : session->attachments())
		traced += (traced.empty() ? "" : ", ") + a.iface;
	sd_notifyf(0, "READY=1\nSTATUS=tracing %s", traced.c_str());

	const uint64_t start = session->now_ns();
	bool write_failed = false;
	DropLog drop_log;
	int rc = session->run(
		[&](const tdsbpf_event& ev, std::size_t len) {
			try {
				out.on_event(ev, len);
			} catch (const OutputFailed&) {
				write_failed = true;
			}
		},
		[&](uint64_t now) {
			uint64_t drops = session->kernel_drops();
			drop_log.note(drops, now);
			out.tick(now, drops);
			if (write_failed || out.write_error())
				return false;
			if (now >= metrics_at + 1'000'000'000ULL)
				publish_metrics(now);
			// on SIGUSR1, and every --emit-interval
			bool due = o.emit_interval_s && now >= summary_at + o.emit_interval_s * 1'000'000'000ULL;
			if (g_summary.exchange(false) || due) {
				summary_at = now;
				out.summary(session->kernel_drops(), session->kernel_events());
			}
			if (g_reopen.exchange(false))
				out.reopen();
			if (o.duration_s > 0 && now - start >= static_cast<uint64_t>(o.duration_s * 1e9))
				return false;
			return !g_stop.load();
		});
	sd_notify(0, "STOPPING=1");
	uint64_t drops = session->kernel_drops();
	session->detach();
	out.finish(session->now_ns(), drops);
	if (uint64_t lost = session->counter(TDSBPF_CNT_CAPTURE_DROPS))
		spdlog::warn("--write-pcap {}: {} packet copies found the ring buffer full and are not in the file "
			     "(raise --ringbuf-mb or lower --snaplen)",
			     o.write_pcap, lost);
	if (uint64_t lost = session->counter(TDSBPF_CNT_EXCERPT_DROPS))
		spdlog::warn("{} copies of login and error messages found the ring buffer full: some records lack "
			     "the names or error texts they carried (raise --ringbuf-mb)",
			     lost);
	out.summary(drops, session->kernel_events());
	if (drops)
		spdlog::warn("{} events were lost because the ring buffer was full (raise --ringbuf-mb)", drops);
	if (out.report_write_error())
		return 1;
	return rc;
}

// What the SPECs cannot mean together with the other options.
bool outputs_fit(const Options& o)
{
	tdsbpf::OutputSpec out = tdsbpf::parse_output_spec(o.output);
	if (out.syslog() && o.format == "text" && !o.events) {
		spdlog::error("--output {}: syslog takes the JSON records, not --format text", o.output);
		return false;
	}
	if (!o.events_output.empty()) {
		tdsbpf::OutputSpec ev = tdsbpf::parse_output_spec(o.events_output);
		bool same_file =
			out.kind == ev.kind && out.kind == tdsbpf::OutputSpec::Kind::file && out.path == ev.path;
		if (same_file) {
			spdlog::error("--events-output {}: the same file as --output; give each its own",
				      o.events_output);
			return false;
		}
	}
	return true;
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
	app.footer("Also: tdsbpf demo    a guided tour on a private lab network (root; no SQL Server needed)\n"
		   "Records: docs/connections.md; metrics: docs/metrics.md; man tdsbpf");
	auto* iface =
		app.add_option("-i,--iface", o.ifaces, "Interface to trace (repeatable; default: the default route's)");
	app.add_option("-p,--port", o.ports, "SQL Server TCP port (repeatable, up to 64; default 1433)")
		->check(CLI::Range(1, 65535));
	auto* attach =
		app.add_option("--attach", o.attach, "How to see ingress: xdp, tc, or auto (XDP, falling back to tc)")
			->check(CLI::IsMember({"auto", "xdp", "tc"}));
	auto* xdp_mode = app.add_option("--xdp-mode", o.xdp_mode, "XDP mode: native, generic, or auto")
				 ->check(CLI::IsMember({"auto", "native", "generic"}));
	auto* tc_api =
		app.add_option("--tc-api", o.tc_api,
			       "How tc programs attach: tcx (Linux 6.6+), clsact (a qdisc filter), or auto (tcx, "
			       "falling back to clsact)")
			->check(CLI::IsMember({"auto", "tcx", "clsact"}));
	auto* user =
		app.add_option("--user", o.user,
			       "Once attached, run on as this user with no capabilities (default: as root with only "
			       "CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN)");
	auto* gone =
		app.add_flag("--exit-when-iface-gone", o.exit_when_iface_gone,
			     "Stop (status 1) when no traced interface is left, instead of waiting for one to return");
	app.add_option("--max-flows", o.max_flows, "Flows tracked in the kernel (LRU)")->check(CLI::Range(1, 16777216));
	auto* ringbuf =
		app.add_option("--ringbuf-mb", o.ringbuf_mb, "Ring buffer size in MiB, a power of two (1 to 1024)")
			->check(CLI::Range(1, 1024))
			->check(CLI::Validator(
				[](std::string& v) -> std::string {
					uint32_t n = 0;
					return CLI::detail::lexical_cast(v, n) && n && (n & (n - 1)) == 0
						       ? ""
						       : "must be a power of two (1, 2, 4 ... 1024)";
				},
				"POWER OF TWO"));
	app.add_option("--flush-interval", o.flush_interval_s,
		       "Seconds between counter updates of long flows (0: only at close)");
	app.add_flag("--every-request", o.every_request,
		     "Send an event for every TDS packet, routine requests and replies included, instead of counting "
		     "them in the kernel (the records are the same; costs more; implied by --events and "
		     "--events-output)");
	auto* events = app.add_flag("--events", o.events,
				    "Print the raw events instead of records, one JSON object per line (debug view)");
	auto spec = CLI::Validator(
		[](std::string& v) -> std::string {
			try {
				tdsbpf::parse_output_spec(v);
				return "";
			} catch (const std::invalid_argument& e) {
				return e.what();
			}
		},
		"SPEC");
	app.add_option("-o,--output", o.output,
		       "Where records (or --events) go: - (standard output), file:PATH (reopened on SIGHUP), "
		       "unix:PATH, tcp:HOST:PORT (NDJSON), syslog:HOST:PORT (RFC 5424 over TCP), syslog+udp:HOST:PORT")
		->check(spec);
	app.add_option("--events-output", o.events_output,
		       "Also send the raw events (the --events lines) to this SPEC, records still going to --output")
		->check(spec)
		->excludes(events);
	app.add_option("--output-buffer-mb", o.output_buffer_mb,
		       "MiB a network output holds while its peer is slow or away; what does not fit is dropped and "
		       "counted")
		->check(CLI::Range(1, 1024));
	auto* read = app.add_option("-r,--read", o.read, "Read a pcap or pcapng file instead of tracing live");
	app.add_option("-f,--format", o.format, "Output: json (NDJSON) or text (timelines)")
		->check(CLI::IsMember({"json", "text"}));
	app.add_option("--emit-interval", o.emit_interval_s,
		       "Also print snapshots of long-lived connections, and the summary, every N seconds (0: never)");
	app.add_option("--summary-output", o.summary_output,
		       "Where the summary goes (at exit, on SIGUSR1, every --emit-interval): a SPEC as for --output "
		       "(default: standard error)")
		->check(spec)
		->excludes(events);
	app.add_option("--idle-timeout", o.idle_timeout_s, "End connections silent for N seconds (0: never)");
	app.add_option("--max-connections", o.max_connections, "Connections tracked at most (oldest idle evicted)")
		->check(CLI::Range(std::size_t{1}, std::size_t{1} << 26));
	app.add_flag("--redact", o.redact,
		     "Hide NTLM domain, user and workstation names, the LOGIN7's host, application and user names, "
		     "and error message texts");
	app.add_option("--slow-login-ms", o.slow_login_ms, "A login slower than this is diagnosed slow")
		->check(CLI::Range(1u, 3'600'000u));
	auto* duration =
		app.add_option("--duration", o.duration_s, "Stop after N seconds")
			->check(CLI::Validator(
				[](std::string& v) -> std::string {
					double d = 0;
					return CLI::detail::lexical_cast(v, d) && d > 0 && d <= 366.0 * 86400
						       ? ""
						       : "must be a number of seconds, more than 0 and at most a year";
				},
				"SECONDS"));
	auto* ready = app.add_option("--ready-file", o.ready_file, "Write this file once attached (for scripts)");
	app.add_flag("--follow-redirects", o.follow_redirects,
		     "Also trace the ports servers route their clients to (ENVCHANGE routing: Azure SQL's gateway, "
		     "read-only routing), from the moment the routing is read");
	app.add_flag("--follow-browser", o.follow_browser,
		     "Watch SQL Server Browser lookups (UDP 1434): report each (instance, port, time to answer) and "
		     "trace the TCP ports the answers name, before the client connects to them");
	auto* pcap =
		app.add_option("-w,--write-pcap", o.write_pcap,
			       "Also write the packets taken to this pcapng file, each with its connection id in "
			       "the packet comment (Wireshark: frame.comment contains \"tdsbpf.connection_id=7\")");
	app.add_option("--snaplen", o.snaplen, "Bytes of each packet --write-pcap keeps (headers first; 64 to 4096)")
		->check(CLI::Range(64u, static_cast<uint32_t>(TDSBPF_SNAPLEN_MAX)))
		->needs(pcap);
	app.add_option("--write-pcap-size", o.pcap_size_mb,
		       "Start a new --write-pcap file (FILE.1.pcapng, FILE.2.pcapng, ...) before one passes N MiB "
		       "(0: one file)")
		->check(CLI::Range(0u, 1u << 20))
		->needs(pcap);
	app.add_option("--write-pcap-files", o.pcap_files, "Keep only the newest N --write-pcap files (0: all)")
		->check(CLI::Range(0u, 1u << 20))
		->needs(pcap);
	app.add_flag("--write-pcap-diagnosed", o.pcap_diagnosed_only,
		     "Write only the packets of connections whose record has a warning or an error (each "
		     "connection's packets held until it ends, 1 MiB each and 64 MiB in all)")
		->needs(pcap);
	auto* cgroups =
		app.add_option("--cgroup-root", o.cgroup_root,
			       "Where the host's cgroup2 tree is mounted, to name the service, container or pod of "
			       "a local socket (in a container: the host's /sys/fs/cgroup mounted read-only)");
	auto* metrics = app.add_option("--metrics-addr", o.metrics_addr,
				       "Serve Prometheus metrics over HTTP at HOST:PORT/metrics (e.g. 127.0.0.1:9433, "
				       "[::1]:9433, or :9433 for every address)");
	app.add_flag("--metrics-owner-labels", o.metrics_owner_labels,
		     "Also count connections by the local process at each end (systemd unit, container or pod: "
		     "tdsbpf_owner_connections_total; many owners make many series)")
		->needs(metrics);
	app.add_flag("-v,--verbose", o.verbose, "More log lines");
	// what only tracing live means is refused with --read, not ignored
	for (CLI::Option* live :
	     {iface, attach, xdp_mode, tc_api, gone, user, ringbuf, duration, ready, metrics, cgroups})
		read->excludes(live);
	try {
		app.parse(argc, argv);
	} catch (const CLI::ParseError& e) {
		// --help and --version exit 0; every bad command line exits 2, as
		// the README says (not CLI11's own codes)
		return app.exit(e) == 0 ? 0 : 2;
	}
	if (o.verbose)
		spdlog::set_level(spdlog::level::debug);
	if (!outputs_fit(o))
		return 2;
	if (o.ports.size() > TDSBPF_MAX_PORTS) {
		spdlog::error("at most {} ports can be traced", TDSBPF_MAX_PORTS);
		return 2;
	}
	if (!o.write_pcap.empty() && o.events) {
		spdlog::error("--write-pcap labels packets with their connections, which --events does not follow; "
			      "leave one out");
		return 2;
	}
	if (!o.metrics_addr.empty()) {
		std::string why;
		if (o.events) {
			spdlog::error(
				"--metrics-addr counts connections, which --events does not follow; leave one out");
			return 2;
		}
		if (tdsbpf::metrics_listen_spec(o.metrics_addr, &why).empty()) {
			spdlog::error("--metrics-addr {}: {}", o.metrics_addr, why);
			return 2;
		}
	}
	install_signals();
	if (!o.read.empty())
		return run_read(o);
	return run_live(o);
}
