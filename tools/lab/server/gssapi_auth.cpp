// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "gssapi_auth.h"

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include <algorithm>
#include <array>

#include "gss_status.h"

namespace tdslab {

namespace {

// DER bodies of the mechanism OIDs a SQL Server client may start with.
constexpr std::array<std::uint8_t, 9> kKerberosOid = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02};
// 1.2.840.48018.1.2.2: Windows clients name Kerberos so inside SPNEGO, and a
// few send it as the outer mechanism too.
constexpr std::array<std::uint8_t, 9> kMsKerberosOid = {0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02};
constexpr std::array<std::uint8_t, 6> kSpnegoOid = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x02};

template <std::size_t N> bool same_oid(ByteView oid, const std::array<std::uint8_t, N>& known)
{
	return oid.size() == N && std::equal(oid.begin(), oid.end(), known.begin());
}

} // namespace

GssMechanism initial_token_mechanism(ByteView blob)
{
	// [APPLICATION 0] IMPLICIT SEQUENCE { thisMech OID, innerToken }
	if (blob.size() < 2 || blob[0] != 0x60)
		return GssMechanism::none;
	std::size_t at = 1;
	std::size_t length = blob[at++];
	if (length & 0x80) {
		std::size_t octets = length & 0x7f;
		if (octets == 0 || octets > 4 || at + octets > blob.size())
			return GssMechanism::none;
		length = 0;
		for (std::size_t i = 0; i < octets; ++i)
			length = (length << 8) | blob[at++];
	}
	if (length != blob.size() - at)
		return GssMechanism::none;
	if (at + 2 > blob.size() || blob[at] != 0x06)
		return GssMechanism::none;
	std::size_t oid_length = blob[at + 1];
	at += 2;
	if (oid_length >= 0x80 || at + oid_length > blob.size())
		return GssMechanism::none;
	ByteView oid = blob.subspan(at, oid_length);
	if (same_oid(oid, kKerberosOid) || same_oid(oid, kMsKerberosOid))
		return GssMechanism::kerberos;
	if (same_oid(oid, kSpnegoOid))
		return GssMechanism::spnego;
	return GssMechanism::none;
}

const char* gss_mechanism_name(GssMechanism m)
{
	switch (m) {
	case GssMechanism::none: return "none";
	case GssMechanism::kerberos: return "Kerberos";
	case GssMechanism::spnego: return "SPNEGO";
	}
	return "?";
}

struct GssAcceptor::Impl {
	KerberosSettings settings;
	gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
	gss_ctx_id_t context = GSS_C_NO_CONTEXT;

	~Impl()
	{
		OM_uint32 minor = 0;
		if (context != GSS_C_NO_CONTEXT)
			gss_delete_sec_context(&minor, &context, GSS_C_NO_BUFFER);
		if (cred != GSS_C_NO_CREDENTIAL)
			gss_release_cred(&minor, &cred);
	}

	// The acceptor's keys come from the configured keytab only, never from
	// the process's default one: the lab must not pick up the host's keys.
	std::string acquire()
	{
		OM_uint32 minor = 0;
		gss_name_t wanted = GSS_C_NO_NAME;
		if (!settings.principal.empty()) {
			gss_buffer_desc text{settings.principal.size(), const_cast<char*>(settings.principal.data())};
			OM_uint32 major = gss_import_name(&minor, &text, GSS_KRB5_NT_PRINCIPAL_NAME, &wanted);
			if (GSS_ERROR(major)) {
				return "principal '" + settings.principal +
				       "' is not a Kerberos name: " + gss_status_text(major, minor);
			}
		}
		gss_key_value_element_desc keytab{"keytab", settings.keytab.c_str()};
		gss_key_value_set_desc store{1, &keytab};
		// Kerberos keys first: another mechanism installed on the host (NTLM
		// through gss-ntlmssp) would make the default set's acquisition
		// succeed without them
		gss_OID_set_desc krb5{1, const_cast<gss_OID>(gss_mech_krb5)};
		OM_uint32 major = gss_acquire_cred_from(&minor, wanted, GSS_C_INDEFINITE, &krb5, GSS_C_ACCEPT, &store,
							&cred, nullptr, nullptr);
		if (!GSS_ERROR(major)) {
			OM_uint32 released = 0;
			gss_release_cred(&released, &cred);
			// then every mechanism's, so that SPNEGO-wrapped tokens are taken
			major = gss_acquire_cred_from(&minor, wanted, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, GSS_C_ACCEPT,
						      &store, &cred, nullptr, nullptr);
		}
		OM_uint32 ignored = 0;
		if (wanted != GSS_C_NO_NAME)
			gss_release_name(&ignored, &wanted);
		if (GSS_ERROR(major)) {
			cred = GSS_C_NO_CREDENTIAL;
			return "no acceptor credentials from keytab '" + settings.keytab + "'" +
			       (settings.principal.empty() ? std::string() : " for '" + settings.principal + "'") +
			       ": " + gss_status_text(major, minor);
		}
		return {};
	}
};

GssAcceptor::GssAcceptor(KerberosSettings settings) : impl_(std::make_unique<Impl>())
{
	impl_->settings = std::move(settings);
}

GssAcceptor::~GssAcceptor() = default;

GssAcceptor::Step GssAcceptor::step(ByteView token)
{
	Step result;
	if (impl_->settings.keytab.empty()) {
		result.error = "no keytab configured (--kerberos-keytab)";
		return result;
	}
	if (impl_->cred == GSS_C_NO_CREDENTIAL) {
		// A missing keytab surfaces here, only when it matters: the option
		// gives where the keys are; a failure is an answer to this login.
		result.error = impl_->acquire();
		if (!result.error.empty())
			return result;
	}

	OM_uint32 minor = 0;
	gss_buffer_desc input{token.size(), const_cast<std::uint8_t*>(token.data())};
	gss_buffer_desc output{0, nullptr};
	gss_name_t client = GSS_C_NO_NAME;
	OM_uint32 major =
		gss_accept_sec_context(&minor, &impl_->context, impl_->cred, &input, GSS_C_NO_CHANNEL_BINDINGS, &client,
				       nullptr, &output, nullptr, nullptr, nullptr);
	OM_uint32 ignored = 0;
	if (output.length > 0) {
		const auto* p = static_cast<const std::uint8_t*>(output.value);
		result.reply.assign(p, p + output.length);
	}
	gss_release_buffer(&ignored, &output);

	if (GSS_ERROR(major)) {
		result.state = State::failed;
		result.error = gss_status_text(major, minor);
		// A KRB-ERROR for the client is of no use to it once the login is
		// refused in TDS terms; SQL Server sends none either.
		result.reply.clear();
	} else if (major & GSS_S_CONTINUE_NEEDED) {
		result.state = State::continue_needed;
	} else {
		gss_buffer_desc name{0, nullptr};
		OM_uint32 shown = gss_display_name(&minor, client, &name, nullptr);
		if (GSS_ERROR(shown)) {
			result.state = State::failed;
			result.error = "authenticated, but the client's name cannot be displayed: " +
				       gss_status_text(shown, minor);
		} else {
			result.state = State::complete;
			result.principal.assign(static_cast<const char*>(name.value), name.length);
		}
		gss_release_buffer(&ignored, &name);
	}
	if (client != GSS_C_NO_NAME)
		gss_release_name(&ignored, &client);
	return result;
}

} // namespace tdslab
