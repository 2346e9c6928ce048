// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "tds_tokens.h"

#include <algorithm>
#include <cstdio>

namespace tdslab {

std::uint32_t negotiate_tds_version(std::uint32_t requested)
{
	using namespace tds_version;
	if (requested < v7_0 || requested > v7_4)
		return v7_4;
	for (std::uint32_t known : {v7_4, v7_3b, v7_3a, v7_2, v7_1_rev1, v7_1}) {
		if (requested >= known)
			return known;
	}
	return v7_0;
}

std::uint32_t loginack_tds_version(std::uint32_t negotiated)
{
	if (negotiated == tds_version::v7_0)
		return 0x07000000;
	if (negotiated == tds_version::v7_1)
		return 0x07010000;
	return negotiated;
}

std::string tds_version_name(std::uint32_t version)
{
	switch (version) {
	case tds_version::v7_0: return "7.0";
	case tds_version::v7_1: return "7.1";
	case tds_version::v7_1_rev1: return "7.1 Rev 1";
	case tds_version::v7_2: return "7.2";
	case tds_version::v7_3a: return "7.3A";
	case tds_version::v7_3b: return "7.3B";
	case tds_version::v7_4: return "7.4";
	default: {
		char text[16];
		std::snprintf(text, sizeof(text), "0x%08x", version);
		return text;
	}
	}
}

void TokenWriter::envchange(std::uint8_t type, std::string_view new_value, std::string_view old_value)
{
	out_.u8(token::envchange);
	std::size_t len_at = out_.size();
	out_.u16le(0);
	out_.u8(type);
	out_.b_varchar(new_value);
	out_.b_varchar(old_value);
	out_.patch_u16le(len_at, static_cast<std::uint16_t>(out_.size() - len_at - 2));
}

void TokenWriter::envchange_collation(ByteView new_collation)
{
	out_.u8(token::envchange);
	out_.u16le(static_cast<std::uint16_t>(1 + 1 + new_collation.size() + 1));
	out_.u8(envchange_type::collation);
	out_.u8(static_cast<std::uint8_t>(new_collation.size()));
	out_.bytes(new_collation);
	out_.u8(0); // old value: empty
}

void TokenWriter::envchange_routing(std::string_view host, std::uint16_t port)
{
	// Type 20: new value = u16 length, protocol (0 = TCP), port, US_VARCHAR host;
	// old value = u16 zero length. [MS-TDS] 2.2.7.9.
	ByteWriter value;
	value.u8(0);
	value.u16le(port);
	value.us_varchar(host);
	out_.u8(token::envchange);
	out_.u16le(static_cast<std::uint16_t>(1 + 2 + value.size() + 2));
	out_.u8(envchange_type::routing);
	out_.u16le(static_cast<std::uint16_t>(value.size()));
	out_.bytes(value.buffer());
	out_.u16le(0);
}

void TokenWriter::envchange_reset_ack()
{
	out_.u8(token::envchange);
	out_.u16le(3);
	out_.u8(envchange_type::reset_ack);
	out_.u8(0);
	out_.u8(0);
}

void TokenWriter::message(std::uint8_t tok, const Message16& m)
{
	out_.u8(tok);
	std::size_t len_at = out_.size();
	out_.u16le(0);
	out_.u32le(m.number);
	out_.u8(m.state);
	out_.u8(m.severity);
	out_.us_varchar(m.text);
	out_.b_varchar(m.server);
	out_.b_varchar(m.procedure);
	if (wide_fields())
		out_.u32le(m.line);
	else
		out_.u16le(static_cast<std::uint16_t>(std::min<std::uint32_t>(m.line, 0xFFFF)));
	out_.patch_u16le(len_at, static_cast<std::uint16_t>(out_.size() - len_at - 2));
}

void TokenWriter::loginack(std::uint32_t ack_version, std::string_view prog_name, std::uint8_t major,
			   std::uint8_t minor, std::uint16_t build)
{
	out_.u8(token::loginack);
	std::size_t len_at = out_.size();
	out_.u16le(0);
	out_.u8(1); // interface: SQL_TSQL
	out_.u32be(ack_version);
	out_.b_varchar(prog_name);
	out_.u8(major);
	out_.u8(minor);
	out_.u16be(build);
	out_.patch_u16le(len_at, static_cast<std::uint16_t>(out_.size() - len_at - 2));
}

void TokenWriter::featureextack(const std::vector<std::pair<std::uint8_t, Bytes>>& acks)
{
	out_.u8(token::featureextack);
	for (const auto& [id, data] : acks) {
		out_.u8(id);
		out_.u32le(static_cast<std::uint32_t>(data.size()));
		out_.bytes(data);
	}
	out_.u8(0xFF);
}

void TokenWriter::sspi(ByteView blob)
{
	out_.u8(token::sspi);
	out_.u16le(static_cast<std::uint16_t>(blob.size()));
	out_.bytes(blob);
}

void TokenWriter::done(std::uint8_t which, std::uint16_t status, std::uint16_t cmd, std::uint64_t rows)
{
	out_.u8(which);
	out_.u16le(status);
	out_.u16le(cmd);
	if (wide_fields())
		out_.u64le(rows);
	else
		out_.u32le(static_cast<std::uint32_t>(std::min<std::uint64_t>(rows, 0x7FFFFFFF))); // a LONG
}

void TokenWriter::user_type()
{
	if (wide_fields())
		out_.u32le(0);
	else
		out_.u16le(0);
}

void TokenWriter::returnstatus(std::int32_t value)
{
	out_.u8(token::returnstatus);
	out_.u32le(static_cast<std::uint32_t>(value));
}

void TokenWriter::returnvalue_int(std::string_view name, std::uint16_t ordinal, std::int32_t value)
{
	out_.u8(token::returnvalue);
	out_.u16le(ordinal);
	out_.b_varchar(name);
	out_.u8(0x01); // status: output parameter
	user_type();
	out_.u16le(0x0009); // flags: nullable, updateable
	out_.u8(0x26);	    // INTN
	out_.u8(4);
	out_.u8(4);
	out_.u32le(static_cast<std::uint32_t>(value));
}

void TokenWriter::colmetadata(const std::vector<Column>& columns)
{
	out_.u8(token::colmetadata);
	out_.u16le(static_cast<std::uint16_t>(columns.size()));
	for (const auto& c : columns) {
		user_type();
		out_.u16le(0x0001); // flags: nullable
		switch (c.type) {
		case ColumnType::int16:
			out_.u8(0x26);
			out_.u8(2);
			break;
		case ColumnType::int32:
			out_.u8(0x26);
			out_.u8(4);
			break;
		case ColumnType::bigint:
			if (has_collations()) {
				out_.u8(0x26);
				out_.u8(8);
			} else {
				out_.u8(0x6C); // NUMERICN: 9 bytes (sign + 8), precision 19, scale 0
				out_.u8(9);
				out_.u8(19);
				out_.u8(0);
			}
			break;
		case ColumnType::nvarchar:
			out_.u8(0xE7);
			out_.u16le(8000); // max length in bytes: nvarchar(4000)
			if (has_collations())
				out_.bytes(ByteView(kDefaultCollation, 5));
			break;
		}
		out_.b_varchar(c.name);
	}
}

void TokenWriter::row(const std::vector<Column>& columns, const std::vector<Value>& values)
{
	out_.u8(token::row);
	for (std::size_t i = 0; i < columns.size(); ++i) {
		const Value& v = i < values.size() ? values[i] : Value{};
		switch (columns[i].type) {
		case ColumnType::int16:
		case ColumnType::int32:
		case ColumnType::bigint: {
			const std::uint8_t width = columns[i].type == ColumnType::int16	  ? 2
						   : columns[i].type == ColumnType::int32 ? 4
											  : 8;
			const auto* n = std::get_if<std::int64_t>(&v);
			if (n && width == 8 && !has_collations()) {
				// numeric(19,0): sign byte (1 = positive), then the magnitude.
				out_.u8(9);
				out_.u8(*n < 0 ? 0 : 1);
				std::uint64_t magnitude =
					*n < 0 ? 0 - static_cast<std::uint64_t>(*n) : static_cast<std::uint64_t>(*n);
				out_.u64le(magnitude);
			} else if (n) {
				out_.u8(width);
				if (width == 2)
					out_.u16le(static_cast<std::uint16_t>(*n));
				else if (width == 4)
					out_.u32le(static_cast<std::uint32_t>(*n));
				else
					out_.u64le(static_cast<std::uint64_t>(*n));
			} else {
				out_.u8(0);
			}
			break;
		}
		case ColumnType::nvarchar:
			if (const auto* s = std::get_if<std::string>(&v)) {
				std::u16string u = utf8_to_utf16(*s);
				if (u.size() > 4000)
					u.resize(4000);
				out_.u16le(static_cast<std::uint16_t>(u.size() * 2));
				for (char16_t ch : u)
					out_.u16le(static_cast<std::uint16_t>(ch));
			} else {
				out_.u16le(0xFFFF);
			}
			break;
		}
	}
}

namespace {

// Column layout as far as the reader needs it to step over values.
struct ColumnShape {
	std::uint8_t type = 0;
	std::uint32_t max_len = 0;
	std::uint8_t scale = 0;
};

enum class LenKind { fixed, byte_len, ushort_len, plp, long_len };

LenKind length_kind(const ColumnShape& c, std::size_t& fixed_size)
{
	switch (c.type) {
	case 0x30: fixed_size = 1; return LenKind::fixed; // INT1
	case 0x32: fixed_size = 1; return LenKind::fixed; // BIT
	case 0x34: fixed_size = 2; return LenKind::fixed; // INT2
	case 0x38: fixed_size = 4; return LenKind::fixed; // INT4
	case 0x3B: fixed_size = 4; return LenKind::fixed; // FLT4
	case 0x3A: fixed_size = 4; return LenKind::fixed; // DATETIM4
	case 0x3C: fixed_size = 8; return LenKind::fixed; // MONEY
	case 0x3D: fixed_size = 8; return LenKind::fixed; // DATETIME
	case 0x3E: fixed_size = 8; return LenKind::fixed; // FLT8
	case 0x7A: fixed_size = 4; return LenKind::fixed; // MONEY4
	case 0x7F: fixed_size = 8; return LenKind::fixed; // INT8
	case 0x26:
	case 0x68:
	case 0x6D:
	case 0x6E:
	case 0x6F:
	case 0x24:
	case 0x6A:
	case 0x6C:
	case 0x28:
	case 0x29:
	case 0x2A:
	case 0x2B: return LenKind::byte_len;
	case 0xE7:
	case 0xEF:
	case 0xA7:
	case 0xAF:
	case 0xA5:
	case 0xAD: return c.max_len == 0xFFFF ? LenKind::plp : LenKind::ushort_len;
	case 0x63:
	case 0x23:
	case 0x22: return LenKind::long_len;
	default: throw WireError("column type " + std::to_string(c.type) + " not supported by the reader");
	}
}

// `collations`: character types carry a COLLATION (TDS 7.1 and later).
ColumnShape read_type_info(ByteReader& r, bool collations)
{
	ColumnShape c;
	c.type = r.u8();
	std::size_t fixed = 0;
	switch (c.type) {
	case 0x26:
	case 0x68:
	case 0x6D:
	case 0x6E:
	case 0x6F:
	case 0x24:
	case 0x29:
	case 0x2A:
	case 0x2B: c.max_len = r.u8(); break;
	case 0x28: break; // DATEN: no length in TYPE_INFO
	case 0x6A:
	case 0x6C:
		c.max_len = r.u8();
		r.skip(1); // precision
		c.scale = r.u8();
		break;
	case 0xE7:
	case 0xEF:
	case 0xA7:
	case 0xAF:
		c.max_len = r.u16le();
		if (collations)
			r.skip(5);
		break;
	case 0xA5:
	case 0xAD: c.max_len = r.u16le(); break;
	case 0x63:
	case 0x23:
	case 0x22: {
		c.max_len = r.u32le();
		if (c.type != 0x22 && collations)
			r.skip(5);
		std::uint8_t parts = r.u8();
		for (int i = 0; i < parts; ++i)
			r.us_varchar();
		break;
	}
	default:
		length_kind(c, fixed); // throws for unknown types
		break;
	}
	return c;
}

Value read_value(ByteReader& r, const ColumnShape& c)
{
	std::size_t fixed = 0;
	switch (length_kind(c, fixed)) {
	case LenKind::fixed: {
		auto b = r.bytes(fixed);
		std::uint64_t v = 0;
		for (int i = static_cast<int>(fixed) - 1; i >= 0; --i)
			v = (v << 8) | b[i];
		return static_cast<std::int64_t>(v);
	}
	case LenKind::byte_len: {
		std::uint8_t len = r.u8();
		if (len == 0)
			return std::monostate{};
		auto b = r.bytes(len);
		if (c.type == 0x26 && len <= 8) {
			std::uint64_t v = 0;
			for (int i = len - 1; i >= 0; --i)
				v = (v << 8) | b[i];
			if (len < 8 && (b[len - 1] & 0x80))
				v |= ~0ull << (len * 8);
			return static_cast<std::int64_t>(v);
		}
		if ((c.type == 0x6A || c.type == 0x6C) && c.scale == 0 && len >= 2 && len <= 9) {
			// Whole numbers (bigint for TDS 7.0): sign byte, then the magnitude.
			std::uint64_t v = 0;
			for (int i = len - 1; i >= 1; --i)
				v = (v << 8) | b[i];
			return b[0] ? static_cast<std::int64_t>(v) : -static_cast<std::int64_t>(v);
		}
		return std::string(b.begin(), b.end());
	}
	case LenKind::ushort_len: {
		std::uint16_t len = r.u16le();
		if (len == 0xFFFF)
			return std::monostate{};
		auto b = r.bytes(len);
		if (c.type == 0xE7 || c.type == 0xEF)
			return utf16le_to_utf8(b);
		return std::string(b.begin(), b.end());
	}
	case LenKind::plp: {
		std::uint64_t total = r.u64le();
		if (total == ~0ull)
			return std::monostate{};
		Bytes data;
		for (int guard = 0; guard < 1000000; ++guard) {
			std::uint32_t chunk = r.u32le();
			if (chunk == 0)
				break;
			auto b = r.bytes(chunk);
			data.insert(data.end(), b.begin(), b.end());
		}
		if (c.type == 0xE7 || c.type == 0xEF)
			return utf16le_to_utf8(data);
		return std::string(data.begin(), data.end());
	}
	case LenKind::long_len: {
		std::uint8_t ptr_len = r.u8();
		if (ptr_len == 0)
			return std::monostate{};
		r.skip(ptr_len + 8); // text pointer and timestamp
		std::uint32_t len = r.u32le();
		auto b = r.bytes(len);
		if (c.type == 0x63)
			return utf16le_to_utf8(b);
		return std::string(b.begin(), b.end());
	}
	}
	return std::monostate{};
}

Message16 read_message(ByteReader& r, bool wide_line)
{
	std::uint16_t len = r.u16le();
	std::size_t end = r.position() + len;
	Message16 m;
	m.number = r.u32le();
	m.state = r.u8();
	m.severity = r.u8();
	m.text = r.us_varchar();
	m.server = r.b_varchar();
	m.procedure = r.b_varchar();
	if (wide_line && end >= r.position() + 4)
		m.line = r.u32le();
	else if (!wide_line && end >= r.position() + 2)
		m.line = r.u16le();
	r.seek(end);
	return m;
}

} // namespace

ResponseSummary read_response(ByteView payload, std::size_t keep_rows, std::uint32_t version)
{
	const bool wide = version >= tds_version::v7_2;
	const bool collations = version >= tds_version::v7_1;
	ResponseSummary s;
	ByteReader r(payload);
	std::vector<ColumnShape> columns;
	while (r.remaining() > 0) {
		std::uint8_t tok = r.u8();
		switch (tok) {
		case token::loginack: {
			std::uint16_t len = r.u16le();
			std::size_t end = r.position() + len;
			r.u8();
			s.tds_version = r.u32be();
			s.login_ack = true;
			r.seek(end);
			break;
		}
		case token::error: s.errors.push_back(read_message(r, wide)); break;
		case token::info: s.infos.push_back(read_message(r, wide)); break;
		case token::envchange: {
			std::uint16_t len = r.u16le();
			std::size_t end = r.position() + len;
			std::uint8_t type = r.u8();
			if (type == envchange_type::packet_size) {
				std::string v = r.b_varchar();
				try {
					s.packet_size = static_cast<std::uint32_t>(std::stoul(v));
				} catch (const std::exception&) {
					throw WireError("packet size ENVCHANGE is not a number: " + v);
				}
			} else if (type == envchange_type::routing) {
				r.u16le();
				r.u8();
				std::uint16_t port = r.u16le();
				std::string host = r.us_varchar();
				s.routing = std::make_pair(host, port);
			}
			r.seek(end);
			break;
		}
		case token::sspi: {
			std::uint16_t len = r.u16le();
			auto b = r.bytes(len);
			s.sspi.assign(b.begin(), b.end());
			break;
		}
		case token::featureextack:
			for (int guard = 0; guard < 64; ++guard) {
				std::uint8_t id = r.u8();
				if (id == 0xFF)
					break;
				r.skip(r.u32le());
			}
			break;
		case token::returnstatus: r.u32le(); break;
		case token::sessionstate:
		case token::fedauthinfo: r.skip(r.u32le()); break;
		case token::order:
		case token::colinfo:
		case token::tabname: r.skip(r.u16le()); break;
		case token::colmetadata: {
			std::uint16_t count = r.u16le();
			columns.clear();
			if (count == 0xFFFF)
				break; // no metadata
			for (int i = 0; i < count; ++i) {
				r.skip(wide ? 4 : 2); // user type
				r.u16le();	      // flags
				columns.push_back(read_type_info(r, collations));
				r.b_varchar();
			}
			break;
		}
		case token::row: {
			std::vector<Value> values;
			for (const auto& c : columns)
				values.push_back(read_value(r, c));
			if (s.first_rows.size() < keep_rows)
				s.first_rows.push_back(std::move(values));
			++s.rows;
			break;
		}
		case token::returnvalue: {
			r.u16le();
			r.b_varchar();
			r.u8();
			r.skip(wide ? 4 : 2); // user type
			r.u16le();
			ColumnShape c = read_type_info(r, collations);
			read_value(r, c);
			break;
		}
		case token::done:
		case token::doneproc:
		case token::doneinproc: {
			std::uint16_t st = r.u16le();
			r.u16le();
			std::uint64_t count = wide ? r.u64le() : r.u32le();
			if (st & done_status::count)
				s.done_row_count += count;
			if (st & done_status::attention)
				s.attention_ack = true;
			if (tok == token::done && !(st & done_status::more))
				s.final_done = true;
			break;
		}
		default:
			throw WireError("unexpected token 0x" + hex_dump(ByteView(&tok, 1)) + " at offset " +
					std::to_string(r.position() - 1));
		}
	}
	return s;
}

} // namespace tdslab
