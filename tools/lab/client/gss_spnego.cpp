// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "gss_spnego.h"

#include "gss_status.h"

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>

#include <stdexcept>

namespace tdslab {

namespace {

// 1.3.6.1.5.5.2 and Microsoft's NTLMSSP, 1.3.6.1.4.1.311.2.2.10
gss_OID_desc spnego_oid = {6, const_cast<char*>("\x2b\x06\x01\x05\x05\x02")};
gss_OID_desc ntlmssp_oid = {10, const_cast<char*>("\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a")};

[[noreturn]] void fail(const std::string& what, OM_uint32 major, OM_uint32 minor)
{
	throw std::runtime_error(what + ": " + gss_status_text(major, minor));
}

} // namespace

struct GssSpnegoInitiator::Impl {
	gss_name_t target = GSS_C_NO_NAME;
	gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
	gss_ctx_id_t context = GSS_C_NO_CONTEXT;

	~Impl()
	{
		OM_uint32 minor = 0;
		if (context != GSS_C_NO_CONTEXT)
			gss_delete_sec_context(&minor, &context, GSS_C_NO_BUFFER);
		if (cred != GSS_C_NO_CREDENTIAL)
			gss_release_cred(&minor, &cred);
		if (target != GSS_C_NO_NAME)
			gss_release_name(&minor, &target);
	}
};

GssSpnegoInitiator::GssSpnegoInitiator(const std::string& service) : impl_(std::make_unique<Impl>())
{
	OM_uint32 minor = 0;
	gss_buffer_desc name{service.size(), const_cast<char*>(service.data())};
	OM_uint32 major = gss_import_name(&minor, &name, GSS_C_NT_HOSTBASED_SERVICE, &impl_->target);
	if (GSS_ERROR(major))
		fail("service name '" + service + "'", major, minor);
	gss_OID_set_desc spnego = {1, &spnego_oid};
	major = gss_acquire_cred(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, &spnego, GSS_C_INITIATE, &impl_->cred,
				 nullptr, nullptr);
	if (GSS_ERROR(major))
		fail("no SPNEGO credentials (is gss-ntlmssp installed and NTLM_USER_FILE set?)", major, minor);
	// SPNEGO offers NTLM only, as a client without a Kerberos ticket does
	gss_OID_set_desc ntlm = {1, &ntlmssp_oid};
	major = gss_set_neg_mechs(&minor, impl_->cred, &ntlm);
	if (GSS_ERROR(major))
		fail("SPNEGO cannot offer NTLM (is gss-ntlmssp installed?)", major, minor);
}

GssSpnegoInitiator::~GssSpnegoInitiator() = default;

Bytes GssSpnegoInitiator::step(ByteView from_server)
{
	OM_uint32 minor = 0;
	gss_buffer_desc in{from_server.size(), const_cast<std::uint8_t*>(from_server.data())};
	gss_buffer_desc out{0, nullptr};
	OM_uint32 major =
		gss_init_sec_context(&minor, impl_->cred, &impl_->context, impl_->target, &spnego_oid,
				     GSS_C_MUTUAL_FLAG | GSS_C_INTEG_FLAG, GSS_C_INDEFINITE, GSS_C_NO_CHANNEL_BINDINGS,
				     from_server.empty() ? GSS_C_NO_BUFFER : &in, nullptr, &out, nullptr, nullptr);
	if (GSS_ERROR(major))
		fail("SPNEGO", major, minor);
	const auto* p = static_cast<const std::uint8_t*>(out.value);
	Bytes token(p, p + out.length);
	gss_release_buffer(&minor, &out);
	return token;
}

} // namespace tdslab
