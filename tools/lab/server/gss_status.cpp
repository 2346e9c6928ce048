// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "gss_status.h"

#include <gssapi/gssapi.h>

namespace tdslab {

std::string gss_status_text(std::uint32_t major, std::uint32_t minor)
{
	std::string text;
	auto append = [&](OM_uint32 code, int type) {
		OM_uint32 more = 0;
		do {
			OM_uint32 ignored = 0;
			gss_buffer_desc part{0, nullptr};
			if (gss_display_status(&ignored, code, type, GSS_C_NO_OID, &more, &part) != GSS_S_COMPLETE)
				break;
			if (!text.empty())
				text += ": ";
			text.append(static_cast<const char*>(part.value), part.length);
			gss_release_buffer(&ignored, &part);
		} while (more != 0);
	};
	append(major, GSS_C_GSS_CODE);
	if (minor != 0)
		append(minor, GSS_C_MECH_CODE);
	return text;
}

} // namespace tdslab
