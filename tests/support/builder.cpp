// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "builder.h"

#include "event_json.h"

namespace tb {

Collector::Collector(tdsbpf::HostParserConfig cfg)
    : p(std::move(cfg), [this](const tdsbpf_event& ev, std::size_t len) {
	      const auto* b = reinterpret_cast<const uint8_t*>(&ev);
	      (ev.kind == TDSBPF_EV_EXCERPT && !excerpts_inline ? excerpts : recs).push_back(Rec{Bytes(b, b + len)});
      })
{
}

std::vector<Rec> of_kind(const std::vector<Rec>& v, uint8_t kind)
{
	std::vector<Rec> r;
	for (auto& e : v)
		if (e.kind() == kind)
			r.push_back(e);
	return r;
}

std::string kinds(const std::vector<Rec>& v)
{
	std::string s;
	for (auto& e : v) {
		if (!s.empty())
			s += ",";
		s += tdsbpf::event_kind_name(e.kind());
	}
	return s;
}

void handshake(Collector& c, Conn& k)
{
	c.feed(k.syn());
	c.feed(k.synack());
	c.feed(k.ack(true));
	c.take();
}

} // namespace tb
