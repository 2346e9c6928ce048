/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Frames to flows: the Ethernet/802.1Q, IPv4/IPv6, TCP and UDP headers of a
 * frame, checked against its length, and the flow key built from them.
 *
 * A part of walk.h, included by it in order; include walk.h, not this.
 */
#ifndef TDSBPF_WALK_HEADERS_H
#define TDSBPF_WALK_HEADERS_H

#ifndef TDSBPF_WALK_H
#error "include tdsbpf/walk.h, not its parts"
#endif

/*
 * A UDP datagram to or from the SQL Server Browser (port 1434), headers
 * checked as for TCP: returns -3 and fills l4 (dir C2S for a request,
 * the Browser's end as the server), or -1 (another UDP port), -2.
 */
TDSBPF_INLINE int tdsbpf_parse_udp(struct tdsbpf_pkt *p, struct tdsbpf_l4 *l4, __u32 off, __u32 ip_end)
{
	struct udphdr *udp = (struct udphdr *)((__u8 *)p->data + off);
	__u16 sport, dport;

	if ((void *)(udp + 1) > p->data_end)
		return -2;
	sport = tdsbpf_ntohs(udp->source);
	dport = tdsbpf_ntohs(udp->dest);
	if (dport == TDSBPF_BROWSER_PORT)
		l4->dir = TDSBPF_DIR_C2S;
	else if (sport == TDSBPF_BROWSER_PORT)
		l4->dir = TDSBPF_DIR_S2C;
	else
		return -1;
	l4->client_port = l4->dir == TDSBPF_DIR_C2S ? sport : dport;
	l4->server_port = TDSBPF_BROWSER_PORT;
	if (ip_end > p->pkt_len)
		ip_end = p->pkt_len;
	l4->poff = off + 8;
	if (l4->poff > ip_end)
		return -1;
	l4->plen = ip_end - l4->poff;
	l4->seq = 0;
	l4->ack = 0;
	l4->window = 0;
	l4->flags = 0;
	return -3;
}

/*
 * L2..L4 headers read directly (they are in the linear part of a frame or
 * pulled there); returns 0 and fills l4, or a negative value: -1 not
 * ours, -2 headers not directly readable. The addresses are copied later
 * (tdsbpf_fill_key), only for SQL Server packets.
 */
TDSBPF_INLINE int tdsbpf_parse_headers(struct tdsbpf_pkt *p, struct tdsbpf_l4 *l4)
{
	void *data = p->data;
	void *end = p->data_end;
	struct ethhdr *eth = (struct ethhdr *)data;
	__u32 off = sizeof(struct ethhdr);
	__u16 proto;
	__u32 ip_end;
	struct tcphdr *tcp;
	__u16 sport, dport;
	__u32 doff;

	if ((void *)(eth + 1) > end)
		return -2;
	proto = eth->h_proto;
	l4->vlan_valid = 0;
	l4->vlan_id = 0;
	if (proto == tdsbpf_ntohs(ETH_P_8021Q) || proto == tdsbpf_ntohs(ETH_P_8021AD)) {
		__u8 *vlan = (__u8 *)data + off;

		if ((void *)(vlan + 4) > end)
			return -2;
		l4->vlan_valid = 1;
		l4->vlan_id = ((vlan[0] & 0x0f) << 8) | vlan[1];
		proto = *(__u16 *)(vlan + 2);
		off += 4;
	}
	l4->l3off = (__u16)off;
	if (proto == tdsbpf_ntohs(ETH_P_IP)) {
		struct iphdr *ip = (struct iphdr *)((__u8 *)data + off);
		__u32 ihl;
		__u32 tot;

		if ((void *)(ip + 1) > end)
			return -2;
		if (ip->version != 4)
			return -1;
		if (ip->protocol != 6 && !(ip->protocol == 17 && tdsbpf_follow_browser(p)))
			return -1;
		proto = ip->protocol;
		/* fragments carry no TCP header we could trust */
		if (ip->frag_off & tdsbpf_ntohs(0x3fff))
			return -1;
		ihl = (__u32)ip->ihl * 4;
		if (ihl < 20)
			return -1;
		tot = tdsbpf_ntohs(ip->tot_len);
		/* GSO super-packets and BIG TCP can carry tot_len 0 */
		ip_end = tot ? off + tot : p->pkt_len;
		l4->family = 4;
		l4->ttl = ip->ttl;
		off += ihl & 0x3c;
	} else if (proto == tdsbpf_ntohs(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)((__u8 *)data + off);
		__u32 pl;

		if ((void *)(ip6 + 1) > end)
			return -2;
		if (ip6->nexthdr != 6 && !(ip6->nexthdr == 17 && tdsbpf_follow_browser(p)))
			return -1;
		proto = ip6->nexthdr;
		pl = tdsbpf_ntohs(ip6->payload_len);
		ip_end = pl ? off + 40 + pl : p->pkt_len;
		l4->family = 6;
		l4->ttl = ip6->hop_limit;
		off += 40;
	} else {
		return -1;
	}
	if (proto == 17)
		return tdsbpf_parse_udp(p, l4, off, ip_end);
	tcp = (struct tcphdr *)((__u8 *)data + off);
	if ((void *)(tcp + 1) > end)
		return -2;
	sport = tdsbpf_ntohs(tcp->source);
	dport = tdsbpf_ntohs(tcp->dest);
	if (tdsbpf_is_server_port(p, dport))
		l4->dir = TDSBPF_DIR_C2S;
	else if (tdsbpf_is_server_port(p, sport))
		l4->dir = TDSBPF_DIR_S2C;
	else
		return -1;
	l4->client_port = l4->dir == TDSBPF_DIR_C2S ? sport : dport;
	l4->server_port = l4->dir == TDSBPF_DIR_C2S ? dport : sport;
	doff = (__u32)tcp->doff * 4;
	if (doff < 20)
		return -1;
	if (ip_end > p->pkt_len)
		ip_end = p->pkt_len;
	l4->poff = off + doff;
	if (l4->poff > ip_end)
		return -1;
	l4->plen = ip_end - l4->poff;
	l4->seq = tdsbpf_ntohl(tcp->seq);
	l4->ack = tdsbpf_ntohl(tcp->ack_seq);
	l4->window = tdsbpf_ntohs(tcp->window);
	l4->flags = ((__u8 *)tcp)[13];
	return 0;
}

/*
 * The flow key of a SQL Server packet, client and server in their places,
 * read directly from the headers parse_headers checked (bounds checked
 * again here: the verifier does not carry them across functions).
 */
TDSBPF_NOINLINE int tdsbpf_fill_key(struct tdsbpf_pkt *p, const struct tdsbpf_l4 *l4, struct tdsbpf_flow_key *key)
{
	__u8 *ip = (__u8 *)p->data + (l4->l3off & 0x1f);
	__u8 *client = l4->dir == TDSBPF_DIR_C2S ? key->client_addr : key->server_addr;
	__u8 *server = l4->dir == TDSBPF_DIR_C2S ? key->server_addr : key->client_addr;

	__builtin_memset(key, 0, sizeof(*key));
	if (l4->family == 4) {
		if ((void *)(ip + 20) > p->data_end)
			return -1;
		__builtin_memcpy(client, ip + 12, 4);
		__builtin_memcpy(server, ip + 16, 4);
	} else {
		if ((void *)(ip + 40) > p->data_end)
			return -1;
		__builtin_memcpy(client, ip + 8, 16);
		__builtin_memcpy(server, ip + 24, 16);
	}
	key->family = l4->family;
	key->vlan_valid = l4->vlan_valid;
	key->vlan_id = l4->vlan_id;
	key->client_port = l4->client_port;
	key->server_port = l4->server_port;
	return 0;
}

#endif /* TDSBPF_WALK_HEADERS_H */
