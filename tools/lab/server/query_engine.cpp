#include "query_engine.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace tdslab {

namespace {

constexpr std::uint64_t kMaxGeneratedRows = 1000000;

std::string trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool starts_with_word(const std::string& upper_text, std::string_view word) {
  if (upper_text.compare(0, word.size(), word) != 0) return false;
  return upper_text.size() == word.size() ||
         !std::isalnum(static_cast<unsigned char>(upper_text[word.size()]));
}

Message16 make_error(std::uint32_t number, std::uint8_t severity, std::string text, const SessionFacts& s) {
  Message16 m;
  m.number = number;
  m.state = 1;
  m.severity = severity;
  m.text = std::move(text);
  m.server = s.server_name;
  m.line = 1;
  return m;
}

// Text of the first quoted literal, or empty.
std::string first_quoted(std::string_view s) {
  auto open = s.find('\'');
  if (open == std::string_view::npos) return {};
  std::string out;
  for (std::size_t i = open + 1; i < s.size(); ++i) {
    if (s[i] == '\'') {
      if (i + 1 < s.size() && s[i + 1] == '\'') {
        out.push_back('\'');
        ++i;
        continue;
      }
      break;
    }
    out.push_back(s[i]);
  }
  return out;
}

// Splits a select list on commas outside quotes and parentheses.
std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  int depth = 0;
  for (char c : s) {
    if (c == '\'') quoted = !quoted;
    if (!quoted && c == '(') ++depth;
    if (!quoted && c == ')') --depth;
    if (!quoted && depth == 0 && c == ',') {
      out.push_back(trim(cur));
      cur.clear();
      continue;
    }
    cur.push_back(c);
  }
  out.push_back(trim(cur));
  return out;
}

// One select-list item: expression plus optional alias.
bool eval_item(const std::string& item, const SessionFacts& s, Column& col, Value& val) {
  std::string expr = item;
  std::string alias;
  // "expr AS name" or "expr name" (the alias is the last bare word after a space,
  // unless the expression is a quoted literal containing spaces).
  std::string up = upper(item);
  auto as_pos = up.rfind(" AS ");
  if (as_pos != std::string::npos && item.find('\'', as_pos) == std::string::npos) {
    expr = trim(item.substr(0, as_pos));
    alias = trim(item.substr(as_pos + 4));
  } else if (auto sp = item.rfind(' '); sp != std::string::npos && item.back() != '\'' &&
                                        item.back() != ')' && item.find('\'') == std::string::npos) {
    expr = trim(item.substr(0, sp));
    alias = trim(item.substr(sp + 1));
  }
  if (alias.size() >= 2 && (alias.front() == '[' || alias.front() == '"')) alias = alias.substr(1, alias.size() - 2);
  col.name = alias;
  std::string ue = upper(expr);

  std::int64_t number = 0;
  auto [end, ec] = std::from_chars(expr.data(), expr.data() + expr.size(), number);
  if (ec == std::errc() && end == expr.data() + expr.size()) {
    col.type = (number > INT32_MAX || number < INT32_MIN) ? ColumnType::bigint : ColumnType::int32;
    val = number;
    return true;
  }
  if ((expr.size() >= 2 && expr.front() == '\'' && expr.back() == '\'') ||
      (expr.size() >= 3 && (expr[0] == 'N' || expr[0] == 'n') && expr[1] == '\'' && expr.back() == '\'')) {
    col.type = ColumnType::nvarchar;
    val = first_quoted(expr);
    return true;
  }
  col.type = ColumnType::nvarchar;
  if (ue.size() > 1 && ue[0] == '@' && ue[1] != '@') {
    std::string key = expr;
    std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    auto it = s.params.find(key);
    if (it == s.params.end()) return false;
    val = it->second;
    col.type = std::holds_alternative<std::int64_t>(val) ? ColumnType::bigint : ColumnType::nvarchar;
    return true;
  }
  if (ue == "@@VERSION") {
    val = s.version_text;
  } else if (ue == "@@SERVERNAME") {
    val = s.server_name;
  } else if (ue == "DB_NAME()") {
    val = s.database;
  } else if (ue == "SUSER_NAME()" || ue == "SUSER_SNAME()" || ue == "SYSTEM_USER" || ue == "USER_NAME()") {
    val = s.user;
  } else if (ue == "@@SPID") {
    col.type = ColumnType::int32;
    val = static_cast<std::int64_t>(s.spid);
  } else {
    return false;
  }
  return true;
}

// "rows(N)" after FROM.
std::optional<std::uint64_t> rows_source(const std::string& up_from) {
  std::string t = trim(up_from);
  if (t.rfind("ROWS(", 0) != 0 || t.back() != ')') return std::nullopt;
  std::string inner = trim(t.substr(5, t.size() - 6));
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(inner.data(), inner.data() + inner.size(), n);
  if (ec != std::errc() || end != inner.data() + inner.size()) return std::nullopt;
  return n;
}

std::optional<std::chrono::milliseconds> parse_waitfor(const std::string& text) {
  std::string q = first_quoted(text);  // hh:mm:ss[.fff]
  int h = 0, m = 0, sec = 0, ms = 0;
  char dot = 0;
  int fields = std::sscanf(q.c_str(), "%d:%d:%d%c%d", &h, &m, &sec, &dot, &ms);
  if (fields < 3) return std::nullopt;
  if (fields == 5 && dot == '.') {
    // Fractional part as written: ".5" is 500 ms, ".050" is 50 ms.
    auto frac = q.substr(q.find('.') + 1);
    while (frac.size() < 3) frac.push_back('0');
    ms = std::stoi(frac.substr(0, 3));
  } else {
    ms = 0;
  }
  return std::chrono::milliseconds((h * 3600L + m * 60L + sec) * 1000L + ms);
}

StatementResult run_statement(const std::string& stmt, const SessionFacts& s) {
  StatementResult r;
  std::string up = upper(stmt);
  if (starts_with_word(up, "SELECT")) {
    r.cmd = curcmd::select;
    r.count_valid = true;
    std::string body = trim(stmt.substr(6));
    std::string ubody = upper(body);
    auto from = ubody.find(" FROM ");
    if (from != std::string::npos) {
      auto n = rows_source(ubody.substr(from + 6));
      std::string list = trim(ubody.substr(0, from));
      if (!n || (list != "N" && list != "*")) {
        r.count_valid = false;
        r.error = make_error(208, 16, "Invalid object name or column list; the lab knows SELECT n FROM rows(N).", s);
        return r;
      }
      r.columns = {{"n", ColumnType::int32}};
      r.generated_rows = std::min(*n, kMaxGeneratedRows);
      return r;
    }
    std::vector<Value> row;
    for (const auto& item : split_list(body)) {
      Column c;
      Value v;
      if (!eval_item(item, s, c, v)) {
        r.columns.clear();
        r.count_valid = false;
        r.error = make_error(207, 16, "Invalid column name '" + item + "'.", s);
        return r;
      }
      r.columns.push_back(c);
      row.push_back(v);
    }
    r.rows.push_back(std::move(row));
    return r;
  }
  if (starts_with_word(up, "WAITFOR")) {
    if (auto d = parse_waitfor(stmt)) {
      r.delay = *d;
    } else {
      r.error = make_error(148, 15, "Incorrect time syntax in WAITFOR.", s);
    }
    return r;
  }
  if (starts_with_word(up, "RAISERROR") || starts_with_word(up, "THROW")) {
    std::string text = first_quoted(stmt);
    r.error = make_error(50000, 16, text.empty() ? "lab error" : text, s);
    return r;
  }
  if (starts_with_word(up, "USE")) {
    std::string db = trim(stmt.substr(3));
    if (db.size() >= 2 && db.front() == '[') db = db.substr(1, db.size() - 2);
    r.new_database = db;
    return r;
  }
  return r;  // SET, BEGIN TRAN, COMMIT, ...: accepted, nothing to return
}

}  // namespace

std::vector<std::string> split_statements(std::string_view sql) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (char c : sql) {
    if (c == '\'') quoted = !quoted;
    if (c == ';' && !quoted) {
      if (auto t = trim(cur); !t.empty()) out.push_back(t);
      cur.clear();
      continue;
    }
    cur.push_back(c);
  }
  if (auto t = trim(cur); !t.empty()) out.push_back(t);
  return out;
}

std::vector<StatementResult> run_batch(std::string_view sql, const SessionFacts& session) {
  std::vector<StatementResult> results;
  for (const auto& stmt : split_statements(sql)) results.push_back(run_statement(stmt, session));
  if (results.empty()) results.emplace_back();  // an empty batch still gets its DONE
  return results;
}

}  // namespace tdslab
