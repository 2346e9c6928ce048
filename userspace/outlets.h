// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Where records and raw events go (--output, --events-output): standard
// output, a file (reopened on SIGHUP, for logrotate), a Unix or TCP stream
// of NDJSON lines, or syslog (RFC 5424) over TCP (RFC 6587 octet counting)
// or UDP.
//
// Standard output and files are written as before: a failed write is an
// error that ends the run. A network output never holds the tracer up: its
// socket is non-blocking, what it cannot send yet waits in a bounded
// buffer, and when the peer is down or goes away it connects again with an
// exponential back-off (100 ms doubling to 10 s). A message that does not
// fit in the buffer is dropped whole and counted; the count is logged (at
// most every 10 s) and is in the exit summary. Messages are never cut: a
// message is one record (or event, or line of the text view).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "aggregator/aggregator.h"
#include "aggregator/sink.h"

namespace tdsbpf {

struct OutputSpec {
	enum class Kind { standard_output, file, unix_stream, tcp, syslog_tcp, syslog_udp };
	Kind kind = Kind::standard_output;
	std::string path; // file, unix
	std::string host; // tcp, syslog; an IPv6 address without its brackets
	std::string port;
	std::string text; // the SPEC as given

	bool network() const { return kind != Kind::standard_output && kind != Kind::file; }
	bool syslog() const { return kind == Kind::syslog_tcp || kind == Kind::syslog_udp; }
};

// Parses "-", "stdout", "file:PATH", "unix:PATH", "tcp:HOST:PORT",
// "syslog:HOST:PORT" or "syslog+udp:HOST:PORT" (an IPv6 HOST in brackets).
// Throws std::invalid_argument saying what is wrong.
OutputSpec parse_output_spec(const std::string& spec);

// ---- syslog ------------------------------------------------------------------

// RFC 5424 severities used, and the facility (local0).
constexpr int kSyslogFacility = 16;
constexpr int kSyslogError = 3;
constexpr int kSyslogWarning = 4;
constexpr int kSyslogInfo = 6;

struct SyslogHeader {
	int facility = kSyslogFacility;
	int severity = kSyslogInfo;
	uint64_t time_ns = 0; // Unix epoch
	std::string hostname; // as gethostname gives it; cleaned up here
	std::string app_name = "tdsbpf";
	long procid = 0;
	std::string msgid; // connection, snapshot, event
};

// "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG": one RFC 5424
// message, no structured data, the timestamp in UTC with microseconds.
std::string format_syslog(const SyslogHeader& h, std::string_view msg);

// RFC 6587 octet counting: "LENGTH SP MESSAGE".
std::string octet_counted(std::string_view message);

// The syslog severity of a connection record: error or warning when one
// of its diagnoses (diagnoses[].severity) is, else info.
int record_severity(std::string_view record_json);

// ---- outlets ---------------------------------------------------------------

enum class RecordKind { connection, snapshot, event };

struct OutletOptions {
	std::string option = "--output"; // for messages: "--output tcp:...: ..."
	std::string what = "records";	 // what it carries: records, events
	std::size_t buffer_bytes = 16u << 20;
	// Reading a capture: when the buffer is full and the peer is there,
	// wait for room (up to 10 s without progress) rather than drop.
	bool patient = false;
};

// One destination. Messages go out whole or not at all.
class Outlet {
public:
	// Opens a file, or resolves the peer and starts connecting. Throws
	// std::runtime_error (a file that cannot be opened, a host name that
	// cannot be resolved), naming the option.
	static std::unique_ptr<Outlet> open(const OutputSpec& spec, const OutletOptions& opt);
	virtual ~Outlet() = default;

	// A record or an event (a JSON object without its newline): an NDJSON
	// line, or a syslog message.
	void put_record(std::string_view json, RecordKind kind);
	// The text view, as is.
	void put_text(std::string_view text) { put(std::string(text)); }

	// Writes out what is buffered (files), or sends what can be sent now and
	// connects again when it is time (network); never waits.
	virtual void flush() = 0;
	// SIGHUP: a file is opened again by its name; true if this is a file.
	virtual bool reopen() { return false; }
	// At exit: what is buffered gets until deadline to go out; what is left
	// then is counted as dropped.
	virtual void close(std::chrono::steady_clock::time_point deadline) = 0;
	// The errno of the first failed write to standard output or a file
	// (0: none); the caller ends the run. Network outputs have none.
	virtual int error() const { return 0; }
	virtual uint64_t dropped() const { return 0; }
	virtual uint64_t reconnects() const { return 0; }

	const OutputSpec& spec() const { return spec_; }
	const OutletOptions& options() const { return opt_; }
	// "standard output", "/var/log/tdsbpf.ndjson", "tcp:10.0.0.5:5170"
	std::string where() const;

protected:
	Outlet(const OutputSpec& spec, const OutletOptions& opt);
	virtual void put(std::string&& message) = 0;

	OutputSpec spec_;
	OutletOptions opt_;
	std::string hostname_;
	long pid_ = 0;
};

// The aggregator's sink into an outlet: NDJSON records, the text view, or
// syslog messages.
class OutletSink : public Sink {
public:
	OutletSink(Outlet& out, OutputFormat format) : out_(out), text_(format == OutputFormat::text) {}
	bool wants_lines() const override { return text_; }
	void on_line(const TimelineLine& line) override { out_.put_text(format_line(line)); }
	void on_connection(const ConnectionRecord& record) override;
	void flush() override { out_.flush(); }
	int error() const override { return out_.error(); }

private:
	Outlet& out_;
	bool text_;
};

} // namespace tdsbpf
