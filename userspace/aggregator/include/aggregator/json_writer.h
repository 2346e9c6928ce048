// A streaming JSON writer: appends to a std::string, no document tree, no
// allocation once the string has grown to a record's size. Strings are
// escaped per RFC 8259 and made valid UTF-8 (each byte of an invalid
// sequence becomes U+FFFD), so text from the wire is safe in any record.
#ifndef TDSBPF_AGGREGATOR_JSON_WRITER_H
#define TDSBPF_AGGREGATOR_JSON_WRITER_H

#include <cstdint>
#include <string>
#include <string_view>

namespace tdsbpf {

// Nanoseconds written as milliseconds with microsecond precision
// ("3.175"), without a floating-point conversion.
struct Millis {
	uint64_t ns;
};

class JsonWriter {
public:
	explicit JsonWriter(std::string& out) : out_(out) {}

	JsonWriter& begin_object() { return open('{'); }
	JsonWriter& end_object() { return close('}'); }
	JsonWriter& begin_array() { return open('['); }
	JsonWriter& end_array() { return close(']'); }
	// The key of the next value (an object member). Keys are the program's
	// own names: written as they are, not escaped.
	JsonWriter& key(std::string_view k);

	JsonWriter& value(std::string_view s);
	JsonWriter& value(const char* s) { return value(std::string_view(s)); }
	JsonWriter& value(bool b);
	JsonWriter& value(uint64_t v);
	JsonWriter& value(uint32_t v) { return value(static_cast<uint64_t>(v)); }
	JsonWriter& value(uint16_t v) { return value(static_cast<uint64_t>(v)); }
	JsonWriter& value(uint8_t v) { return value(static_cast<uint64_t>(v)); }
	JsonWriter& value(int64_t v);
	JsonWriter& value(int v) { return value(static_cast<int64_t>(v)); }
	// Shortest decimal form that reads back as the same double (no exponent).
	JsonWriter& value(double v);
	JsonWriter& value(Millis v);
	JsonWriter& null();
	// A value already in JSON form (a number or a literal), written as is.
	JsonWriter& raw(std::string_view json);

	template <typename T>
	JsonWriter& member(std::string_view k, const T& v)
	{
		key(k);
		return value(v);
	}
	JsonWriter& null_member(std::string_view k)
	{
		key(k);
		return null();
	}

	// Appends s as a JSON string's contents (escaped, valid UTF-8).
	static void escape(std::string& out, std::string_view s);

private:
	JsonWriter& open(char c);
	JsonWriter& close(char c);
	void separate()
	{
		if (comma_)
			out_ += ',';
	}

	std::string& out_;
	bool comma_ = false; // a value was written at this level: the next one needs a comma
};

} // namespace tdsbpf

#endif
