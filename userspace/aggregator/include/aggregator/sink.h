// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Where the aggregator's output goes: NDJSON records or a text timeline.
#ifndef TDSBPF_AGGREGATOR_SINK_H
#define TDSBPF_AGGREGATOR_SINK_H

#include <cstdint>
#include <cstdio>
#include <ostream>
#include <string>
#include <string_view>

namespace tdsbpf {

// One line of a connection's timeline, as the seeds' tables show it.
struct TimelineLine {
	uint64_t connection_id = 0;
	uint64_t frame = 0;	// the capture's frame number (--read), 0 live
	std::string connection; // "10.10.10.10:60123 -> 10.10.10.120:1433"
	uint64_t ts_ns = 0;
	double offset_s = 0; // since the connection's first event
	bool from_client = true;
	std::string source; // "10.10.10.10:60123"
	std::string destination;
	std::string description; // "TDS:Prelogin ...", "SMP:SYN, Sid = 0", "TCP:Flags=...A...F"
};

// A connection's record as a sink is handed it. Each form is rendered from
// the connection model when first asked for, so a sink pays only for the
// form it writes. Valid only during the on_connection call.
class ConnectionRecord {
public:
	virtual ~ConnectionRecord() = default;
	virtual uint64_t connection_id() const = 0;
	// A connection that ended (else a snapshot, --emit-interval).
	virtual bool final() const = 0;
	// The JSON object (docs/connections.md), one line, no newline.
	virtual std::string_view json() const = 0;
	// The text view's block: the connection line, phases, login, work,
	// close and diagnoses, each line ending in a newline.
	virtual std::string_view text() const = 0;
};

class Sink {
public:
	virtual ~Sink() = default;
	// Whether on_line is wanted (building lines costs a little).
	virtual bool wants_lines() const { return false; }
	// A timeline line, live, as the event is taken.
	virtual void on_line(const TimelineLine&) {}
	virtual void on_connection(const ConnectionRecord& record) = 0;
	// Push out what is buffered (called after each batch of events and at
	// the end).
	virtual void flush() {}
	// The errno of the first write that failed (0: none). Output after a
	// failure is dropped; the caller reports it and ends the run.
	virtual int error() const { return 0; }
};

// Buffered output to a FILE or a stream: records are written whole, and
// the buffer goes out on flush() or when it is large.
class Writer {
public:
	explicit Writer(std::FILE* out) : file_(out) {}
	explicit Writer(std::ostream& out) : stream_(&out) {}
	~Writer() { flush(); }
	void write(std::string_view s);
	void flush();
	int error() const { return error_; }

private:
	std::FILE* file_ = nullptr;
	std::ostream* stream_ = nullptr;
	std::string buf_;
	int error_ = 0;
};

// One JSON object per line.
class NdjsonSink : public Sink {
public:
	explicit NdjsonSink(std::FILE* out) : out_(out) {}
	explicit NdjsonSink(std::ostream& out) : out_(out) {}
	void on_connection(const ConnectionRecord& record) override;
	void flush() override { out_.flush(); }
	int error() const override { return out_.error(); }

private:
	Writer out_;
};

// A timeline per connection: a line per event as it comes, then the
// summary and the diagnoses when the connection ends.
class TextSink : public Sink {
public:
	explicit TextSink(std::FILE* out) : out_(out) {}
	explicit TextSink(std::ostream& out) : out_(out) {}
	bool wants_lines() const override { return true; }
	void on_line(const TimelineLine& line) override;
	void on_connection(const ConnectionRecord& record) override;
	void flush() override { out_.flush(); }
	int error() const override { return out_.error(); }

private:
	Writer out_;
};

// A timeline line as the text view prints it.
std::string format_line(const TimelineLine& line);

} // namespace tdsbpf

#endif
