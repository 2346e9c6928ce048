// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// SSRP ([MC-SQLR] 2.2): requests are one type byte, plus a NUL-terminated
// instance name of at most 32 bytes for 0x04 and 0x0F; a reply is 0x05, a
// little-endian RESP_SIZE and RESP_DATA, except the DAC reply, whose
// RESP_SIZE (always 6) counts the whole 6-byte datagram.
#include "ssrp.h"

#include <algorithm>
#include <cstdio>

namespace tdsbpf {

namespace {

using Bytes = std::span<const std::uint8_t>;

constexpr std::size_t kMaxRequestName = 32;	// INSTANCENAME in 0x04 and 0x0F
constexpr std::size_t kMaxProtocolParams = 255; // 3.2.5.4: longer is not well formed
constexpr std::size_t kMaxOtherProtocols = 16;	// per instance; the spec knows 5 more
constexpr std::size_t kMaxShownInProblem = 32;

// Length of the valid UTF-8 sequence at s[i], or 0. Strings are in the
// machines' code page, which the wire does not name: UTF-8 survives as is,
// any other high byte becomes '?', so the record stays valid JSON.
std::size_t utf8_sequence(Bytes s, std::size_t i)
{
	const std::uint8_t c = s[i];
	std::size_t n;
	std::uint8_t lo = 0x80, hi = 0xBF; // the range of the second byte
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		if (c == 0xE0)
			lo = 0xA0; // overlong
		else if (c == 0xED)
			hi = 0x9F; // surrogates
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F; // above U+10FFFF
	} else {
		return 0;
	}
	if (s.size() - i < n || s[i + 1] < lo || s[i + 1] > hi)
		return 0;
	for (std::size_t k = 2; k < n; k++)
		if ((s[i + k] & 0xC0) != 0x80)
			return 0;
	return n;
}

// At most max bytes of s, every control byte and every byte that is not
// part of valid UTF-8 replaced by '?'.
std::string printable(Bytes s, std::size_t max = kSsrpMaxString)
{
	s = s.first(std::min(s.size(), max));
	std::string out;
	out.reserve(s.size());
	for (std::size_t i = 0; i < s.size();) {
		const std::uint8_t c = s[i];
		if (c >= 0x20 && c < 0x7F) {
			out.push_back(static_cast<char>(c));
			i++;
			continue;
		}
		std::size_t n = c >= 0x80 ? utf8_sequence(s, i) : 0;
		if (n == 0) {
			out.push_back('?');
			i++;
			continue;
		}
		out.append(reinterpret_cast<const char*>(s.data() + i), n);
		i += n;
	}
	return out;
}

bool equals_nocase(Bytes s, std::string_view word)
{
	if (s.size() != word.size())
		return false;
	for (std::size_t i = 0; i < s.size(); i++) {
		std::uint8_t a = s[i], b = static_cast<std::uint8_t>(word[i]);
		if (a >= 'A' && a <= 'Z')
			a = static_cast<std::uint8_t>(a + 32);
		if (b >= 'A' && b <= 'Z')
			b = static_cast<std::uint8_t>(b + 32);
		if (a != b)
			return false;
	}
	return true;
}

// Keeps the first thing found wrong: later complaints are mostly its echo.
void complain(SsrpMessage& m, std::string text)
{
	if (m.problem.empty())
		m.problem = std::move(text);
}

std::string number(std::size_t v)
{
	return std::to_string(v);
}

std::string hex_byte(std::uint8_t v)
{
	char buf[8];
	std::snprintf(buf, sizeof buf, "0x%02X", v);
	return buf;
}

// RESP_DATA as ';'-separated fields.
class Fields {
public:
	explicit Fields(Bytes data) : data_(data) {}

	struct Field {
		Bytes text;
		bool present = false;	 // false: nothing left
		bool terminated = false; // a ';' follows: the field is whole
	};

	bool at_end() const { return pos_ >= data_.size(); }
	std::size_t offset() const { return pos_; }
	Bytes slice(std::size_t from, std::size_t to) const { return data_.subspan(from, to - from); }

	Field next()
	{
		Field f;
		if (at_end())
			return f;
		f.present = true;
		const auto begin = data_.begin() + static_cast<std::ptrdiff_t>(pos_);
		const auto semi = std::find(begin, data_.end(), static_cast<std::uint8_t>(';'));
		const std::size_t len = static_cast<std::size_t>(semi - begin);
		f.text = data_.subspan(pos_, len);
		f.terminated = semi != data_.end();
		pos_ += len + (f.terminated ? 1 : 0);
		return f;
	}

private:
	Bytes data_;
	std::size_t pos_ = 0;
};

// The field names of an instance; a bit each, to see one listed twice.
enum Key : unsigned {
	key_server = 1u << 0,
	key_instance = 1u << 1,
	key_clustered = 1u << 2,
	key_version = 1u << 3,
	key_np = 1u << 4,
	key_tcp = 1u << 5,
	key_via = 1u << 6,
	key_rpc = 1u << 7,
	key_spx = 1u << 8,
	key_adsp = 1u << 9,
	key_bv = 1u << 10,
	key_other = 0,
};
constexpr unsigned kProtocolKeys = key_np | key_tcp | key_via | key_rpc | key_spx | key_adsp | key_bv;

struct KeyName {
	Key key;
	std::string_view name;
};

constexpr KeyName kKeys[] = {
	{key_server, "ServerName"},
	{key_instance, "InstanceName"},
	{key_clustered, "IsClustered"},
	{key_version, "Version"},
	{key_np, "np"},
	{key_tcp, "tcp"},
	{key_via, "via"},
	{key_rpc, "rpc"},
	{key_spx, "spx"},
	{key_adsp, "adsp"},
	{key_bv, "bv"},
};

Key key_of(Bytes name)
{
	for (const auto& k : kKeys)
		if (equals_nocase(name, k.name))
			return k.key;
	return key_other;
}

std::string_view key_name(Key key)
{
	for (const auto& k : kKeys)
		if (k.key == key)
			return k.name;
	return "?";
}

std::optional<std::uint16_t> parse_port(Bytes s)
{
	if (s.empty() || s.size() > 5)
		return std::nullopt;
	unsigned v = 0;
	for (std::uint8_t c : s) {
		if (c < '0' || c > '9')
			return std::nullopt;
		v = v * 10 + (c - '0');
	}
	if (v == 0 || v > 65535)
		return std::nullopt;
	return static_cast<std::uint16_t>(v);
}

bool is_version(Bytes s)
{
	if (s.empty() || s.size() > 16)
		return false;
	return std::all_of(s.begin(), s.end(), [](std::uint8_t c) { return (c >= '0' && c <= '9') || c == '.'; });
}

// One instance's fields up to its ";;" (or the end of the data). Returns
// false when the data ended before the ";;".
bool parse_instance(Fields& f, SsrpInstance& inst, unsigned& seen, SsrpMessage& m, const std::string& which)
{
	for (;;) {
		Fields::Field name = f.next();
		if (!name.present || !name.terminated)
			return false;
		if (name.text.empty())
			return true; // the second ';' of ";;"
		const Key key = key_of(name.text);
		if (key != key_other && (seen & key))
			complain(m, which + " lists " + std::string(key_name(key)) + " twice");
		seen |= key;
		// Banyan VINES names five fields ([MC-SQLR] BV_INFO); the rest one.
		const std::size_t count = key == key_bv ? 5 : 1;
		Bytes first;
		std::size_t begin = f.offset(), end = begin;
		for (std::size_t i = 0; i < count; i++) {
			Fields::Field v = f.next();
			if (!v.present || !v.terminated)
				return false; // a value cut by the end is not trusted
			if (i == 0)
				first = v.text;
			end = f.offset() - 1;
		}
		if (end - begin > kMaxProtocolParams && (key & kProtocolKeys))
			complain(m, which + ": " + std::string(key_name(key)) + " parameters longer than 255 bytes");
		switch (key) {
		case key_server:
			inst.server_name = printable(first);
			if (first.size() > 255)
				complain(m, which + ": ServerName longer than 255 bytes");
			break;
		case key_instance:
			inst.instance_name = printable(first);
			if (first.size() > 255)
				complain(m, which + ": InstanceName longer than 255 bytes");
			break;
		case key_clustered:
			if (equals_nocase(first, "Yes"))
				inst.clustered = true;
			else if (equals_nocase(first, "No"))
				inst.clustered = false;
			else
				complain(m, which + ": IsClustered '" + printable(first, kMaxShownInProblem) +
						    "' is neither Yes nor No");
			break;
		case key_version:
			inst.version = printable(first);
			if (!is_version(first))
				complain(m, which + ": Version '" + printable(first, kMaxShownInProblem) +
						    "' is not 1 to 16 digits and dots");
			break;
		case key_np: inst.pipe = printable(first); break;
		case key_tcp:
			inst.tcp_port = parse_port(first);
			if (!inst.tcp_port)
				complain(m, "port " + printable(first, kMaxShownInProblem) + " is not a port");
			break;
		default:
			if (inst.other_protocols.size() < kMaxOtherProtocols) {
				std::string entry = printable(name.text, kMaxShownInProblem) + "=";
				entry += printable(f.slice(begin, end), kSsrpMaxString - entry.size());
				inst.other_protocols.push_back(std::move(entry));
			}
			break;
		}
	}
}

void parse_instances(Bytes data, bool complete, SsrpMessage& m)
{
	Fields f(data);
	std::size_t index = 0;
	while (!f.at_end() && m.instances.size() < kSsrpMaxInstances) {
		const std::size_t start = f.offset();
		const std::string which = "instance " + number(++index);
		SsrpInstance inst;
		unsigned seen = 0;
		const bool ended = parse_instance(f, inst, seen, m, which);
		if (seen == 0 && inst.other_protocols.empty()) {
			if (ended) {
				complain(m, "an empty instance (;;) at byte " + number(start + 3));
				index--;
				continue;
			}
			// Bytes without a whole field: nothing to keep.
			if (complete)
				complain(m, "RESP_DATA ends in a field without its ';' at byte " + number(start + 3));
			break;
		}
		if (!ended && complete)
			complain(m, which + " does not end with ;;");
		if (ended || complete) {
			for (Key k : {key_server, key_instance, key_clustered, key_version})
				if (!(seen & k))
					complain(m, which + " has no " + std::string(key_name(k)));
		}
		m.instances.push_back(std::move(inst));
		if (!ended)
			break;
	}
	if (m.instances.empty() && complete && !data.empty())
		complain(m, "no instance in RESP_DATA");
}

void parse_reply(Bytes b, SsrpMessage& m)
{
	m.kind = SsrpKind::svr_resp;
	if (b.size() < 3) {
		m.truncated = true;
		complain(m, "SVR_RESP ends inside its 3-byte header");
		return;
	}
	const std::size_t size = b[1] | (b[2] << 8);
	// A DAC reply is the only 6-byte datagram, and its fourth byte (the
	// protocol version 0x01) cannot start a "ServerName;..." string.
	if (size == 6 && (b.size() <= 6 || b[3] == 0x01)) {
		m.kind = SsrpKind::svr_resp_dac;
		if (b.size() < 6) {
			m.truncated = true;
			complain(m, "SVR_RESP (DAC) of " + number(b.size()) + " bytes, not 6");
			return;
		}
		if (b[3] != 0x01)
			complain(m, "DAC PROTOCOLVERSION " + number(b[3]) + ", not 1");
		const std::uint16_t port = static_cast<std::uint16_t>(b[4] | (b[5] << 8));
		if (port == 0)
			complain(m, "port 0 is not a port");
		else
			m.dac_port = port;
		if (b.size() > 6)
			complain(m, number(b.size() - 6) + " bytes after the 6-byte DAC reply");
		return;
	}
	const std::size_t avail = b.size() - 3;
	if (avail != size) {
		complain(m, "RESP_SIZE " + number(size) + " but " + number(avail) + " bytes");
		if (avail < size)
			m.truncated = true;
	}
	if (size == 0) {
		complain(m, "RESP_DATA is empty");
		return;
	}
	parse_instances(b.subspan(3, std::min(avail, size)), avail >= size, m);
}

// The instance name of 0x04 and 0x0F: NUL-terminated, at most 32 bytes.
void parse_requested_name(Bytes rest, SsrpMessage& m)
{
	const auto nul = std::find(rest.begin(), rest.end(), std::uint8_t{0});
	const std::size_t len = static_cast<std::size_t>(nul - rest.begin());
	m.requested_instance = printable(rest.first(len));
	if (nul == rest.end()) {
		if (len > kMaxRequestName) {
			complain(m, "instance name of " + number(len) + " bytes without a NUL (at most 32)");
		} else {
			m.truncated = true;
			complain(m, "instance name without its NUL terminator");
		}
		return;
	}
	if (len == 0)
		complain(m, "empty instance name");
	else if (len > kMaxRequestName)
		complain(m, "instance name of " + number(len) + " bytes (at most 32)");
	if (rest.size() > len + 1)
		complain(m, number(rest.size() - len - 1) + " bytes after the instance name");
}

} // namespace

SsrpMessage parse_ssrp(std::span<const std::uint8_t> bytes, bool from_server)
{
	SsrpMessage m;
	if (bytes.empty()) {
		m.truncated = true;
		complain(m, "empty datagram");
		return m;
	}
	const std::uint8_t type = bytes[0];
	const bool reply = type == 0x05;
	switch (type) {
	case 0x02: m.kind = SsrpKind::clnt_bcast_ex; break;
	case 0x03: m.kind = SsrpKind::clnt_ucast_ex; break;
	case 0x04: m.kind = SsrpKind::clnt_ucast_inst; break;
	case 0x05: m.kind = SsrpKind::svr_resp; break;
	case 0x0F: m.kind = SsrpKind::clnt_ucast_dac; break;
	default: complain(m, "type " + hex_byte(type) + " is not an SSRP message"); return m;
	}
	if (reply && !from_server)
		complain(m, "a server reply (0x05) not from port 1434");
	else if (!reply && from_server)
		complain(m, "a client request (" + hex_byte(type) + ") from port 1434");

	switch (m.kind) {
	case SsrpKind::clnt_bcast_ex:
	case SsrpKind::clnt_ucast_ex:
		if (bytes.size() > 1)
			complain(m, number(bytes.size() - 1) + " bytes after the one-byte request");
		break;
	case SsrpKind::clnt_ucast_inst: parse_requested_name(bytes.subspan(1), m); break;
	case SsrpKind::clnt_ucast_dac:
		if (bytes.size() < 2) {
			m.truncated = true;
			complain(m, "CLNT_UCAST_DAC ends before its PROTOCOLVERSION");
			break;
		}
		if (bytes[1] != 0x01)
			complain(m, "DAC PROTOCOLVERSION " + number(bytes[1]) + ", not 1");
		parse_requested_name(bytes.subspan(2), m);
		break;
	case SsrpKind::svr_resp: parse_reply(bytes, m); break;
	default: break;
	}
	return m;
}

std::string_view ssrp_kind_name(SsrpKind kind)
{
	switch (kind) {
	case SsrpKind::unknown: return "unknown";
	case SsrpKind::clnt_bcast_ex: return "clnt_bcast_ex";
	case SsrpKind::clnt_ucast_ex: return "clnt_ucast_ex";
	case SsrpKind::clnt_ucast_inst: return "clnt_ucast_inst";
	case SsrpKind::svr_resp: return "svr_resp";
	case SsrpKind::clnt_ucast_dac: return "clnt_ucast_dac";
	case SsrpKind::svr_resp_dac: return "svr_resp_dac";
	}
	return "unknown";
}

} // namespace tdsbpf
