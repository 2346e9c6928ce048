// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// NDJSON and text output.
#include <cerrno>
#include <cstdio>

#include "aggregator/aggregator.h"
#include "aggregator/sink.h"

namespace tdsbpf {

namespace {
constexpr size_t kFlushAt = 64 * 1024;
}

void Writer::write(std::string_view s)
{
	buf_.append(s);
	if (buf_.size() >= kFlushAt)
		flush();
}

void Writer::flush()
{
	if (buf_.empty())
		return;
	if (error_ == 0) {
		errno = 0;
		if (file_) {
			if (fwrite(buf_.data(), 1, buf_.size(), file_) != buf_.size() || fflush(file_) != 0)
				error_ = errno ? errno : EIO;
		} else if (stream_) {
			stream_->write(buf_.data(), static_cast<std::streamsize>(buf_.size()));
			stream_->flush();
			if (!*stream_)
				error_ = errno ? errno : EIO;
		}
	}
	buf_.clear();
}

void NdjsonSink::on_connection(const ConnectionRecord& record)
{
	out_.write(record.json());
	out_.write("\n");
}

std::string format_line(const TimelineLine& l)
{
	char head[96];
	if (l.frame)
		snprintf(head, sizeof(head), "#%-5llu f%-7llu %12.7f  ",
			 static_cast<unsigned long long>(l.connection_id), static_cast<unsigned long long>(l.frame),
			 l.offset_s);
	else
		snprintf(head, sizeof(head), "#%-5llu %12.7f  ", static_cast<unsigned long long>(l.connection_id),
			 l.offset_s);
	std::string s = head;
	s += l.source;
	s += " > ";
	s += l.destination;
	s += "  ";
	s += l.description;
	s += '\n';
	return s;
}

void TextSink::on_line(const TimelineLine& line)
{
	out_.write(format_line(line));
}

void TextSink::on_connection(const ConnectionRecord& record)
{
	out_.write(record.text());
}

std::unique_ptr<Sink> make_sink(OutputFormat format, std::FILE* out)
{
	if (format == OutputFormat::text)
		return std::make_unique<TextSink>(out);
	return std::make_unique<NdjsonSink>(out);
}

} // namespace tdsbpf
