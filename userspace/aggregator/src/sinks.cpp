// NDJSON and text output.
#include <cstdio>

#include "aggregator/aggregator.h"
#include "aggregator/sink.h"

namespace tdsbpf {

using nlohmann::json;

void NdjsonSink::on_connection(const json& record, bool final)
{
	(void)final;
	std::string line = record.dump(-1, ' ', false, json::error_handler_t::replace);
	line += '\n';
	if (file_) {
		fwrite(line.data(), 1, line.size(), file_);
		fflush(file_);
	} else if (stream_) {
		*stream_ << line;
		stream_->flush();
	}
}

std::string format_line(const TimelineLine& l)
{
	char head[96];
	snprintf(head, sizeof(head), "#%-5llu %12.7f  ", static_cast<unsigned long long>(l.connection_id), l.offset_s);
	std::string s = head;
	s += l.source;
	s += " > ";
	s += l.destination;
	s += "  ";
	s += l.description;
	s += '\n';
	return s;
}

namespace {

std::string str(const json& j, const char* key)
{
	auto it = j.find(key);
	if (it == j.end() || it->is_null())
		return "-";
	if (it->is_string())
		return it->get<std::string>();
	return it->dump();
}

} // namespace

std::string format_connection_text(const json& r, bool final)
{
	std::string s;
	char buf[256];
	snprintf(buf, sizeof(buf), "#%-5s %s %s:%s -> %s:%s (%s)\n", str(r, "tdsbpf.connection_id").c_str(),
		 final ? "== connection" : "== snapshot", str(r, "client.address").c_str(), str(r, "client.port").c_str(),
		 str(r, "server.address").c_str(), str(r, "server.port").c_str(), str(r, "network.type").c_str());
	s += buf;
	s += "   time      " + str(r, "start_time") + " .. " + str(r, "end_time") + " (" + str(r, "duration_ms") + " ms)" +
	     (r.value("midstream", false) ? ", seen mid-stream" : "") + "\n";
	s += "   phases (name@start+duration, ms)\n            ";
	for (const auto& p : r["phases"]) {
		snprintf(buf, sizeof(buf), " %s@%.3f+%.3f", p["name"].get<std::string>().c_str(),
			 p["start_offset_ms"].get<double>(), p["duration_ms"].get<double>());
		s += buf;
	}
	s += "\n";
	const json& login = r["login"];
	s += "   login     " + str(login, "outcome") + ", " + str(login, "duration_ms") + " ms (threshold " +
	     str(login, "threshold_ms") + " ms)";
	if (login.contains("error") && !login["error"].is_null())
		s += ", error " + str(login["error"], "number") + " state " + str(login["error"], "state") + " class " +
		     str(login["error"], "class");
	s += "\n";
	const json& a = r["authentication"];
	s += "   auth      " + str(a, "method") + (a.value("inferred", false) ? " (inferred)" : "");
	if (!a["ntlm"].is_null())
		s += ", " + str(a["ntlm"], "domain") + "\\" + str(a["ntlm"], "user") + " from " + str(a["ntlm"], "workstation");
	s += "\n";
	const json& n = r["negotiated"];
	s += "   versions  driver " + str(n, "client_driver_version") + ", server " + str(n, "server_version") + ", TDS " +
	     str(r, "network.protocol.version") + ", encryption " + str(n, "encryption") + ", TLS " + str(n, "tls_version") +
	     ", MARS requested " + str(n, "mars_requested") + " used " + str(n, "mars_used") + ", packet size " +
	     str(n, "packet_size") + "\n";
	const json& w = r["work"];
	s += "   work      requests " + str(w, "requests") +
	     (w.value("encrypted_requests", 0) ? " (" + str(w, "encrypted_requests") + " encrypted)" : std::string()) +
	     ", batches " + str(w, "sql_batches") + ", rpcs " + str(w, "rpcs") + ", attentions " +
	     str(w, "attentions") + ", bulk " + str(w, "bulk_loads") + ", tm " + str(w, "transaction_manager") +
	     ", responses " + str(w, "responses") + ", resetconnection " + str(w, "reset_connection") + ", rows " +
	     str(w, "rows");
	if (!w["latency_ms"].is_null()) {
		const json& l = w["latency_ms"];
		s += ", latency ms min " + str(l, "min") + " p50 " + str(l, "p50") + " p99 " + str(l, "p99") + " max " + str(l, "max");
	}
	s += "\n";
	for (const auto& m : r["mars"]["sessions"])
		s += "   mars      sid " + str(m, "sid") + " open " + str(m, "open_time") + " close " + str(m, "close_time") +
		     " data " + str(m["data_packets"], "client_to_server") + "/" + str(m["data_packets"], "server_to_client") +
		     " end " + str(m, "end") + "\n";
	if (!r["close"].is_null()) {
		const json& c = r["close"];
		s += "   close     " + str(c, "kind");
		if (!c["initiator"].is_null())
			s += " by " + str(c, "initiator");
		if (!c["phase"].is_null())
			s += " in phase " + str(c, "phase");
		s += ", keep-alives " + str(r["tcp"]["keepalives"], "client_to_server") + "/" +
		     str(r["tcp"]["keepalives"], "server_to_client") + ", retransmissions " +
		     str(r["tcp"]["retransmissions"], "client_to_server") + "/" +
		     str(r["tcp"]["retransmissions"], "server_to_client") + "\n";
	}
	for (const auto& d : r["diagnoses"])
		s += "   [" + str(d, "severity") + "] " + str(d, "code") + ": " + str(d, "message") + "\n";
	return s;
}

std::unique_ptr<Sink> make_sink(OutputFormat format, std::FILE* out)
{
	if (format == OutputFormat::text)
		return std::make_unique<TextSink>(out);
	return std::make_unique<NdjsonSink>(out);
}

void TextSink::write(const std::string& s)
{
	if (file_) {
		fwrite(s.data(), 1, s.size(), file_);
		fflush(file_);
	} else if (stream_) {
		*stream_ << s;
		stream_->flush();
	}
}

void TextSink::on_line(const TimelineLine& line)
{
	write(format_line(line));
}

void TextSink::on_connection(const json& record, bool final)
{
	write(format_connection_text(record, final));
}

} // namespace tdsbpf
