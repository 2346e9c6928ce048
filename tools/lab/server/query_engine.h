// The lab's "database": a handful of deterministic statements, so tests and
// the demo know exactly which result set each request produces.
//
//   SELECT <expr>[ [AS] name], ...     one row; <expr> is an integer literal,
//                                      'text' / N'text', @@VERSION, @@SPID,
//                                      @@SERVERNAME, DB_NAME(), SUSER_NAME(),
//                                      SYSTEM_USER
//                                      or @name, a parameter of the RPC
//                                      (sp_executesql / sp_prepexec)
//   SELECT n FROM rows(N)              N rows, one int column n = 1..N
//   SELECT * FROM rows(N)              same (N up to 1,000,000)
//   WAITFOR DELAY 'hh:mm:ss[.fff]'     answers after the delay (cancellable
//                                      with an attention)
//   RAISERROR('text', ...) / THROW ... ERROR 50000, class 16
//   USE <db>                           ENVCHANGE database
//   anything else (SET, BEGIN TRAN...) DONE without a row count
//
// Statements are separated by ';'. Keywords are case-insensitive.
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
  // Parameters of the RPC being run (names with '@', lower case).
  std::map<std::string, Value> params;
};

struct StatementResult {
  std::vector<Column> columns;            // empty: no result set
  std::vector<std::vector<Value>> rows;   // for SELECT with literal values
  std::uint64_t generated_rows = 0;       // rows(N): produced on the fly
  std::optional<Message16> error;
  std::optional<std::string> new_database;
  std::chrono::milliseconds delay{0};
  std::uint16_t cmd = curcmd::none;
  bool count_valid = false;
};

std::vector<StatementResult> run_batch(std::string_view sql, const SessionFacts& session);

// Splits on ';' outside quotes; drops empty statements.
std::vector<std::string> split_statements(std::string_view sql);

}  // namespace tdslab
