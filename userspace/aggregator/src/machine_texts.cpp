// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The phase machine, text side: what an excerpt (the first bytes of a
// LOGIN7 in clear, or of a reply with a LOGINACK or an ERROR) says in
// words. Every length is checked against the bytes copied; a field cut
// short keeps what arrived; a token not understood ends the walk.
#include <algorithm>
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

// The texts of one excerpt as UTF-8, kept until the excerpt has been read:
// a LOGIN7's seven fields, or a reply's messages (each of their bytes
// read once, so 3 bytes of text for 2 of the excerpt at most). Past its
// room a text is cut, never written beyond.
class Decoded {
public:
	// UTF-16LE text of chars characters at at, as far as the bytes go.
	std::string_view text_at(Bytes b, size_t at, size_t chars)
	{
		if (at >= b.size())
			return {};
		size_t n = std::min(chars, kMaxChars) * 2;
		n = std::min({n, b.size() - at, (sizeof(buf_) - used_) / 3 * 2});
		char* o = buf_ + used_;
		size_t len = utf16le_to(o, b.data() + at, n);
		used_ += len;
		return std::string_view(o, len);
	}

private:
	char buf_[std::max<size_t>(7 * kMaxChars * 3, TDSBPF_EXCERPT_MAX / 2 * 3) + 64];
	size_t used_ = 0;
};

// A LOGIN7 field: its offset and length in characters at at of the block.
std::string_view login7_field(Decoded& d, Bytes b, size_t at)
{
	if (at + 4 > b.size())
		return {};
	return d.text_at(b, le16(b, at), le16(b, at + 2));
}

void read_login7(Texts& t, Bytes b)
{
	if (b.size() < 72)
		return;
	Decoded d;
	t.login7 = true;
	t.set(Texts::kHost, login7_field(d, b, 36));
	t.set(Texts::kUser, login7_field(d, b, 40));
	// 44: the password, blanked in the walk
	t.set(Texts::kApp, login7_field(d, b, 48));
	t.set(Texts::kServer, login7_field(d, b, 52));
	t.set(Texts::kLibrary, login7_field(d, b, 60));
	t.set(Texts::kLanguage, login7_field(d, b, 64));
	t.set(Texts::kDatabase, login7_field(d, b, 68));
}

// An ERROR or INFO token as read (its words in the excerpt's Decoded).
struct ServerMessage {
	Texts::Message numbers;
	std::string_view text, server, procedure;
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
std::string_view b_varchar(Decoded& d, Bytes b, size_t& at, bool& ok)
{
	if (at >= b.size()) {
		ok = false;
		return {};
	}
	size_t chars = b[at];
	std::string_view s = d.text_at(b, at + 1, chars);
	at += 1 + 2 * chars;
	return s;
}

// An ERROR or INFO token's body (after its length).
ServerMessage read_message(Decoded& d, Bytes m, bool tds71)
{
	ServerMessage s;
	if (m.size() < 8)
		return s;
	s.numbers.number = le32(m, 0);
	s.numbers.state = m[4];
	s.numbers.cls = m[5];
	size_t chars = le16(m, 6);
	s.text = d.text_at(m, 8, chars);
	size_t at = 8 + 2 * chars;
	bool ok = true;
	s.server = b_varchar(d, m, at, ok);
	s.procedure = b_varchar(d, m, at, ok);
	if (ok && at + (tds71 ? 2 : 4) <= m.size())
		s.numbers.line = tds71 ? le16(m, at) : le32(m, at);
	return s;
}

struct ReplyTexts {
	ServerMessage first_error;
	ServerMessage infos[Texts::kLoginInfos]; // the first ones
	size_t n_infos = 0;
	std::string_view database, language, server_name;
	bool loginack = false;
};

ReplyTexts read_reply(Decoded& d, Bytes b, bool tds71)
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
				ServerMessage m = read_message(d, body, tds71);
				if (r.server_name.empty())
					r.server_name = m.server;
				if (token == 0xAA && !r.first_error.numbers.number)
					r.first_error = m;
				else if (token == 0xAB && r.n_infos < Texts::kLoginInfos)
					r.infos[r.n_infos++] = m;
			} else if (token == 0xE3 && !body.empty() && (body[0] == 1 || body[0] == 2)) {
				size_t v = 1;
				bool ok = true;
				std::string_view value = b_varchar(d, body, v, ok);
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
	Decoded d;
	ReplyTexts r = read_reply(d, b, x.tds71);
	uint32_t number = r.first_error.numbers.number;
	bool login_error = number && c.login.error_seen && c.login.error_number == number &&
			   !(c.texts.get() && c.texts.get()->login_error.number);
	bool last_error = !login_error && number && c.work.errors && c.work.last_error_number == number;
	if (!login_error && !last_error && !(r.loginack && (!r.database.empty() || !r.language.empty() || r.n_infos)) &&
	    (r.server_name.empty() || (c.texts.get() && !c.texts.get()->get(Texts::kServerName).empty())))
		return; // nothing to keep: no side structure for it
	Texts& t = c.texts.mut();
	if (!r.database.empty() && r.loginack)
		t.set(Texts::kEnvDatabase, r.database);
	if (!r.language.empty() && r.loginack)
		t.set(Texts::kEnvLanguage, r.language);
	if (r.loginack && r.n_infos) {
		t.login_info.clear();
		for (size_t i = 0; i < r.n_infos; i++) {
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
