// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// GSS-API's words for a status pair, shared by the lab server's acceptor
// and the load client's initiator.
#ifndef TDSLAB_GSS_STATUS_H
#define TDSLAB_GSS_STATUS_H

#include <cstdint>
#include <string>

namespace tdslab {

// The major code's text, then the mechanism's minor code's (where "wrong
// principal", "clock skew" or "no credentials" shows), joined by ": ".
std::string gss_status_text(std::uint32_t major, std::uint32_t minor);

} // namespace tdslab

#endif
