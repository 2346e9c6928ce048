// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The phase machine, text side: what an excerpt (the first bytes of a
// LOGIN7 in clear, or of a reply with a LOGINACK or an ERROR) says in
// words. Every length is checked against the bytes copied; a field cut
// short keeps what arrived; a token not understood ends the walk.
#include <cstring>
#include <span>

#include "machine.h"

namespace tdsbpf::machine {

namespace {

using Bytes = std::span<const uint8_t>;

constexpr size_t kMaxChars = 256; // text kept per field (UTF-16 characters)

uint16_t le16(Bytes b, size_t at)
{
	return static_cast<uint16_t>(b[at] | (b[at + 1] << 8));
}

uint32_t le32(Bytes b, size_t at)
{
	return static_cast<uint32_t>(b[at]) | (static_cast<uint32_t>(b[at + 1]) << 8) |
	       (static_cast<uint32_t>(b[at + 2]) << 16) | (static_cast<uint32_t>(b[at + 3]) << 24);
}

// UTF-16LE text of chars characters at at, as far as the bytes go.
std::string text_at(Bytes b, size_t at, size_t chars)
{
	if (at >= b.size())
		return {};
	size_t n = std::min(chars, kMaxChars) * 2;
	n = std::min(n, b.size() - at);
	return utf16le_or_oem(b.data() + at, n, n, true);
}

// A LOGIN7 field: its offset and length in characters at at of the block.
std::string login7_field(Bytes b, size_t at)
{
	if (at + 4 > b.size())
		return {};
	return text_at(b, le16(b, at), le16(b, at + 2));
}

void read_login7(Texts& t, Bytes b)
{
	if (b.size() < 72)
		return;
	t.login7 = true;
	t.set(Texts::kHost, login7_field(b, 36));
	t.set(Texts::kUser, login7_field(b, 40));
	// 44: the password, blanked in the walk
	t.set(Texts::kApp, login7_field(b, 48));
	t.set(Texts::kServer, login7_field(b, 52));
	t.set(Texts::kLibrary, login7_field(b, 60));
	t.set(Texts::kLanguage, login7_field(b, 64));
	t.set(Texts::kDatabase, login7_field(b, 68));
}

// An ERROR or INFO token as read.
struct ServerMessage {
	Texts::Message numbers;
	std::string text, server, procedure;
};

// Keeps a message's numbers and words as the login's error or the last one.
void keep(Texts& t, bool login, const ServerMessage& m)
{
	(login ? t.login_error : t.last_error) = m.numbers;
	t.set(login ? Texts::kLoginErrorText : Texts::kLastErrorText, m.text);
	t.set(login ? Texts::kLoginErrorServer : Texts::kLastErrorServer, m.server);
	t.set(login ? Texts::kLoginErrorProc : Texts::kLastErrorProc, m.procedure);
}

// A B_VARCHAR (one byte of length in characters) at at; at moves past it.
std::string b_varchar(Bytes b, size_t& at, bool& ok)
{
	if (at >= b.size()) {
		ok = false;
		return {};
	}
	size_t chars = b[at];
	std::string s = text_at(b, at + 1, chars);
	at += 1 + 2 * chars;
	return s;
}

// An ERROR or INFO token's body (after its length).
ServerMessage read_message(Bytes m, bool tds71)
{
	ServerMessage s;
	if (m.size() < 8)
		return s;
	s.numbers.number = le32(m, 0);
	s.numbers.state = m[4];
	s.numbers.cls = m[5];
	size_t chars = le16(m, 6);
	s.text = text_at(m, 8, chars);
	size_t at = 8 + 2 * chars;
	bool ok = true;
	s.server = b_varchar(m, at, ok);
	s.procedure = b_varchar(m, at, ok);
	if (ok && at + (tds71 ? 2 : 4) <= m.size())
		s.numbers.line = tds71 ? le16(m, at) : le32(m, at);
	return s;
}

struct ReplyTexts {
	ServerMessage first_error;
	std::vector<ServerMessage> infos; // the first Texts::kLoginInfos
	std::string database, language, server_name;
	bool loginack = false;
};

ReplyTexts read_reply(Bytes b, bool tds71)
{
	ReplyTexts r;
	size_t at = 0;
	while (at < b.size()) {
		uint8_t token = b[at++];
		switch (token) {
		case 0xAA: // ERROR
		case 0xAB: // INFO
		case 0xE3: // ENVCHANGE
		case 0xAD: // LOGINACK
		case 0xED: // SSPI
		{
			if (at + 2 > b.size())
				return r;
			size_t len = le16(b, at);
			Bytes body = b.subspan(at + 2, std::min(len, b.size() - at - 2));
			if (token == 0xAA || token == 0xAB) {
				ServerMessage m = read_message(body, tds71);
				if (r.server_name.empty())
					r.server_name = m.server;
				if (token == 0xAA && !r.first_error.numbers.number)
					r.first_error = std::move(m);
				else if (token == 0xAB && r.infos.size() < Texts::kLoginInfos)
					r.infos.push_back(std::move(m));
			} else if (token == 0xE3 && !body.empty() && (body[0] == 1 || body[0] == 2)) {
				size_t v = 1;
				bool ok = true;
				std::string value = b_varchar(body, v, ok);
				(body[0] == 1 ? r.database : r.language) = value;
			} else if (token == 0xAD) {
				r.loginack = true;
			}
			at += 2 + len;
			break;
		}
		case 0xE4: // SESSIONSTATE
		case 0xEE: // FEDAUTHINFO
			if (at + 4 > b.size())
				return r;
			at += 4 + static_cast<size_t>(le32(b, at));
			break;
		case 0xAE: // FEATUREEXTACK: features until 0xFF
			while (at < b.size() && b[at] != 0xFF) {
				if (at + 5 > b.size())
					return r;
				at += 5 + static_cast<size_t>(le32(b, at + 1));
			}
			at++;
			break;
		case 0xFD: // DONE, DONEPROC, DONEINPROC
		case 0xFE:
		case 0xFF: at += tds71 ? 8 : 12; break;
		case 0x79: at += 4; break; // RETURNSTATUS
		default: return r;	   // a token whose length is not known here
		}
	}
	return r;
}

} // namespace

void on_excerpt(Connection& c, const tdsbpf_excerpt_event& x)
{
	Bytes b(x.data, std::min<size_t>(x.len, sizeof(x.data)));
	if (x.what == TDSBPF_EXCERPT_LOGIN7) {
		read_login7(c.texts.mut(), b);
		return;
	}
	if (x.what == TDSBPF_EXCERPT_TLS_HELLO || x.what == TDSBPF_EXCERPT_MORE) {
		on_tls_excerpt(c, x);
		return;
	}
	if (x.what != TDSBPF_EXCERPT_REPLY)
		return;
	ReplyTexts r = read_reply(b, x.tds71);
	uint32_t number = r.first_error.numbers.number;
	bool login_error = number && c.login.error_seen && c.login.error_number == number &&
			   !(c.texts.get() && c.texts.get()->login_error.number);
	bool last_error = !login_error && number && c.work.errors && c.work.last_error_number == number;
	if (!login_error && !last_error &&
	    !(r.loginack && (!r.database.empty() || !r.language.empty() || !r.infos.empty())) &&
	    (r.server_name.empty() || (c.texts.get() && !c.texts.get()->get(Texts::kServerName).empty())))
		return; // nothing to keep: no side structure for it
	Texts& t = c.texts.mut();
	if (!r.database.empty() && r.loginack)
		t.set(Texts::kEnvDatabase, r.database);
	if (!r.language.empty() && r.loginack)
		t.set(Texts::kEnvLanguage, r.language);
	if (r.loginack && !r.infos.empty()) {
		t.login_info.clear();
		for (size_t i = 0; i < r.infos.size(); i++) {
			t.login_info.push_back(r.infos[i].numbers);
			t.set(static_cast<Texts::Field>(Texts::kLoginInfo0 + i), r.infos[i].text);
		}
	}
	if (!r.server_name.empty() && t.get(Texts::kServerName).empty())
		t.set(Texts::kServerName, r.server_name);
	// The event before this one counted the error: the login's, or work's.
	if (login_error || last_error)
		keep(t, login_error, r.first_error);
}

} // namespace tdsbpf::machine
