// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The lab's "database": a handful of deterministic statements, so tests and
// the demo know exactly which result set each request produces.
//
//   SELECT <expr>[ [AS] name], ...     one row; <expr> is an integer literal,
//                                      'text' / N'text', NULL, @@VERSION,
//                                      @@SPID, @@SERVERNAME, DB_NAME(),
//                                      SUSER_NAME(), SYSTEM_USER, ... (the
//                                      session facts drivers ask for after
//                                      login), SERVERPROPERTY('name'),
//                                      CAST(<expr> AS type),
//                                      CONVERT(type, <expr>), or @name, a
//                                      parameter of the RPC (sp_executesql /
//                                      sp_prepexec)
//   SELECT n FROM rows(N)              N rows, one int column n = 1..N
//   SELECT * FROM rows(N)              same (N up to 1,000,000)
//   WAITFOR DELAY 'hh:mm:ss[.fff]'     answers after the delay (cancellable
//                                      with an attention)
//   RAISERROR('text', ...) / THROW ... ERROR 50000, class 16
//   USE <db>                           ENVCHANGE database
//   [EXEC] sp_server_info [id]         the catalog procedures ODBC drivers
//   [EXEC] sp_datatype_info[_100] ...  call after login, with SQL Server's
//                                      columns
//   anything else (SET, BEGIN TRAN...) DONE without a row count
//
// Statements are separated by ';', or need none, as in T-SQL: after a
// SELECT, SET or USE, a SELECT, SET, USE or EXEC starts the next one ("set
// textsize 64512 select @@spid", as FreeTDS sends it), but consecutive SETs
// stay together. Keywords are case-insensitive.
#pragma once

#include <chrono>
#include <map>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tds_tokens.h"

namespace tdslab {

struct SessionFacts {
	std::uint16_t spid = 0;
	std::string user;
	std::string database = "master";
	std::string server_name = "TDSLAB";
	std::string version_text;
	std::uint8_t version_major = 16; // the server's version (--server-version)
	std::uint8_t version_minor = 0;
	std::uint16_t version_build = 1000;
	std::string app_name;  // from LOGIN7, for APP_NAME()
	std::string host_name; // from LOGIN7, for HOST_NAME()
	// Parameters of the RPC being run (names with '@', lower case).
	std::map<std::string, Value> params;
};

struct StatementResult {
	std::vector<Column> columns;	      // empty: no result set
	std::vector<std::vector<Value>> rows; // for SELECT with literal values
	std::uint64_t generated_rows = 0;     // rows(N): produced on the fly
	std::optional<Message16> error;
	std::optional<std::string> new_database;
	std::chrono::milliseconds delay{0};
	std::uint16_t cmd = curcmd::none;
	bool count_valid = false;
};

std::vector<StatementResult> run_batch(std::string_view sql, const SessionFacts& session);

// A system procedure the lab answers (sp_server_info, sp_datatype_info,
// sp_datatype_info_100; the name may be qualified, any case) run with these
// arguments, as an RPC names it; nullopt for any other procedure.
std::optional<StatementResult> run_procedure(std::string_view name, const std::vector<Value>& args,
					     const SessionFacts& session);

// Splits on ';' outside quotes, and where a statement without one ends (see
// above); drops empty statements.
std::vector<std::string> split_statements(std::string_view sql);

} // namespace tdslab
