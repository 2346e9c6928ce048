// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "tds_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "gss_spnego.h"
#include "ntlm.h"

namespace tdslab {

std::optional<ClientEncryption> parse_client_encryption(std::string_view s)
{
	if (s == "off")
		return ClientEncryption::off;
	if (s == "on")
		return ClientEncryption::on;
	if (s == "not-supported" || s == "none")
		return ClientEncryption::not_supported;
	if (s == "strict")
		return ClientEncryption::strict;
	return std::nullopt;
}

namespace {

Bytes gss_step(GssSpnegoInitiator& gss, ByteView from_server)
{
	try {
		return gss.step(from_server);
	} catch (const std::exception& e) {
		throw ClientError(e.what());
	}
}

} // namespace

TdsClient::TdsClient(ClientOptions options) : opt_(std::move(options)) {}

TdsClient::~TdsClient()
{
	if (fd_ >= 0)
		::close(fd_);
}

void TdsClient::tcp_connect()
{
	addrinfo hints{};
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	addrinfo* res = nullptr;
	std::string port = std::to_string(opt_.port);
	if (int rc = getaddrinfo(opt_.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
		throw ClientError("resolve " + opt_.host + ": " + gai_strerror(rc));
	}
	std::string last = "no address";
	for (addrinfo* a = res; a; a = a->ai_next) {
		int fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			continue;
		int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
		if (rc != 0 && errno == EINPROGRESS) {
			pollfd p{fd, POLLOUT, 0};
			auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
				deadline_ - std::chrono::steady_clock::now());
			if (::poll(&p, 1, static_cast<int>(std::max<long long>(left.count(), 0))) == 1) {
				int err = 0;
				socklen_t len = sizeof err;
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
				rc = err == 0 ? 0 : -1;
				errno = err;
			} else {
				errno = ETIMEDOUT;
			}
		}
		if (rc == 0) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			fd_ = fd;
			freeaddrinfo(res);
			return;
		}
		last = std::strerror(errno);
		::close(fd);
	}
	freeaddrinfo(res);
	throw ClientError("connect " + opt_.host + ":" + port + ": " + last);
}

void TdsClient::send_bytes(ByteView data)
{
	std::size_t off = 0;
	while (off < data.size()) {
		ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += static_cast<std::size_t>(n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			pollfd p{fd_, POLLOUT, 0};
			auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
				deadline_ - std::chrono::steady_clock::now());
			if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1)
				throw ClientError("send timed out");
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		throw ClientError(std::string("send: ") + std::strerror(errno));
	}
}

void TdsClient::send_plain(ByteView data)
{
	if (tls_out_) {
		tls_->write_plaintext(data);
		Bytes c = tls_->take_ciphertext();
		send_bytes(c);
	} else {
		send_bytes(data);
	}
}

void TdsClient::send_message(std::uint8_t type, ByteView payload)
{
	Bytes packets = packetize(type, payload, packet_size_);
	if (!mars_) {
		send_plain(packets);
		return;
	}
	// One TDS packet per SMP DATA frame; wait for window when it is closed.
	MarsSession& s = sessions_.at(next_sid_);
	ByteReader r(packets);
	while (r.remaining() > 0) {
		PacketHeader h = decode_header(ByteView(packets).subspan(r.position(), kHeaderSize));
		auto one = r.bytes(h.length);
		s.smp.queue_packet(Bytes(one.begin(), one.end()));
	}
	for (;;) {
		Bytes frames = s.smp.drain();
		if (!frames.empty())
			send_plain(frames);
		if (!s.smp.has_queued())
			return;
		// Window closed: read until the server's ACK opens it.
		auto f = smp_frames_.next();
		if (!f) {
			read_more();
			continue;
		}
		handle_frame(std::move(*f));
	}
}

void TdsClient::handle_frame(SmpFrame&& f)
{
	auto it = sessions_.find(f.header.sid);
	if (it == sessions_.end())
		throw ClientError("SMP frame for unknown session " + std::to_string(f.header.sid));
	MarsSession& s = it->second;
	s.smp.note_peer_window(f.header.window);
	if (f.header.flags == smp_flag::data) {
		s.smp.accept_data(f.header);
		s.packets.feed(f.payload);
		Bytes ack = s.smp.ack_if_needed();
		if (!ack.empty())
			send_plain(ack);
	} else if (f.header.flags == smp_flag::fin) {
		throw ClientError("server closed MARS session " + std::to_string(f.header.sid));
	}
}

Message TdsClient::read_session_message(MarsSession& s)
{
	for (;;) {
		while (auto p = s.packets.next()) {
			if (auto m = s.assembler.add(std::move(*p)))
				return std::move(*m);
		}
		auto f = smp_frames_.next();
		if (!f) {
			read_more();
			continue;
		}
		handle_frame(std::move(*f));
	}
}

void TdsClient::read_more()
{
	std::uint8_t buf[65536];
	for (;;) {
		auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ -
										  std::chrono::steady_clock::now());
		if (left.count() <= 0)
			throw ClientError("timed out waiting for the server");
		pollfd p{fd_, POLLIN, 0};
		int pr = ::poll(&p, 1, static_cast<int>(left.count()));
		if (pr == 0)
			throw ClientError("timed out waiting for the server");
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			throw ClientError(std::string("poll: ") + std::strerror(errno));
		}
		ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
		if (n == 0)
			throw ClientError("server closed the connection");
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			throw ClientError(std::string("recv: ") + std::strerror(errno));
		}
		ByteView got(buf, static_cast<std::size_t>(n));
		Bytes plain;
		if (tls_in_) {
			tls_->feed_ciphertext(got);
			if (!tls_->read_plaintext(plain))
				throw ClientError("server closed TLS");
			got = plain;
		}
		if (mars_)
			smp_frames_.feed(got);
		else
			packets_.feed(got);
		return;
	}
}

Message TdsClient::read_message()
{
	if (mars_)
		return read_session_message(sessions_.at(next_sid_));
	for (;;) {
		while (auto p = packets_.next()) {
			if (auto m = assembler_.add(std::move(*p)))
				return std::move(*m);
		}
		read_more();
	}
}

void TdsClient::tls_handshake_in_prelogin()
{
	tls_ctx_ = TlsContext::client(TlsFlavor::tds7, opt_.tls_ciphers);
	tls_ = std::make_unique<TlsChannel>(tls_ctx_);
	for (;;) {
		bool done = tls_->handshake();
		Bytes c = tls_->take_ciphertext();
		if (!c.empty())
			send_bytes(packetize(static_cast<std::uint8_t>(PacketType::prelogin), c, packet_size_));
		if (done)
			break;
		// The server's flights arrive as PRELOGIN packets, possibly split.
		std::optional<Packet> p;
		while (!(p = packets_.next()))
			read_more();
		if (p->header.type != static_cast<std::uint8_t>(PacketType::prelogin) &&
		    p->header.type != static_cast<std::uint8_t>(PacketType::tabular_result)) {
			throw ClientError("unexpected packet during the TLS handshake");
		}
		tls_->feed_ciphertext(p->payload);
	}
}

void TdsClient::tls_handshake_strict()
{
	tls_ctx_ = TlsContext::client(TlsFlavor::strict, opt_.tls_ciphers);
	tls_ = std::make_unique<TlsChannel>(tls_ctx_);
	std::uint8_t buf[16384];
	for (;;) {
		bool done = tls_->handshake();
		Bytes c = tls_->take_ciphertext();
		if (!c.empty())
			send_bytes(c);
		if (done)
			break;
		pollfd p{fd_, POLLIN, 0};
		auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ -
										  std::chrono::steady_clock::now());
		if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1)
			throw ClientError("TLS handshake timed out");
		ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
		if (n == 0)
			throw ClientError("server closed the connection during the TLS handshake");
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			throw ClientError(std::string("recv: ") + std::strerror(errno));
		}
		tls_->feed_ciphertext(ByteView(buf, static_cast<std::size_t>(n)));
	}
	tls_in_ = tls_out_ = true;
}

void TdsClient::connect_and_login()
{
	deadline_ = std::chrono::steady_clock::now() + opt_.timeout;
	tcp_connect();
	if (opt_.encryption == ClientEncryption::strict)
		tls_handshake_strict();

	std::uint8_t enc = 0;
	switch (opt_.encryption) {
	case ClientEncryption::off: enc = static_cast<std::uint8_t>(Encryption::off); break;
	case ClientEncryption::on: enc = static_cast<std::uint8_t>(Encryption::on); break;
	case ClientEncryption::not_supported:
	case ClientEncryption::strict: enc = static_cast<std::uint8_t>(Encryption::not_supported); break;
	}
	std::vector<PreloginOption> options = {
		{prelogin_token::version, {1, 0, 0, 0, 0, 0}},
		{prelogin_token::encryption, {enc}},
		{prelogin_token::instopt, {0}},
		{prelogin_token::threadid, {0, 0, 0, 0}},
		{prelogin_token::mars, {static_cast<std::uint8_t>(opt_.mars ? 1 : 0)}},
	};
	send_message(static_cast<std::uint8_t>(PacketType::prelogin), encode_prelogin(options));
	Message reply = read_message();
	auto server_options = decode_prelogin(reply.payload);
	std::uint8_t server_enc = static_cast<std::uint8_t>(Encryption::not_supported);
	if (auto* e = find_option(server_options, prelogin_token::encryption); e && !e->data.empty())
		server_enc = e->data[0];

	bool login_only = false;
	if (opt_.encryption != ClientEncryption::strict) {
		bool tls = false;
		if (server_enc == static_cast<std::uint8_t>(Encryption::required) ||
		    server_enc == static_cast<std::uint8_t>(Encryption::on)) {
			if (opt_.encryption == ClientEncryption::not_supported)
				throw ClientError("server requires encryption");
			tls = true;
		} else if (server_enc == static_cast<std::uint8_t>(Encryption::off)) {
			tls = opt_.encryption != ClientEncryption::not_supported;
			login_only = tls && opt_.encryption == ClientEncryption::off;
		} else if (opt_.encryption == ClientEncryption::on) {
			throw ClientError("encryption requested but the server does not support it");
		}
		if (tls) {
			tls_handshake_in_prelogin();
			tls_in_ = tls_out_ = true;
		}
	}

	bool integrated = !opt_.ntlm_domain.empty() || !opt_.spnego_service.empty();
	std::unique_ptr<GssSpnegoInitiator> gss;
	if (!opt_.spnego_service.empty()) {
		try {
			gss = std::make_unique<GssSpnegoInitiator>(opt_.spnego_service);
		} catch (const std::exception& e) {
			throw ClientError(e.what());
		}
	}
	Login7Request req;
	req.user_name = integrated ? "" : opt_.user;
	req.password = integrated ? "" : opt_.password;
	req.server_name = opt_.host;
	req.database = opt_.database;
	req.packet_size = opt_.packet_size;
	req.features = {{0x0A, {0x01}}}; // UTF-8 support, like the common drivers
	Bytes login = encode_login7(req);
	if (integrated) {
		// Integrated login: fIntSecurity plus the first token (an NTLM
		// NEGOTIATE, bare or in SPNEGO) in the SSPI field.
		Bytes negotiate = gss ? gss_step(*gss, {}) : build_ntlm_negotiate();
		login[25] |= 0x80;
		ByteWriter w;
		w.bytes(login);
		std::size_t at = w.size();
		w.bytes(negotiate);
		Bytes full = w.take();
		full[78] = static_cast<std::uint8_t>(at);
		full[79] = static_cast<std::uint8_t>(at >> 8);
		full[80] = static_cast<std::uint8_t>(negotiate.size());
		full[81] = static_cast<std::uint8_t>(negotiate.size() >> 8);
		std::uint32_t total = static_cast<std::uint32_t>(full.size());
		for (int i = 0; i < 4; ++i)
			full[i] = static_cast<std::uint8_t>(total >> (8 * i));
		login = std::move(full);
	}
	send_message(static_cast<std::uint8_t>(PacketType::login7), login);
	if (login_only)
		tls_in_ = tls_out_ = false; // only the LOGIN7 was encrypted

	ResponseSummary s = read_response(read_message().payload);
	if (!s.sspi.empty()) {
		send_message(static_cast<std::uint8_t>(PacketType::sspi),
			     gss ? gss_step(*gss, s.sspi)
				 : build_ntlm_authenticate(opt_.ntlm_domain, opt_.user, "LOADCLIENT"));
		s = read_response(read_message().payload);
	}
	if (!s.login_ack) {
		std::string why = s.errors.empty() ? "no LOGINACK" : s.errors.front().text;
		if (!s.errors.empty())
			why = "error " + std::to_string(s.errors.front().number) + ": " + why;
		throw ClientError("login failed: " + why);
	}
	if (s.routing) {
		throw ClientError("server redirected to " + s.routing->first + ":" + std::to_string(s.routing->second));
	}
	if (s.packet_size)
		packet_size_ = *s.packet_size;
	if (opt_.mars) {
		mars_ = true;
		for (unsigned i = 0; i < std::max(1u, opt_.mars_sessions); ++i) {
			auto sid = static_cast<std::uint16_t>(i);
			auto& session = sessions_.emplace(sid, MarsSession(sid)).first->second;
			send_plain(session.smp.make_syn());
		}
	}
}

ResponseSummary TdsClient::execute(std::string_view sql)
{
	deadline_ = std::chrono::steady_clock::now() + opt_.timeout;
	send_message(static_cast<std::uint8_t>(PacketType::sql_batch), encode_sql_batch(sql));
	ResponseSummary s = read_response(read_message().payload);
	if (!s.final_done)
		throw ClientError("response without a final DONE");
	// With several MARS sessions, requests take turns.
	if (mars_)
		next_sid_ = static_cast<std::uint16_t>((next_sid_ + 1) % sessions_.size());
	return s;
}

void TdsClient::close()
{
	if (fd_ < 0)
		return;
	if (mars_) {
		try {
			deadline_ = std::chrono::steady_clock::now() + opt_.timeout;
			for (auto& [sid, session] : sessions_)
				send_plain(session.smp.make_fin());
			// Wait for the server's FINs so the close looks like a real driver's.
			std::size_t fins = 0;
			while (fins < sessions_.size()) {
				auto f = smp_frames_.next();
				if (!f) {
					read_more();
					continue;
				}
				if (f->header.flags == smp_flag::fin)
					++fins;
			}
		} catch (const std::exception&) {
			// Closing anyway.
		}
	}
	::close(fd_);
	fd_ = -1;
}

} // namespace tdslab
