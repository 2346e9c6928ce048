// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// TDS messages on the wire: the 8-byte packet header, splitting a byte stream
// into packets and messages, and the request bodies the lab server and the
// load client exchange (PRELOGIN, LOGIN7, SQL batch, RPC).
// Facts from [MS-TDS] 2.2.3 (header), 2.2.6 (messages).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "byte_io.h"

namespace tdslab {

enum class PacketType : std::uint8_t {
	sql_batch = 1,
	pre_tds7_login = 2,
	rpc = 3,
	tabular_result = 4,
	attention = 6,
	bulk_load = 7,
	fedauth_token = 8,
	transaction_manager = 14,
	login7 = 16,
	sspi = 17,
	prelogin = 18,
};

bool is_known_packet_type(std::uint8_t type);
const char* packet_type_name(std::uint8_t type);

namespace status {
inline constexpr std::uint8_t eom = 0x01;
inline constexpr std::uint8_t ignore = 0x02;
inline constexpr std::uint8_t reset_connection = 0x08;
inline constexpr std::uint8_t reset_connection_skip_tran = 0x10;
} // namespace status

inline constexpr std::size_t kHeaderSize = 8;
inline constexpr std::size_t kMinPacketSize = 512;
inline constexpr std::size_t kMaxPacketSize = 32767;
inline constexpr std::size_t kDefaultPacketSize = 4096;

struct PacketHeader {
	std::uint8_t type = 0;
	std::uint8_t status = 0;
	std::uint16_t length = 0; // includes the header
	std::uint16_t spid = 0;
	std::uint8_t packet_id = 0;
	std::uint8_t window = 0;
};

PacketHeader decode_header(ByteView eight_bytes);
void encode_header(ByteWriter& out, const PacketHeader& h);

struct Packet {
	PacketHeader header;
	Bytes payload;
};

// Splits a byte stream into TDS packets. Bytes may arrive in any chunking;
// a header announcing an impossible length is a protocol error.
class PacketSplitter {
public:
	explicit PacketSplitter(std::size_t max_packet = kMaxPacketSize + 1) : max_packet_(max_packet) {}
	void feed(ByteView data) { queue_.append(data); }
	// Next complete packet, or nullopt if more bytes are needed.
	// Throws WireError on a malformed header.
	std::optional<Packet> next();
	std::size_t buffered() const { return queue_.size(); }
	// First unconsumed byte (only when buffered() > 0).
	std::uint8_t first_byte() const { return queue_.view()[0]; }
	// Bytes not yet consumed as packets (used when the stream changes layer).
	Bytes take_rest() { return queue_.take_all(); }

private:
	ByteQueue queue_;
	std::size_t max_packet_;
};

// Joins packets into messages (a run of packets ending with EOM).
struct Message {
	std::uint8_t type = 0;
	std::uint8_t first_status = 0; // RESETCONNECTION bits live on the first packet
	bool ignore = false;	       // the client abandoned it (IGNORE on the last packet)
	Bytes payload;
};

class MessageAssembler {
public:
	explicit MessageAssembler(std::size_t max_message = 16 * 1024 * 1024) : max_message_(max_message) {}
	// Returns a message when `p` completes one. Throws WireError when packet types
	// change mid-message or the message grows past the limit.
	std::optional<Message> add(Packet&& p);
	bool in_progress() const { return in_progress_; }
	void set_limit(std::size_t max_message) { max_message_ = max_message; }
	void reset()
	{
		in_progress_ = false;
		current_ = {};
	}

private:
	Message current_;
	bool in_progress_ = false;
	std::size_t max_message_;
};

// Splits a message payload into packets of at most `packet_size` bytes.
Bytes packetize(std::uint8_t type, ByteView payload, std::size_t packet_size, std::uint16_t spid = 0,
		std::uint8_t first_status_bits = 0);

// ---- PRELOGIN ([MS-TDS] 2.2.6.5) ----
namespace prelogin_token {
inline constexpr std::uint8_t version = 0;
inline constexpr std::uint8_t encryption = 1;
inline constexpr std::uint8_t instopt = 2;
inline constexpr std::uint8_t threadid = 3;
inline constexpr std::uint8_t mars = 4;
inline constexpr std::uint8_t traceid = 5;
inline constexpr std::uint8_t fedauth_required = 6;
inline constexpr std::uint8_t nonce = 7;
inline constexpr std::uint8_t terminator = 0xFF;
} // namespace prelogin_token

enum class Encryption : std::uint8_t { off = 0, on = 1, not_supported = 2, required = 3 };
const char* encryption_name(std::uint8_t value);

struct PreloginOption {
	std::uint8_t token;
	Bytes data;
};

std::vector<PreloginOption> decode_prelogin(ByteView payload);
Bytes encode_prelogin(const std::vector<PreloginOption>& options);
const PreloginOption* find_option(const std::vector<PreloginOption>& options, std::uint8_t token);

// ---- LOGIN7 ([MS-TDS] 2.2.6.4) ----
struct Login7 {
	std::uint32_t tds_version = 0; // as the u32 LE on the wire, e.g. 0x74000004
	std::uint32_t packet_size = 0;
	std::uint32_t client_pid = 0;
	std::uint8_t option_flags1 = 0;
	std::uint8_t option_flags2 = 0;
	std::uint8_t type_flags = 0;
	std::uint8_t option_flags3 = 0;
	std::string host_name;
	std::string user_name;
	// The password is deliberately not decoded: it never leaves the packet.
	std::string app_name;
	std::string server_name;
	std::string library_name;
	std::string language;
	std::string database;
	Bytes sspi;
	// Feature ids the client asked for in FeatureExt (order kept).
	std::vector<std::uint8_t> features;

	bool integrated_security() const { return (option_flags2 & 0x80) != 0; }
};

Login7 decode_login7(ByteView payload);

// What the load client sends. The password is obfuscated as [MS-TDS] requires.
struct Login7Request {
	std::uint32_t tds_version = 0x74000004;
	std::uint32_t packet_size = kDefaultPacketSize;
	std::string host_name = "loadclient";
	std::string user_name;
	std::string password;
	std::string app_name = "tdsbpf-loadclient";
	std::string server_name;
	std::string library_name = "tdsbpf";
	std::string database;
	// FeatureExt entries (id, data), e.g. {0x0A, {0x01}} for UTF-8 support as
	// every driver tested with the lab sends it.
	std::vector<std::pair<std::uint8_t, Bytes>> features;
};
Bytes encode_login7(const Login7Request& req);

// ---- Requests ----
// Skips ALL_HEADERS (present from TDS 7.2) when the first u32 looks like its
// total length; returns the offset of the request body.
std::size_t skip_all_headers(ByteView payload);
Bytes encode_all_headers(std::uint64_t transaction_descriptor = 0, std::uint32_t outstanding_requests = 1);

std::string decode_sql_batch(ByteView payload);
Bytes encode_sql_batch(std::string_view sql);

struct RpcParam {
	std::string name;
	std::uint8_t status = 0;
	std::uint8_t type = 0;
	bool is_null = false;
	std::optional<std::string> text;     // character types, decoded
	std::optional<std::int64_t> integer; // integer types
};

struct RpcRequest {
	std::optional<std::uint16_t> proc_id; // well-known procedures by number
	std::string proc_name;
	std::uint16_t option_flags = 0;
	std::vector<RpcParam> params; // decoded up to the first type we can't read
};

// Well-known procedure ids ([MS-TDS] 2.2.6.6).
namespace proc_id {
inline constexpr std::uint16_t sp_cursor = 1;
inline constexpr std::uint16_t sp_cursoropen = 2;
inline constexpr std::uint16_t sp_cursorclose = 9;
inline constexpr std::uint16_t sp_executesql = 10;
inline constexpr std::uint16_t sp_prepare = 11;
inline constexpr std::uint16_t sp_execute = 12;
inline constexpr std::uint16_t sp_prepexec = 13;
inline constexpr std::uint16_t sp_unprepare = 15;
} // namespace proc_id

RpcRequest decode_rpc(ByteView payload);
// Display name: the proc name, or the well-known name for an id.
std::string rpc_display_name(const RpcRequest& rpc);

} // namespace tdslab
