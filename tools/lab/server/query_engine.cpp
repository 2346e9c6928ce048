// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "query_engine.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <tuple>

namespace tdslab {

namespace {

constexpr std::uint64_t kMaxGeneratedRows = 1000000;

// What the lab's collation bytes (kDefaultCollation: LCID 1033, sort id 52)
// are called, and SQL Server's id for it.
constexpr const char* kCollationName = "SQL_Latin1_General_CP1_CI_AS";
constexpr std::int64_t kCollationId = 872468488;

std::string trim(std::string_view s)
{
	std::size_t b = 0, e = s.size();
	while (b < e && std::isspace(static_cast<unsigned char>(s[b])))
		++b;
	while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1])))
		--e;
	return std::string(s.substr(b, e - b));
}

std::string upper(std::string_view s)
{
	std::string out(s);
	for (char& c : out)
		c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
	return out;
}

std::string lower(std::string_view s)
{
	std::string out(s);
	for (char& c : out)
		c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
	return out;
}

bool is_word_char(char c)
{
	return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '@' || c == '#' || c == '$';
}

// Whether `word` (upper case) is at `at` in `upper_text` as a whole word.
bool word_at(std::string_view upper_text, std::size_t at, std::string_view word)
{
	if (upper_text.compare(at, word.size(), word) != 0)
		return false;
	return upper_text.size() == at + word.size() ||
	       !std::isalnum(static_cast<unsigned char>(upper_text[at + word.size()]));
}

bool starts_with_word(const std::string& upper_text, std::string_view word)
{
	return word_at(upper_text, 0, word);
}

// Walks T-SQL text and tells, for each position, whether it is at the top
// level: outside 'strings', [names], "names" and parentheses.
class TopLevel {
public:
	explicit TopLevel(std::string_view text) : text_(text) {}
	// Call for i = 0, 1, ... in order; true when text[i] is at the top level.
	bool step(std::size_t i)
	{
		const char c = text_[i];
		if (close_ != 0) {
			if (c == close_)
				close_ = 0;
			return false;
		}
		if (c == '\'' || c == '"')
			close_ = c;
		else if (c == '[')
			close_ = ']';
		else if (c == '(')
			++depth_;
		else if (c == ')' && depth_ > 0)
			--depth_;
		else
			return depth_ == 0;
		return false;
	}

private:
	std::string_view text_;
	char close_ = 0;
	int depth_ = 0;
};

Message16 make_error(std::uint32_t number, std::uint8_t severity, std::string text, const SessionFacts& s)
{
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
std::string first_quoted(std::string_view s)
{
	auto open = s.find('\'');
	if (open == std::string_view::npos)
		return {};
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

// Splits a list on commas outside quotes and parentheses.
std::vector<std::string> split_list(std::string_view s)
{
	std::vector<std::string> out;
	std::string cur;
	TopLevel top(s);
	for (std::size_t i = 0; i < s.size(); ++i) {
		if (top.step(i) && s[i] == ',') {
			out.push_back(trim(cur));
			cur.clear();
			continue;
		}
		cur.push_back(s[i]);
	}
	out.push_back(trim(cur));
	return out;
}

bool is_quoted_name(std::string_view name)
{
	return name.size() >= 2 &&
	       ((name.front() == '[' && name.back() == ']') || (name.front() == '"' && name.back() == '"'));
}

// "[name]" or "\"name\"" -> name.
std::string unquote_name(std::string name)
{
	return is_quoted_name(name) ? name.substr(1, name.size() - 2) : name;
}

bool is_alias(std::string_view word)
{
	if (is_quoted_name(word))
		return true;
	if (word.empty() || std::isdigit(static_cast<unsigned char>(word[0])) || word[0] == '@')
		return false;
	return std::all_of(word.begin(), word.end(), [](char c) { return is_word_char(c); });
}

// "expr AS name", "expr name" or "expr": the alias is the last word at the
// top level, after AS or after a space that ends a complete expression.
void split_alias(const std::string& item, std::string& expr, std::string& alias)
{
	expr = item;
	alias.clear();
	std::size_t last_space = std::string::npos;
	TopLevel top(item);
	for (std::size_t i = 0; i < item.size(); ++i) {
		if (top.step(i) && std::isspace(static_cast<unsigned char>(item[i])))
			last_space = i;
	}
	if (last_space == std::string::npos)
		return;
	std::string head = trim(item.substr(0, last_space));
	std::string tail = trim(item.substr(last_space + 1));
	if (!is_alias(tail) || head.empty())
		return;
	std::string uhead = upper(head);
	if (uhead.size() > 3 && uhead.compare(uhead.size() - 2, 2, "AS") == 0 &&
	    std::isspace(static_cast<unsigned char>(uhead[uhead.size() - 3]))) {
		head = trim(head.substr(0, head.size() - 2));
	} else if (!is_word_char(head.back()) && head.back() != ')' && head.back() != '\'' && head.back() != ']') {
		return; // "a + b": the tail is an operand, not a name
	}
	if (head.empty())
		return;
	expr = head;
	alias = unquote_name(tail);
}

// "NAME(args)" at the top level: the upper-case name and the argument text.
bool function_call(const std::string& expr, std::string& name, std::string& args)
{
	auto open = expr.find('(');
	if (open == std::string::npos || open == 0 || expr.back() != ')')
		return false;
	name = upper(trim(expr.substr(0, open)));
	if (!std::all_of(name.begin(), name.end(), [](char c) { return is_word_char(c) || c == '.'; }))
		return false;
	args = trim(expr.substr(open + 1, expr.size() - open - 2));
	return true;
}

std::optional<std::int64_t> parse_integer(std::string_view text)
{
	std::string t = trim(text);
	if (!t.empty() && t[0] == '+')
		t.erase(0, 1);
	std::int64_t n = 0;
	auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
	if (ec != std::errc() || end != t.data() + t.size() || t.empty())
		return std::nullopt;
	return n;
}

ColumnType integer_column(std::int64_t n)
{
	return (n > INT32_MAX || n < INT32_MIN) ? ColumnType::bigint : ColumnType::int32;
}

std::string product_version(const SessionFacts& s)
{
	return std::to_string(s.version_major) + "." + std::to_string(s.version_minor) + "." +
	       std::to_string(s.version_build) + ".0";
}

// SERVERPROPERTY: the properties drivers and tools read, with a SQL Server
// 2022 Developer Edition's values (strings as nvarchar, numbers as int; the
// real function returns sql_variant, which TDS 7.0 and 7.1 clients do not
// know). An unknown name gives NULL, as on a real server.
void server_property(const std::string& name, const SessionFacts& s, Column& col, Value& val)
{
	const std::string p = upper(name);
	auto text = [&](std::string v) {
		col.type = ColumnType::nvarchar;
		val = std::move(v);
	};
	auto number = [&](std::int64_t v) {
		col.type = ColumnType::int32;
		val = v;
	};
	if (p == "PRODUCTVERSION")
		text(product_version(s));
	else if (p == "PRODUCTMAJORVERSION")
		text(std::to_string(s.version_major));
	else if (p == "PRODUCTMINORVERSION")
		text(std::to_string(s.version_minor));
	else if (p == "PRODUCTBUILD")
		text(std::to_string(s.version_build));
	else if (p == "PRODUCTLEVEL")
		text("RTM");
	else if (p == "EDITION")
		text("Developer Edition (64-bit)");
	else if (p == "EDITIONID")
		number(-2145844348);
	else if (p == "ENGINEEDITION")
		number(3); // Enterprise, Developer
	else if (p == "SERVERNAME" || p == "MACHINENAME" || p == "COMPUTERNAMEPHYSICALNETBIOS")
		text(s.server_name);
	else if (p == "COLLATION")
		text(kCollationName);
	else if (p == "COLLATIONID")
		number(kCollationId);
	else if (p == "LCID")
		number(1033);
	else if (p == "SQLCHARSET")
		number(1);
	else if (p == "SQLCHARSETNAME")
		text("iso_1");
	else if (p == "SQLSORTORDER")
		number(52);
	else if (p == "SQLSORTORDERNAME")
		text("nocase_iso");
	else if (p == "PROCESSID")
		number(4242);
	else if (p == "ISXTPSUPPORTED")
		number(1);
	else if (p == "ISCLUSTERED" || p == "ISHADRENABLED" || p == "ISFULLTEXTINSTALLED" ||
		 p == "ISINTEGRATEDSECURITYONLY" || p == "ISSINGLEUSER" || p == "ISLOCALDB" ||
		 p == "ISPOLYBASEINSTALLED" || p == "ISADVANCEDANALYTICSINSTALLED")
		number(0);
	else {
		col.type = ColumnType::nvarchar; // InstanceName (default instance) and unknown names
		val = std::monostate{};
	}
}

bool eval_expr(const std::string& expr, const SessionFacts& s, Column& col, Value& val);

// CAST(<expr> AS type) / CONVERT(type, <expr>[, style]) to the integer or
// character types; false for other targets or values that do not convert.
bool convert_to(const std::string& type, const std::string& inner, const SessionFacts& s, Column& col, Value& val)
{
	if (!eval_expr(inner, s, col, val))
		return false;
	std::string t = upper(trim(type));
	t = t.substr(0, t.find('('));
	t = trim(t);
	if (t == "INT" || t == "BIGINT" || t == "SMALLINT" || t == "TINYINT" || t == "BIT") {
		if (const auto* text = std::get_if<std::string>(&val)) {
			auto n = parse_integer(*text);
			if (!n)
				return false;
			val = *n;
		}
		col.type = t == "BIGINT" ? ColumnType::bigint : ColumnType::int32;
		return true;
	}
	if (t == "VARCHAR" || t == "NVARCHAR" || t == "CHAR" || t == "NCHAR" || t == "SYSNAME" || t == "SQL_VARIANT") {
		if (const auto* n = std::get_if<std::int64_t>(&val))
			val = std::to_string(*n);
		col.type = ColumnType::nvarchar;
		return true;
	}
	return false;
}

bool eval_function(const std::string& name, const std::string& args, const SessionFacts& s, Column& col, Value& val)
{
	if (name == "SERVERPROPERTY") {
		server_property(first_quoted(args), s, col, val);
		return true;
	}
	if (name == "CAST") {
		std::string uargs = upper(args);
		std::size_t as = std::string::npos;
		TopLevel top(args);
		for (std::size_t i = 0; i + 4 <= args.size(); ++i) {
			if (top.step(i) && std::isspace(static_cast<unsigned char>(args[i])) &&
			    uargs.compare(i + 1, 2, "AS") == 0 && i + 3 < args.size() &&
			    std::isspace(static_cast<unsigned char>(args[i + 3]))) {
				as = i;
			}
		}
		if (as == std::string::npos)
			return false;
		return convert_to(args.substr(as + 4), trim(args.substr(0, as)), s, col, val);
	}
	if (name == "CONVERT") {
		auto parts = split_list(args);
		if (parts.size() < 2)
			return false;
		return convert_to(parts[0], parts[1], s, col, val);
	}
	if (!args.empty())
		return false;
	col.type = ColumnType::nvarchar;
	if (name == "DB_NAME")
		val = s.database;
	else if (name == "SUSER_NAME" || name == "SUSER_SNAME" || name == "USER_NAME" || name == "ORIGINAL_LOGIN")
		val = s.user;
	else if (name == "SCHEMA_NAME")
		val = std::string("dbo");
	else if (name == "APP_NAME")
		val = s.app_name;
	else if (name == "HOST_NAME")
		val = s.host_name;
	else if (name == "SCOPE_IDENTITY") {
		col.type = ColumnType::int32; // nothing was inserted
		val = std::monostate{};
	} else {
		return false;
	}
	return true;
}

// @@ variables a session can read, with a fresh session's values.
bool eval_global(const std::string& name, const SessionFacts& s, Column& col, Value& val)
{
	col.type = ColumnType::nvarchar;
	if (name == "@@VERSION")
		val = s.version_text;
	else if (name == "@@SERVERNAME")
		val = s.server_name;
	else if (name == "@@SERVICENAME")
		val = std::string("MSSQLSERVER");
	else if (name == "@@LANGUAGE")
		val = std::string("us_english");
	else {
		col.type = ColumnType::int32;
		if (name == "@@SPID")
			val = static_cast<std::int64_t>(s.spid);
		else if (name == "@@TRANCOUNT" || name == "@@ROWCOUNT" || name == "@@ERROR")
			val = std::int64_t{0};
		else if (name == "@@MAX_PRECISION")
			val = std::int64_t{38};
		else if (name == "@@DATEFIRST")
			val = std::int64_t{7};
		else if (name == "@@LOCK_TIMEOUT")
			val = std::int64_t{-1};
		else if (name == "@@TEXTSIZE")
			val = std::int64_t{2147483647};
		else if (name == "@@IDENTITY")
			val = std::monostate{};
		else if (name == "@@MICROSOFTVERSION") {
			// major << 24 | minor << 16 | build: what tools compare versions with.
			val = static_cast<std::int64_t>((std::uint32_t{s.version_major} << 24) |
							(std::uint32_t{s.version_minor} << 16) | s.version_build);
		} else {
			return false;
		}
	}
	return true;
}

bool eval_expr(const std::string& raw, const SessionFacts& s, Column& col, Value& val)
{
	std::string expr = trim(raw);
	if (expr.size() >= 2 && expr.front() == '(' && expr.back() == ')') {
		return eval_expr(expr.substr(1, expr.size() - 2), s, col, val);
	}
	std::string ue = upper(expr);
	if (auto n = parse_integer(expr)) {
		col.type = integer_column(*n);
		val = *n;
		return true;
	}
	if ((expr.size() >= 2 && expr.front() == '\'' && expr.back() == '\'') ||
	    (expr.size() >= 3 && (expr[0] == 'N' || expr[0] == 'n') && expr[1] == '\'' && expr.back() == '\'')) {
		col.type = ColumnType::nvarchar;
		val = first_quoted(expr);
		return true;
	}
	if (ue == "NULL") {
		col.type = ColumnType::int32;
		val = std::monostate{};
		return true;
	}
	if (ue.size() > 1 && ue[0] == '@' && ue[1] != '@') {
		auto it = s.params.find(lower(expr));
		if (it == s.params.end())
			return false;
		val = it->second;
		col.type = std::holds_alternative<std::int64_t>(val) ? ColumnType::bigint : ColumnType::nvarchar;
		return true;
	}
	if (ue.rfind("@@", 0) == 0)
		return eval_global(ue, s, col, val);
	if (ue == "SYSTEM_USER" || ue == "CURRENT_USER" || ue == "SESSION_USER") {
		col.type = ColumnType::nvarchar;
		val = s.user;
		return true;
	}
	std::string name, args;
	if (function_call(expr, name, args))
		return eval_function(name, args, s, col, val);
	return false;
}

// One select-list item: expression plus optional alias.
bool eval_item(const std::string& item, const SessionFacts& s, Column& col, Value& val)
{
	std::string expr, alias;
	split_alias(item, expr, alias);
	col.name = alias;
	return eval_expr(expr, s, col, val);
}

// "rows(N)" after FROM.
std::optional<std::uint64_t> rows_source(const std::string& up_from)
{
	std::string t = trim(up_from);
	if (t.rfind("ROWS(", 0) != 0 || t.back() != ')')
		return std::nullopt;
	std::string inner = trim(t.substr(5, t.size() - 6));
	std::uint64_t n = 0;
	auto [end, ec] = std::from_chars(inner.data(), inner.data() + inner.size(), n);
	if (ec != std::errc() || end != inner.data() + inner.size())
		return std::nullopt;
	return n;
}

std::optional<std::chrono::milliseconds> parse_waitfor(const std::string& text)
{
	std::string q = first_quoted(text); // hh:mm:ss[.fff]
	int h = 0, m = 0, sec = 0, ms = 0;
	char dot = 0;
	int fields = std::sscanf(q.c_str(), "%d:%d:%d%c%d", &h, &m, &sec, &dot, &ms);
	if (fields < 3)
		return std::nullopt;
	if (fields == 5 && dot == '.') {
		// Fractional part as written: ".5" is 500 ms, ".050" is 50 ms.
		auto frac = q.substr(q.find('.') + 1);
		while (frac.size() < 3)
			frac.push_back('0');
		ms = std::stoi(frac.substr(0, 3));
	} else {
		ms = 0;
	}
	return std::chrono::milliseconds((h * 3600L + m * 60L + sec) * 1000L + ms);
}

// ---- system procedures ----

// One row of sp_datatype_info as SQL Server 2022 answers ODBC 3 drivers
// (SQL_* type codes; -1 stands for NULL in the numeric columns).
struct TypeInfoRow {
	const char* name;
	std::int16_t data_type;
	std::int32_t precision;
	const char* prefix; // nullptr: NULL
	const char* suffix;
	const char* create_params;
	std::int16_t searchable;
	std::int16_t unsigned_attribute;
	std::int16_t money;
	std::int16_t min_scale;
	std::int16_t max_scale;
	std::int16_t sql_data_type;
	std::int16_t datetime_sub;
	std::int32_t radix;
	std::int16_t user_type;
};

// Ordered by DATA_TYPE, as SQLGetTypeInfo must return them.
constexpr std::array<TypeInfoRow, 26> kTypeInfo = {{
	{"datetimeoffset", -155, 34, "'", "'", "scale", 3, -1, 0, 0, 7, -155, 0, -1, 0},
	{"time", -154, 16, "'", "'", "scale", 3, -1, 0, 0, 7, -154, 0, -1, 0},
	{"uniqueidentifier", -11, 36, "'", "'", nullptr, 2, -1, 0, -1, -1, -11, -1, -1, 0},
	{"ntext", -10, 1073741823, "N'", "'", nullptr, 1, -1, 0, -1, -1, -10, -1, -1, 0},
	{"nvarchar", -9, 4000, "N'", "'", "max length", 3, -1, 0, -1, -1, -9, -1, -1, 0},
	{"nchar", -8, 4000, "N'", "'", "length", 3, -1, 0, -1, -1, -8, -1, -1, 0},
	{"bit", -7, 1, nullptr, nullptr, nullptr, 2, -1, 0, 0, 0, -7, -1, -1, 16},
	{"tinyint", -6, 3, nullptr, nullptr, nullptr, 2, 1, 0, 0, 0, -6, -1, 10, 5},
	{"bigint", -5, 19, nullptr, nullptr, nullptr, 2, 0, 0, 0, 0, -5, -1, 10, 0},
	{"image", -4, 2147483647, "0x", nullptr, nullptr, 0, -1, 0, -1, -1, -4, -1, -1, 20},
	{"varbinary", -3, 8000, "0x", nullptr, "max length", 2, -1, 0, -1, -1, -3, -1, -1, 4},
	{"binary", -2, 8000, "0x", nullptr, "length", 2, -1, 0, -1, -1, -2, -1, -1, 3},
	{"text", -1, 2147483647, "'", "'", nullptr, 1, -1, 0, -1, -1, -1, -1, -1, 19},
	{"char", 1, 8000, "'", "'", "length", 3, -1, 0, -1, -1, 1, -1, -1, 1},
	{"numeric", 2, 38, nullptr, nullptr, "precision,scale", 2, 0, 0, 0, 38, 2, -1, 10, 10},
	{"decimal", 3, 38, nullptr, nullptr, "precision,scale", 2, 0, 0, 0, 38, 3, -1, 10, 24},
	{"money", 3, 19, "$", nullptr, nullptr, 2, 0, 1, 4, 4, 3, -1, 10, 11},
	{"int", 4, 10, nullptr, nullptr, nullptr, 2, 0, 0, 0, 0, 4, -1, 10, 7},
	{"smallint", 5, 5, nullptr, nullptr, nullptr, 2, 0, 0, 0, 0, 5, -1, 10, 6},
	{"float", 6, 53, nullptr, nullptr, nullptr, 2, 0, 0, -1, -1, 6, -1, 2, 8},
	{"real", 7, 24, nullptr, nullptr, nullptr, 2, 0, 0, -1, -1, 7, -1, 2, 23},
	{"varchar", 12, 8000, "'", "'", "max length", 3, -1, 0, -1, -1, 12, -1, -1, 2},
	{"date", 91, 10, "'", "'", nullptr, 3, -1, 0, -1, -1, 9, 1, -1, 0},
	{"datetime2", 93, 27, "'", "'", "scale", 3, -1, 0, 0, 7, 9, 3, -1, 0},
	{"datetime", 93, 23, "'", "'", nullptr, 3, -1, 0, 3, 3, 9, 3, -1, 12},
	{"smalldatetime", 93, 16, "'", "'", nullptr, 3, -1, 0, 0, 0, 9, 3, -1, 22},
}};

Value opt_text(const char* text)
{
	return text ? Value(std::string(text)) : Value(std::monostate{});
}
Value opt_number(std::int64_t n)
{
	return n < 0 ? Value(std::monostate{}) : Value(n);
}

// sp_datatype_info [@data_type [, @ODBCVer]]: every type, or those of one
// SQL type code.
StatementResult datatype_info(const std::vector<Value>& args)
{
	StatementResult r;
	r.cmd = curcmd::select;
	r.count_valid = true;
	using C = ColumnType;
	r.columns = {{"TYPE_NAME", C::nvarchar},
		     {"DATA_TYPE", C::int16},
		     {"PRECISION", C::int32},
		     {"LITERAL_PREFIX", C::nvarchar},
		     {"LITERAL_SUFFIX", C::nvarchar},
		     {"CREATE_PARAMS", C::nvarchar},
		     {"NULLABLE", C::int16},
		     {"CASE_SENSITIVE", C::int16},
		     {"SEARCHABLE", C::int16},
		     {"UNSIGNED_ATTRIBUTE", C::int16},
		     {"MONEY", C::int16},
		     {"AUTO_INCREMENT", C::int16},
		     {"LOCAL_TYPE_NAME", C::nvarchar},
		     {"MINIMUM_SCALE", C::int16},
		     {"MAXIMUM_SCALE", C::int16},
		     {"SQL_DATA_TYPE", C::int16},
		     {"SQL_DATETIME_SUB", C::int16},
		     {"NUM_PREC_RADIX", C::int32},
		     {"INTERVAL_PRECISION", C::int16},
		     {"USERTYPE", C::int16}};
	std::optional<std::int64_t> wanted;
	if (!args.empty()) {
		if (const auto* n = std::get_if<std::int64_t>(&args[0]))
			wanted = *n;
	}
	for (const auto& t : kTypeInfo) {
		if (wanted && *wanted != 0 && *wanted != t.data_type)
			continue; // 0: SQL_ALL_TYPES
		const bool numeric = t.unsigned_attribute >= 0;
		std::vector<Value> row;
		row.reserve(r.columns.size());
		row.emplace_back(std::string(t.name));
		row.emplace_back(std::int64_t{t.data_type});
		row.emplace_back(std::int64_t{t.precision});
		row.push_back(opt_text(t.prefix));
		row.push_back(opt_text(t.suffix));
		row.push_back(opt_text(t.create_params));
		row.emplace_back(std::int64_t{1}); // NULLABLE
		row.emplace_back(std::int64_t{0}); // CASE_SENSITIVE: the collation ignores case
		row.emplace_back(std::int64_t{t.searchable});
		row.push_back(opt_number(t.unsigned_attribute));
		row.emplace_back(std::int64_t{t.money});
		row.push_back(numeric ? Value(std::int64_t{0}) : Value(std::monostate{})); // AUTO_INCREMENT
		row.emplace_back(std::string(t.name));
		row.push_back(opt_number(t.min_scale));
		row.push_back(opt_number(t.max_scale));
		row.emplace_back(std::int64_t{t.sql_data_type});
		row.push_back(opt_number(t.datetime_sub));
		row.push_back(opt_number(t.radix));
		row.emplace_back(std::monostate{}); // INTERVAL_PRECISION
		row.emplace_back(std::int64_t{t.user_type});
		r.rows.push_back(std::move(row));
	}
	return r;
}

// sp_server_info [@attribute_id]: the attributes ODBC's catalog functions
// read, with a SQL Server 2022's values.
StatementResult server_info(const std::vector<Value>& args, const SessionFacts& s)
{
	StatementResult r;
	r.cmd = curcmd::select;
	r.count_valid = true;
	r.columns = {{"attribute_id", ColumnType::int32},
		     {"attribute_name", ColumnType::nvarchar},
		     {"attribute_value", ColumnType::nvarchar}};
	char sys_version[32];
	std::snprintf(sys_version, sizeof(sys_version), "%u.%02u.%u", unsigned{s.version_major},
		      unsigned{s.version_minor}, unsigned{s.version_build});
	const std::vector<std::tuple<int, const char*, std::string>> attributes = {
		{1, "DBMS_NAME", "Microsoft SQL Server"},
		{2, "DBMS_VER", "Microsoft SQL Server 2022 - " + product_version(s)},
		{10, "OWNER_TERM", "owner"},
		{11, "TABLE_TERM", "table"},
		{12, "MAX_OWNER_NAME_LENGTH", "128"},
		{13, "TABLE_LENGTH", "128"},
		{14, "MAX_QUAL_LENGTH", "128"},
		{15, "COLUMN_LENGTH", "128"},
		{16, "IDENTIFIER_CASE", "MIXED"},
		{17, "TX_ISOLATION", "2"},
		{18, "COLLATION_SEQ",
		 std::string("charset=iso_1 sort_order=nocase_iso charset_num=1 sort_order_num=52")},
		{19, "SAVEPOINT_SUPPORT", "Y"},
		{20, "MULTI_RESULT_SETS", "Y"},
		{22, "ACCESSIBLE_TABLES", "Y"},
		{100, "USERID_LENGTH", "128"},
		{101, "QUALIFIER_TERM", "database"},
		{102, "NAMED_TRANSACTIONS", "Y"},
		{103, "SPROC_AS_LANGUAGE", "Y"},
		{104, "ACCESSIBLE_SPROC", "Y"},
		{105, "MAX_INDEX_COLS", "16"},
		{106, "RENAME_TABLE", "Y"},
		{107, "RENAME_COLUMN", "Y"},
		{108, "DROP_COLUMN", "Y"},
		{109, "INCREASE_COLUMN_LENGTH", "Y"},
		{110, "DDL_IN_TRANSACTION", "Y"},
		{111, "DESCENDING_INDEXES", "Y"},
		{112, "SP_RENAME", "Y"},
		{113, "REMOTE_SPROC", "Y"},
		{500, "SYS_SPROC_VERSION", sys_version},
	};
	std::optional<std::int64_t> wanted;
	if (!args.empty()) {
		if (const auto* n = std::get_if<std::int64_t>(&args[0]))
			wanted = *n;
	}
	for (const auto& [id, name, value] : attributes) {
		if (wanted && *wanted != id)
			continue;
		std::vector<Value> row;
		row.emplace_back(std::int64_t{id});
		row.emplace_back(std::string(name));
		row.emplace_back(value);
		r.rows.push_back(std::move(row));
	}
	return r;
}

// Arguments of an EXEC in a batch: literals, optionally "@name = value".
std::vector<Value> exec_arguments(const std::string& text)
{
	std::vector<Value> out;
	if (trim(text).empty())
		return out;
	for (std::string arg : split_list(text)) {
		if (!arg.empty() && arg[0] == '@') {
			auto eq = arg.find('=');
			if (eq != std::string::npos)
				arg = trim(arg.substr(eq + 1));
		}
		if (auto n = parse_integer(arg))
			out.push_back(*n);
		else if (upper(arg) == "NULL")
			out.push_back(std::monostate{});
		else
			out.push_back(first_quoted(arg));
	}
	return out;
}

// "[EXEC[UTE]] [db.][schema.]sp_name args" -> the procedure's result, or
// nullopt when the statement is no call the lab answers.
std::optional<StatementResult> run_exec(const std::string& stmt, bool bare, const SessionFacts& s)
{
	std::string rest = trim(stmt);
	std::string up = upper(rest);
	if (starts_with_word(up, "EXECUTE"))
		rest = trim(rest.substr(7));
	else if (starts_with_word(up, "EXEC"))
		rest = trim(rest.substr(4));
	else if (!bare)
		return std::nullopt;
	std::size_t end = 0;
	while (end < rest.size() && !std::isspace(static_cast<unsigned char>(rest[end])))
		++end;
	return run_procedure(rest.substr(0, end), exec_arguments(rest.substr(end)), s);
}

StatementResult run_statement(const std::string& stmt, bool first, const SessionFacts& s)
{
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
				r.error = make_error(
					208, 16,
					"Invalid object name or column list; the lab knows SELECT n FROM rows(N).", s);
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
		r.new_database = unquote_name(trim(stmt.substr(3)));
		return r;
	}
	// A procedure call; its name alone is enough for the first statement of
	// a batch, as FreeTDS ODBC sends "sp_datatype_info_100 12,3".
	if (auto result = run_exec(stmt, first, s))
		return *result;
	return r; // SET, BEGIN TRAN, COMMIT, other procedures...: accepted, nothing to return
}

// Where a statement with no ';' after it ends, when it starts with SET, USE
// or SELECT: at the first top-level SELECT, SET, USE or EXEC[UTE] after its
// first word (a SELECT after UNION, EXCEPT or INTERSECT [ALL] belongs to it).
// Consecutive SETs stay one statement, answered with one DONE as before.
std::size_t next_statement_at(std::string_view stmt)
{
	const std::string up = upper(stmt);
	const bool set = starts_with_word(up, "SET");
	if (!set && !starts_with_word(up, "USE") && !starts_with_word(up, "SELECT"))
		return std::string::npos;
	TopLevel top(stmt);
	std::string previous_word, word;
	for (std::size_t i = 0; i < stmt.size(); ++i) {
		const bool at_top = top.step(i);
		if (at_top && i >= 3 && std::isspace(static_cast<unsigned char>(stmt[i - 1])) &&
		    is_word_char(stmt[i])) {
			const bool set_op = previous_word == "UNION" || previous_word == "EXCEPT" ||
					    previous_word == "INTERSECT" || previous_word == "ALL";
			if (word_at(up, i, "SELECT") && (set || !set_op))
				return i;
			if (word_at(up, i, "SET") && !set)
				return i;
			for (std::string_view w : {"USE", "EXEC", "EXECUTE"}) {
				if (word_at(up, i, w))
					return i;
			}
		}
		// The last complete word, to tell "UNION SELECT" from a new statement.
		if (at_top && is_word_char(up[i])) {
			word.push_back(up[i]);
		} else if (!word.empty()) {
			previous_word = std::move(word);
			word.clear();
		}
	}
	return std::string::npos;
}

} // namespace

std::optional<StatementResult> run_procedure(std::string_view name, const std::vector<Value>& args,
					     const SessionFacts& session)
{
	std::string bare(name);
	if (auto dot = bare.rfind('.'); dot != std::string::npos)
		bare = bare.substr(dot + 1);
	bare = lower(unquote_name(bare));
	if (bare == "sp_server_info")
		return server_info(args, session);
	if (bare == "sp_datatype_info" || bare == "sp_datatype_info_90" || bare == "sp_datatype_info_100") {
		return datatype_info(args);
	}
	return std::nullopt;
}

std::vector<std::string> split_statements(std::string_view sql)
{
	std::vector<std::string> pieces;
	std::string cur;
	bool quoted = false;
	for (char c : sql) {
		if (c == '\'')
			quoted = !quoted;
		if (c == ';' && !quoted) {
			if (auto t = trim(cur); !t.empty())
				pieces.push_back(t);
			cur.clear();
			continue;
		}
		cur.push_back(c);
	}
	if (auto t = trim(cur); !t.empty())
		pieces.push_back(t);

	std::vector<std::string> out;
	for (std::string piece : pieces) {
		for (std::size_t at = next_statement_at(piece); at != std::string::npos;
		     at = next_statement_at(piece)) {
			out.push_back(trim(piece.substr(0, at)));
			piece = trim(piece.substr(at));
		}
		out.push_back(piece);
	}
	return out;
}

std::vector<StatementResult> run_batch(std::string_view sql, const SessionFacts& session)
{
	std::vector<StatementResult> results;
	for (const auto& stmt : split_statements(sql))
		results.push_back(run_statement(stmt, results.empty(), session));
	if (results.empty())
		results.emplace_back(); // an empty batch still gets its DONE
	return results;
}

} // namespace tdslab
