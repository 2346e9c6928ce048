// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Internal to the phase machine (machine*.cpp): the steps that the event
// handlers of the different subjects share.
#ifndef TDSBPF_AGGREGATOR_MACHINE_H
#define TDSBPF_AGGREGATOR_MACHINE_H

#include <span>

#include "connection.h"

namespace tdsbpf::machine {

// Moves the connection to phase p at ts (phases only move forward).
void enter(Connection& c, Phase p, uint64_t ts);
// The TCP close is over: the record is printed after a short linger.
void mark_complete(Connection& c, uint64_t ts);

// machine_login.cpp
void on_prelogin(Connection& c, const tdsbpf_prelogin& p, int dir, uint64_t ts);
void on_tls(Connection& c, const tdsbpf_tls& t, int dir, uint64_t ts, bool in_tds);
void on_login7(Connection& c, const tdsbpf_login7& l, uint64_t ts);
void on_reply(Connection& c, const tdsbpf_reply& r, const tdsbpf_tds& t, uint64_t ts);
void on_sspi(Connection& c, const tdsbpf_tds& t, uint64_t ts);
void on_ntlm(Connection& c, const tdsbpf_ntlm_event& n, uint64_t ts);
void login_started(Connection& c, uint64_t ts);
// An encrypted login's second round trip, told from its records' sizes:
// settled when the next client flight starts, or at the end.
void note_opaque_turn(Connection& c, const tdsbpf_tls& t, int dir, uint64_t ts);
void settle_opaque_second_trip(Connection& c);

// machine_texts.cpp
// An excerpt's text (names, database and language, messages); after the
// TDS event it belongs to.
void on_excerpt(Connection& c, const tdsbpf_excerpt_event& x);
// tls_posture.cpp: a ClientHello or ServerHello flight's bytes (TLS records).
// Reads a hello flight's records; true when they show the flight's end.
bool read_tls_hello(Connection& c, std::span<const uint8_t> records, int dir);
// A hello flight's excerpt (TLS_HELLO, or the server's next bytes: MORE).
void on_tls_excerpt(Connection& c, const tdsbpf_excerpt_event& x);

// machine_work.cpp
void on_tds(Connection& c, const tdsbpf_event& ev, int dir, uint64_t ts);
void on_smp(Connection& c, const tdsbpf_smp& m, int dir, uint64_t ts);
void on_done(Connection& c, uint16_t status, uint64_t rows, uint8_t flags);
// Routine requests and replies the kernel counted (TDSBPF_EV_WORK).
void on_work(Connection& c, const tdsbpf_work& w);
void note_idle_reuse(Connection& c, uint64_t ts);
void count_response(Connection& c, StreamState& st, uint64_t ts);
// An attention's DONE (status 0x20) came back.
void attention_acked(Connection& c);

} // namespace tdsbpf::machine

#endif
