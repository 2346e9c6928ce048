// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The token stream inside tabular-result (type 4) messages: builders for the
// lab server and a reader for the load client. [MS-TDS] 2.2.7.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "byte_io.h"

namespace tdslab {

namespace token {
inline constexpr std::uint8_t returnstatus = 0x79;
inline constexpr std::uint8_t colmetadata = 0x81;
inline constexpr std::uint8_t tabname = 0xA4;
inline constexpr std::uint8_t colinfo = 0xA5;
inline constexpr std::uint8_t order = 0xA9;
inline constexpr std::uint8_t error = 0xAA;
inline constexpr std::uint8_t info = 0xAB;
inline constexpr std::uint8_t returnvalue = 0xAC;
inline constexpr std::uint8_t loginack = 0xAD;
inline constexpr std::uint8_t featureextack = 0xAE;
inline constexpr std::uint8_t row = 0xD1;
inline constexpr std::uint8_t nbcrow = 0xD2;
inline constexpr std::uint8_t envchange = 0xE3;
inline constexpr std::uint8_t sessionstate = 0xE4;
inline constexpr std::uint8_t sspi = 0xED;
inline constexpr std::uint8_t fedauthinfo = 0xEE;
inline constexpr std::uint8_t done = 0xFD;
inline constexpr std::uint8_t doneproc = 0xFE;
inline constexpr std::uint8_t doneinproc = 0xFF;
} // namespace token

namespace done_status {
inline constexpr std::uint16_t final = 0x00;
inline constexpr std::uint16_t more = 0x01;
inline constexpr std::uint16_t error = 0x02;
inline constexpr std::uint16_t inxact = 0x04;
inline constexpr std::uint16_t count = 0x10;
inline constexpr std::uint16_t attention = 0x20;
inline constexpr std::uint16_t srverror = 0x100;
} // namespace done_status

namespace envchange_type {
inline constexpr std::uint8_t database = 1;
inline constexpr std::uint8_t language = 2;
inline constexpr std::uint8_t charset = 3; // TDS 7.0 only
inline constexpr std::uint8_t packet_size = 4;
inline constexpr std::uint8_t unicode_locale = 5;     // TDS 7.0 only
inline constexpr std::uint8_t unicode_comparison = 6; // TDS 7.0 only
inline constexpr std::uint8_t collation = 7;
inline constexpr std::uint8_t reset_ack = 18;
inline constexpr std::uint8_t routing = 20;
} // namespace envchange_type

// TDS versions as a LOGIN7 carries them (client to server numbering). Their
// numeric order is the order of the protocol's revisions, so "before 7.2"
// is a comparison.
namespace tds_version {
inline constexpr std::uint32_t v7_0 = 0x70000000;      // SQL Server 7.0
inline constexpr std::uint32_t v7_1 = 0x71000000;      // SQL Server 2000
inline constexpr std::uint32_t v7_1_rev1 = 0x71000001; // SQL Server 2000 SP1
inline constexpr std::uint32_t v7_2 = 0x72090002;      // 2005
inline constexpr std::uint32_t v7_3a = 0x730A0003;     // 2008
inline constexpr std::uint32_t v7_3b = 0x730B0003;     // 2008 R2
inline constexpr std::uint32_t v7_4 = 0x74000004;      // 2012 and later
} // namespace tds_version

// The version the server speaks with a client whose LOGIN7 asked for
// `requested`: the highest known one not above it, 7.4 for anything newer
// (TDS 8.0 connections carry 7.4 token streams) or unrecognisable.
std::uint32_t negotiate_tds_version(std::uint32_t requested);
// What LOGINACK says for a negotiated version. 7.0 and 7.1 are numbered
// differently in that direction ([MS-TDS] 2.2.7.14, note 69): 0x07000000
// and 0x07010000; from 7.1 Rev 1 on both directions use the same value.
std::uint32_t loginack_tds_version(std::uint32_t negotiated);
// "7.0", "7.1 Rev 1", "7.4"... for log lines; hex for anything else.
std::string tds_version_name(std::uint32_t version);

// Current-command values for DONE tokens.
namespace curcmd {
inline constexpr std::uint16_t none = 0;
inline constexpr std::uint16_t select = 0xC1;
inline constexpr std::uint16_t execute = 0xE0;
} // namespace curcmd

// SQL_Latin1_General_CP1_CI_AS (LCID 1033, sort id 52) as SQL Server 2022
// announces it in the login reply [cap].
inline constexpr std::uint8_t kDefaultCollation[5] = {0x09, 0x04, 0xD0, 0x00, 0x34};

// Column types the lab server returns.
enum class ColumnType { int16, int32, bigint, nvarchar };

struct Column {
	std::string name;
	ColumnType type = ColumnType::int32;
};

using Value = std::variant<std::monostate, std::int64_t, std::string>; // monostate = NULL

struct Message16 { // INFO/ERROR contents
	std::uint32_t number = 0;
	std::uint8_t state = 0;
	std::uint8_t severity = 0;
	std::string text;
	std::string server;
	std::string procedure;
	std::uint32_t line = 0;
};

// Appends tokens to a tabular-result payload, laid out as the negotiated TDS
// version has them: before 7.2, DONE row counts are 4 bytes, UserType 2
// bytes and INFO/ERROR line numbers 2 bytes; TDS 7.0 knows no collations
// (no COLLATION in TYPE_INFO) and no bigint (sent as numeric(19,0), as SQL
// Server does for such clients).
class TokenWriter {
public:
	explicit TokenWriter(std::uint32_t negotiated = tds_version::v7_4) : version_(negotiated) {}
	std::uint32_t version() const { return version_; }
	Bytes take() { return out_.take(); }
	std::size_t size() const { return out_.size(); }

	void envchange(std::uint8_t type, std::string_view new_value, std::string_view old_value);
	void envchange_collation(ByteView new_collation);
	void envchange_routing(std::string_view host, std::uint16_t port);
	void envchange_reset_ack();
	void info(const Message16& m) { message(token::info, m); }
	void error(const Message16& m) { message(token::error, m); }
	void loginack(std::uint32_t ack_version, std::string_view prog_name, std::uint8_t major, std::uint8_t minor,
		      std::uint16_t build);
	// Acknowledges features; each entry is (feature id, data).
	void featureextack(const std::vector<std::pair<std::uint8_t, Bytes>>& acks);
	void sspi(ByteView blob);
	void done(std::uint8_t which, std::uint16_t status, std::uint16_t cmd, std::uint64_t rows);
	void returnstatus(std::int32_t value);
	void returnvalue_int(std::string_view name, std::uint16_t ordinal, std::int32_t value);
	void colmetadata(const std::vector<Column>& columns);
	void row(const std::vector<Column>& columns, const std::vector<Value>& values);

private:
	void message(std::uint8_t tok, const Message16& m);
	void user_type();
	bool wide_fields() const { return version_ >= tds_version::v7_2; }
	bool has_collations() const { return version_ >= tds_version::v7_1; }
	ByteWriter out_;
	std::uint32_t version_;
};

// What a client learns from one response message.
struct ResponseSummary {
	bool login_ack = false;
	std::uint32_t tds_version = 0;
	std::vector<Message16> errors;
	std::vector<Message16> infos;
	std::uint64_t rows = 0;
	std::uint64_t done_row_count = 0;
	bool attention_ack = false;
	bool final_done = false; // a DONE without the MORE bit ended the stream
	std::optional<std::uint32_t> packet_size;
	std::optional<std::pair<std::string, std::uint16_t>> routing;
	Bytes sspi;
	std::vector<std::vector<Value>> first_rows; // kept up to a small limit
};

// Walks a token stream written for `version` (the negotiated one, as
// TokenWriter takes it). Knows the column types the lab server sends plus
// the common fixed and variable-length ones; throws WireError on anything
// else.
ResponseSummary read_response(ByteView payload, std::size_t keep_rows = 16, std::uint32_t version = tds_version::v7_4);

} // namespace tdslab
