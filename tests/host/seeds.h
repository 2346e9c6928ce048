// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The traces of the seed documents (shared/seeds) as event sequences, with
// their frames' times, addresses, ports and sequence numbers. Rows that the
// packet programs do not report (plain ACKs of data) are left out.
#ifndef TDSBPF_TESTS_SEEDS_H
#define TDSBPF_TESTS_SEEDS_H

#include "events_builder.h"

namespace tdsbpf::test {

// connection-open: SQL authentication, 10.10.10.10:60123 -> 10.10.10.120:1433
Trace seed_sql_login();
// connection-open: Windows (Kerberos), 10.10.10.10:49299 -> 10.10.10.20:1433
Trace seed_kerberos_login();
// connection-open: Windows (NTLM), 10.10.10.120:64444 -> 10.10.10.55:57139
Trace seed_ntlm_login();
// connection-open MARS tab and the MARS wiki: open, SMP:SYN, batches, SMP:ACK,
// up to the last response before the close (10.10.10.10:52965 -> 10.10.10.22:1433)
Trace seed_mars_open();
// The MARS close as captured on the server: SMP:FIN both ways, FIN, RST.
void seed_mars_close_server_order(Trace& t);
// The same close as captured on the client (the server's SMP:FIN after the
// client's FIN in capture order, with its earlier timestamp).
void seed_mars_close_client_order(Trace& t);
// connection-close: normal (pooled) close, 10.10.10.104:4657 -> 10.10.10.22:1433
Trace seed_normal_close();
// connection-close: non-pooled close after two batches, 10.10.10.104:4647
Trace seed_nonpooled_close(uint16_t client_port = 4647, double shift = 0);
// connection-close: idle close after keep-alives, 10.10.10.45:51708 -> 10.10.10.51:1433
Trace seed_idle_close();

} // namespace tdsbpf::test

#endif
