// Where the aggregator's output goes: NDJSON records or a text timeline.
#ifndef TDSBPF_AGGREGATOR_SINK_H
#define TDSBPF_AGGREGATOR_SINK_H

#include <cstdint>
#include <cstdio>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

namespace tdsbpf {

// One line of a connection's timeline, as the seeds' tables show it.
struct TimelineLine {
	uint64_t connection_id = 0;
	std::string connection;  // "10.10.10.10:60123 -> 10.10.10.120:1433"
	uint64_t ts_ns = 0;
	double offset_s = 0;     // since the connection's first event
	bool from_client = true;
	std::string source;      // "10.10.10.10:60123"
	std::string destination;
	std::string description; // "TDS:Prelogin ...", "SMP:SYN, Sid = 0", "TCP:Flags=...A...F"
};

class Sink {
public:
	virtual ~Sink() = default;
	// Whether on_line is wanted (building lines costs a little).
	virtual bool wants_lines() const { return false; }
	// A timeline line, live, as the event is taken.
	virtual void on_line(const TimelineLine&) {}
	// A connection record (docs/connections.md): final when the connection
	// ended, else a snapshot (--emit-interval).
	virtual void on_connection(const nlohmann::json& record, bool final) = 0;
};

// One JSON object per line.
class NdjsonSink : public Sink {
public:
	explicit NdjsonSink(std::FILE* out) : file_(out) {}
	explicit NdjsonSink(std::ostream& out) : stream_(&out) {}
	void on_connection(const nlohmann::json& record, bool final) override;

private:
	std::FILE* file_ = nullptr;
	std::ostream* stream_ = nullptr;
};

// A timeline per connection: a line per event as it comes, then the
// summary and the diagnoses when the connection ends.
class TextSink : public Sink {
public:
	explicit TextSink(std::FILE* out) : file_(out) {}
	explicit TextSink(std::ostream& out) : stream_(&out) {}
	bool wants_lines() const override { return true; }
	void on_line(const TimelineLine& line) override;
	void on_connection(const nlohmann::json& record, bool final) override;

private:
	void write(const std::string& s);
	std::FILE* file_ = nullptr;
	std::ostream* stream_ = nullptr;
};

// Text forms used by TextSink, public for tests and other front ends.
std::string format_line(const TimelineLine& line);
std::string format_connection_text(const nlohmann::json& record, bool final);

} // namespace tdsbpf

#endif
