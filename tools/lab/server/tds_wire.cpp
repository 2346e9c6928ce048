// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "tds_wire.h"

#include <algorithm>

namespace tdslab {

bool is_known_packet_type(std::uint8_t type)
{
	switch (type) {
	case 1:
	case 2:
	case 3:
	case 4:
	case 6:
	case 7:
	case 8:
	case 14:
	case 16:
	case 17:
	case 18: return true;
	default: return false;
	}
}

const char* packet_type_name(std::uint8_t type)
{
	switch (type) {
	case 1: return "SQLBatch";
	case 2: return "PreTDS7Login";
	case 3: return "RPC";
	case 4: return "TabularResult";
	case 6: return "Attention";
	case 7: return "BulkLoad";
	case 8: return "FedAuthToken";
	case 14: return "TransactionManager";
	case 16: return "LOGIN7";
	case 17: return "SSPI";
	case 18: return "PRELOGIN";
	default: return "invalid";
	}
}

PacketHeader decode_header(ByteView eight_bytes)
{
	ByteReader r(eight_bytes);
	PacketHeader h;
	h.type = r.u8();
	h.status = r.u8();
	h.length = r.u16be();
	h.spid = r.u16be();
	h.packet_id = r.u8();
	h.window = r.u8();
	return h;
}

void encode_header(ByteWriter& out, const PacketHeader& h)
{
	out.u8(h.type);
	out.u8(h.status);
	out.u16be(h.length);
	out.u16be(h.spid);
	out.u8(h.packet_id);
	out.u8(h.window);
}

std::optional<Packet> PacketSplitter::next()
{
	if (queue_.size() < kHeaderSize)
		return std::nullopt;
	ByteView bytes = queue_.view();
	PacketHeader h = decode_header(bytes.first(kHeaderSize));
	if (!is_known_packet_type(h.type)) {
		throw WireError("invalid TDS packet type " + std::to_string(h.type) +
				" (bytes: " + hex_dump(bytes.first(std::min<std::size_t>(bytes.size(), 16))) + ")");
	}
	if (h.length < kHeaderSize || h.length > max_packet_) {
		throw WireError("TDS packet length " + std::to_string(h.length) + " out of range");
	}
	if (bytes.size() < h.length)
		return std::nullopt;
	Packet p;
	p.header = h;
	p.payload.assign(bytes.begin() + kHeaderSize, bytes.begin() + h.length);
	queue_.consume(h.length);
	return p;
}

std::optional<Message> MessageAssembler::add(Packet&& p)
{
	if (!in_progress_) {
		current_ = Message{};
		current_.type = p.header.type;
		current_.first_status = p.header.status;
		in_progress_ = true;
	} else if (p.header.type != current_.type &&
		   p.header.type != static_cast<std::uint8_t>(PacketType::attention)) {
		throw WireError(std::string("packet type changed mid-message from ") + packet_type_name(current_.type) +
				" to " + packet_type_name(p.header.type));
	}
	if (p.header.type == static_cast<std::uint8_t>(PacketType::attention) && current_.type != p.header.type) {
		// An attention may interrupt a request still being sent: the partial
		// request is dropped and the attention stands alone.
		current_ = Message{};
		current_.type = p.header.type;
		current_.first_status = p.header.status;
	}
	if (current_.payload.size() + p.payload.size() > max_message_) {
		throw WireError("message larger than " + std::to_string(max_message_) + " bytes");
	}
	current_.payload.insert(current_.payload.end(), p.payload.begin(), p.payload.end());
	if (p.header.status & status::eom) {
		current_.ignore = (p.header.status & status::ignore) != 0;
		in_progress_ = false;
		return std::move(current_);
	}
	return std::nullopt;
}

Bytes packetize(std::uint8_t type, ByteView payload, std::size_t packet_size, std::uint16_t spid,
		std::uint8_t first_status_bits)
{
	packet_size = std::clamp(packet_size, kMinPacketSize, kMaxPacketSize);
	const std::size_t chunk = packet_size - kHeaderSize;
	ByteWriter out;
	std::size_t offset = 0;
	std::uint8_t packet_id = 1;
	do {
		std::size_t n = std::min(chunk, payload.size() - offset);
		bool last = offset + n == payload.size();
		PacketHeader h;
		h.type = type;
		h.status = static_cast<std::uint8_t>((last ? status::eom : 0) | (offset == 0 ? first_status_bits : 0));
		h.length = static_cast<std::uint16_t>(n + kHeaderSize);
		h.spid = spid;
		h.packet_id = packet_id++;
		encode_header(out, h);
		out.bytes(payload.subspan(offset, n));
		offset += n;
	} while (offset < payload.size());
	return out.take();
}

const char* encryption_name(std::uint8_t value)
{
	switch (value & 0x7F) {
	case 0: return "ENCRYPT_OFF";
	case 1: return "ENCRYPT_ON";
	case 2: return "ENCRYPT_NOT_SUP";
	case 3: return "ENCRYPT_REQ";
	default: return "ENCRYPT_?";
	}
}

std::vector<PreloginOption> decode_prelogin(ByteView payload)
{
	std::vector<PreloginOption> options;
	ByteReader r(payload);
	for (int guard = 0; guard < 64; ++guard) {
		std::uint8_t token = r.u8();
		if (token == prelogin_token::terminator)
			return options;
		std::uint16_t offset = r.u16be();
		std::uint16_t length = r.u16be();
		if (static_cast<std::size_t>(offset) + length > payload.size()) {
			throw WireError("PRELOGIN option " + std::to_string(token) + " points past the payload");
		}
		auto data = payload.subspan(offset, length);
		options.push_back({token, Bytes(data.begin(), data.end())});
	}
	throw WireError("PRELOGIN option table has no terminator");
}

Bytes encode_prelogin(const std::vector<PreloginOption>& options)
{
	ByteWriter out;
	std::size_t data_offset = options.size() * 5 + 1;
	for (const auto& o : options) {
		out.u8(o.token);
		out.u16be(static_cast<std::uint16_t>(data_offset));
		out.u16be(static_cast<std::uint16_t>(o.data.size()));
		data_offset += o.data.size();
	}
	out.u8(prelogin_token::terminator);
	for (const auto& o : options)
		out.bytes(o.data);
	return out.take();
}

const PreloginOption* find_option(const std::vector<PreloginOption>& options, std::uint8_t token)
{
	for (const auto& o : options) {
		if (o.token == token)
			return &o;
	}
	return nullptr;
}

namespace {

// Reads one (offset u16, length-in-chars u16) pair of the LOGIN7 fixed part
// and returns the UTF-16 text it points at.
std::string login7_string(ByteView body, std::size_t field_offset)
{
	ByteReader r(body);
	r.seek(field_offset);
	std::uint16_t offset = r.u16le();
	std::uint16_t chars = r.u16le();
	if (chars == 0)
		return {};
	r.seek(offset);
	return r.utf16(chars);
}

// The LOGIN7 fixed part: 94 bytes from TDS 7.2 on (ibChangePassword and
// cbSSPILong were added), 86 bytes for 7.0 and 7.1 clients.
std::size_t login7_fixed_size(std::uint32_t tds_version)
{
	return tds_version >= 0x70000000 && tds_version < 0x72000000 ? 86 : 94;
}

} // namespace

Login7 decode_login7(ByteView payload)
{
	ByteReader r(payload);
	std::uint32_t length = r.u32le();
	Login7 l;
	l.tds_version = payload.size() >= 8 ? ByteReader(payload.subspan(4)).u32le() : 0;
	const std::size_t fixed = login7_fixed_size(l.tds_version);
	if (length < fixed || length > payload.size()) {
		throw WireError("LOGIN7 length " + std::to_string(length) + " invalid for a " +
				std::to_string(payload.size()) + "-byte message");
	}
	ByteView body = payload.first(length);
	r.skip(4); // the version, read above
	l.packet_size = r.u32le();
	r.skip(4); // client program version
	l.client_pid = r.u32le();
	r.skip(4); // connection id
	l.option_flags1 = r.u8();
	l.option_flags2 = r.u8();
	l.type_flags = r.u8();
	l.option_flags3 = r.u8();
	l.host_name = login7_string(body, 36);
	l.user_name = login7_string(body, 40);
	// 44: password, skipped on purpose.
	l.app_name = login7_string(body, 48);
	l.server_name = login7_string(body, 52);
	l.library_name = login7_string(body, 60);
	l.language = login7_string(body, 64);
	l.database = login7_string(body, 68);

	ByteReader f(body);
	f.seek(78);
	std::uint16_t sspi_offset = f.u16le();
	std::uint32_t sspi_length = f.u16le();
	if (sspi_length == 0xFFFF && fixed >= 94) {
		f.seek(90);
		sspi_length = f.u32le();
	}
	if (sspi_length) {
		f.seek(sspi_offset);
		auto blob = f.bytes(sspi_length);
		l.sspi.assign(blob.begin(), blob.end());
	}

	// FeatureExt: ibExtension points at a u32 offset of the feature list.
	if (l.option_flags3 & 0x10) {
		ByteReader e(body);
		e.seek(56);
		std::uint16_t ext_offset = e.u16le();
		std::uint16_t ext_length = e.u16le();
		if (ext_length >= 4) {
			e.seek(ext_offset);
			std::uint32_t features_at = e.u32le();
			e.seek(features_at);
			for (int guard = 0; guard < 64 && e.remaining() > 0; ++guard) {
				std::uint8_t id = e.u8();
				if (id == 0xFF)
					break;
				std::uint32_t len = e.u32le();
				e.skip(len);
				l.features.push_back(id);
			}
		}
	}
	return l;
}

Bytes encode_login7(const Login7Request& req)
{
	// Variable fields in the order of their offset/length pairs.
	struct Field {
		std::size_t pair_at;
		std::u16string text;
		bool obfuscate;
	};
	std::vector<Field> fields = {
		{36, utf8_to_utf16(req.host_name), false},
		{40, utf8_to_utf16(req.user_name), false},
		{44, utf8_to_utf16(req.password), true},
		{48, utf8_to_utf16(req.app_name), false},
		{52, utf8_to_utf16(req.server_name), false},
		{60, utf8_to_utf16(req.library_name), false},
		{64, u"", false},
		{68, utf8_to_utf16(req.database), false},
	};
	ByteWriter out;
	out.u32le(0); // total length, patched below
	out.u32le(req.tds_version);
	out.u32le(req.packet_size);
	out.u32le(0x07000000); // client program version
	out.u32le(0);	       // client pid
	out.u32le(0);	       // connection id
	out.u8(0xE0);	       // option flags 1: USE_DB_ON, INIT_DB_FATAL, SET_LANG_ON
	out.u8(0x03);	       // option flags 2: INIT_LANG_FATAL, ODBC
	out.u8(0x00);
	out.u8(0x00);
	out.u32le(0);	   // time zone
	out.u32le(0x0409); // LCID en-US
	const std::size_t fixed = login7_fixed_size(req.tds_version);
	out.zeros(fixed - out.size());
	std::size_t data_at = fixed;
	for (const auto& f : fields) {
		out.patch_u16le(f.pair_at, static_cast<std::uint16_t>(data_at));
		out.patch_u16le(f.pair_at + 2, static_cast<std::uint16_t>(f.text.size()));
		for (char16_t c : f.text) {
			std::uint8_t lo = static_cast<std::uint8_t>(c), hi = static_cast<std::uint8_t>(c >> 8);
			if (f.obfuscate) {
				// [MS-TDS] 2.2.6.4: swap the nibbles of every byte, then XOR with 0xA5.
				lo = static_cast<std::uint8_t>(((lo << 4) | (lo >> 4)) ^ 0xA5);
				hi = static_cast<std::uint8_t>(((hi << 4) | (hi >> 4)) ^ 0xA5);
			}
			out.u8(lo);
			out.u8(hi);
		}
		data_at += f.text.size() * 2;
	}
	// Empty pairs (extension, SSPI, attach file, change password) point at the end.
	for (std::size_t at : {56u, 78u, 82u, 86u}) {
		if (at < fixed)
			out.patch_u16le(at, static_cast<std::uint16_t>(data_at));
	}
	if (!req.features.empty()) {
		// ibExtension points at a u32 holding the offset of the feature list.
		out.buffer()[27] |= 0x10; // option flags 3: fExtension
		out.patch_u16le(58, 4);
		out.u32le(static_cast<std::uint32_t>(data_at + 4));
		for (const auto& [id, data] : req.features) {
			out.u8(id);
			out.u32le(static_cast<std::uint32_t>(data.size()));
			out.bytes(data);
		}
		out.u8(0xFF);
	}
	out.patch_u32le(0, static_cast<std::uint32_t>(out.size()));
	return out.take();
}

std::size_t skip_all_headers(ByteView payload)
{
	if (payload.size() < 4)
		return 0;
	ByteReader r(payload);
	std::uint32_t total = r.u32le();
	// A plausible ALL_HEADERS: at least its own length plus one header
	// (length u32 + type u16), and inside the message.
	if (total >= 4 && total <= payload.size() && total < 4096) {
		// Walk the headers to make sure they tile the declared length.
		std::size_t pos = 4;
		while (pos < total) {
			r.seek(pos);
			if (r.remaining() < 6)
				return 0;
			std::uint32_t len = r.u32le();
			if (len < 6 || pos + len > total)
				return 0;
			pos += len;
		}
		return total;
	}
	return 0;
}

Bytes encode_all_headers(std::uint64_t transaction_descriptor, std::uint32_t outstanding_requests)
{
	ByteWriter out;
	out.u32le(22);
	out.u32le(18);
	out.u16le(2); // transaction descriptor header
	out.u64le(transaction_descriptor);
	out.u32le(outstanding_requests);
	return out.take();
}

std::string decode_sql_batch(ByteView payload)
{
	std::size_t at = skip_all_headers(payload);
	return utf16le_to_utf8(payload.subspan(at));
}

Bytes encode_sql_batch(std::string_view sql)
{
	ByteWriter out;
	out.bytes(encode_all_headers());
	out.utf16(sql);
	return out.take();
}

namespace {

std::string read_plp_text(ByteReader& r, bool unicode)
{
	std::uint64_t total = r.u64le();
	Bytes data;
	if (total == ~0ull)
		return {}; // NULL
	for (int guard = 0; guard < 100000; ++guard) {
		std::uint32_t chunk = r.u32le();
		if (chunk == 0)
			break;
		auto b = r.bytes(chunk);
		data.insert(data.end(), b.begin(), b.end());
	}
	if (unicode)
		return utf16le_to_utf8(data);
	return std::string(data.begin(), data.end());
}

// Reads one parameter's TYPE_INFO and value. Returns false for types this
// lab does not decode (the rest of the parameters are then left alone).
bool read_param_value(ByteReader& r, RpcParam& p)
{
	p.type = r.u8();
	switch (p.type) {
	case 0x26:   // INTN
	case 0x68: { // BITN
		std::uint8_t max = r.u8();
		(void)max;
		std::uint8_t len = r.u8();
		if (len == 0) {
			p.is_null = true;
			return true;
		}
		if (len > 8)
			throw WireError("integer parameter longer than 8 bytes");
		std::uint64_t v = 0;
		auto b = r.bytes(len);
		for (int i = len - 1; i >= 0; --i)
			v = (v << 8) | b[i];
		if (len < 8 && (b[len - 1] & 0x80) && p.type == 0x26)
			v |= ~0ull << (len * 8);
		p.integer = static_cast<std::int64_t>(v);
		return true;
	}
	case 0x30: p.integer = r.u8(); return true;
	case 0x34: p.integer = static_cast<std::int16_t>(r.u16le()); return true;
	case 0x38: p.integer = static_cast<std::int32_t>(r.u32le()); return true;
	case 0x7F: p.integer = static_cast<std::int64_t>(r.u64le()); return true;
	case 0xE7:
	case 0xEF:
	case 0xA7:
	case 0xAF: {
		bool unicode = p.type == 0xE7 || p.type == 0xEF;
		std::uint16_t max = r.u16le();
		r.skip(5); // collation
		if (max == 0xFFFF) {
			p.text = read_plp_text(r, unicode);
			return true;
		}
		std::uint16_t len = r.u16le();
		if (len == 0xFFFF) {
			p.is_null = true;
			return true;
		}
		auto b = r.bytes(len);
		p.text = unicode ? utf16le_to_utf8(b) : std::string(b.begin(), b.end());
		return true;
	}
	case 0x63:
	case 0x23: { // NTEXT, TEXT: u32 max, collation, then u32 length
		r.u32le();
		r.skip(5);
		std::uint32_t len = r.u32le();
		if (len == 0xFFFFFFFF) {
			p.is_null = true;
			return true;
		}
		auto b = r.bytes(len);
		p.text = p.type == 0x63 ? utf16le_to_utf8(b) : std::string(b.begin(), b.end());
		return true;
	}
	default: return false;
	}
}

} // namespace

RpcRequest decode_rpc(ByteView payload)
{
	ByteReader r(payload);
	r.seek(skip_all_headers(payload));
	RpcRequest rpc;
	std::uint16_t name_len = r.u16le();
	if (name_len == 0xFFFF) {
		rpc.proc_id = r.u16le();
	} else {
		rpc.proc_name = r.utf16(name_len);
	}
	rpc.option_flags = r.u16le();
	for (int guard = 0; guard < 256 && r.remaining() > 0; ++guard) {
		std::uint8_t next = payload[r.position()];
		if (next == 0xFF || next == 0x80 || next == 0xFE)
			break; // batch separator: one RPC is enough
		RpcParam p;
		p.name = r.b_varchar();
		p.status = r.u8();
		if (!read_param_value(r, p)) {
			rpc.params.push_back(std::move(p));
			break;
		}
		rpc.params.push_back(std::move(p));
	}
	return rpc;
}

std::string rpc_display_name(const RpcRequest& rpc)
{
	if (!rpc.proc_id)
		return rpc.proc_name;
	switch (*rpc.proc_id) {
	case proc_id::sp_cursor: return "sp_cursor";
	case proc_id::sp_cursoropen: return "sp_cursoropen";
	case proc_id::sp_cursorclose: return "sp_cursorclose";
	case proc_id::sp_executesql: return "sp_executesql";
	case proc_id::sp_prepare: return "sp_prepare";
	case proc_id::sp_execute: return "sp_execute";
	case proc_id::sp_prepexec: return "sp_prepexec";
	case proc_id::sp_unprepare: return "sp_unprepare";
	default: return "proc#" + std::to_string(*rpc.proc_id);
	}
}

} // namespace tdslab
