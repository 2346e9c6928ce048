/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The walk's view of the current segment and of its flow: struct tdsbpf_walk,
 * sequence arithmetic, and what tells a segment seen before (a
 * retransmission) or seen twice (a second hook on the same host) from a new one.
 *
 * A part of walk.h, included by it in order; include walk.h, not this.
 */
#ifndef TDSBPF_WALK_FLOW_STATE_H
#define TDSBPF_WALK_FLOW_STATE_H

#ifndef TDSBPF_WALK_H
#error "include tdsbpf/walk.h, not its parts"
#endif

/* Everything the per-frame handlers need about the current segment. */
struct tdsbpf_walk {
	struct tdsbpf_pkt *p;
	struct tdsbpf_flow *flow;
	const struct tdsbpf_flow_key *key;
	struct tdsbpf_l4 *l4; /* in the scratch area */
	struct tdsbpf_scratch *sc;
};

TDSBPF_INLINE int tdsbpf_seq_before(__u32 a, __u32 b)
{
	return (__s32)(a - b) < 0;
}

/* ---- Second sightings --------------------------------------------------- */

/*
 * One packet can pass several traced points: on the loopback it leaves
 * (tc egress) and comes back in (XDP) on the same interface; between two
 * traced interfaces (both ends of a veth pair, a port and its bridge, a
 * router's two sides) it is seen on each. The walk counts it once: each
 * side of a flow has a point (hook and interface) where its packets show
 * first, the point of its first packet. A packet seen at another point is
 * a second sighting when the flow has already counted everything in it:
 * every sequence number it carries (a SYN or FIN counts for one) and an
 * ACK at least as new as the highest this side sent. It changes nothing
 * and is counted apart (dups). Anything newer seen elsewhere first moves
 * the point there (the path changed, or a hook was attached late).
 *
 * A resend at the point itself is a retransmission, as before: a packet
 * is not seen twice at one hook, and a sender resends from where it sent.
 * A RST is never a second sighting: the first one ends the flow.
 */
TDSBPF_INLINE int tdsbpf_seen_before(const struct tdsbpf_l4 *l4, const struct tdsbpf_dir_state *ds)
{
	__u8 fl = l4->flags;
	__u32 end = l4->seq + l4->plen + ((fl & (TDSBPF_TCP_SYN | TDSBPF_TCP_FIN)) ? 1 : 0);

	if (!ds->seq_valid || (fl & TDSBPF_TCP_RST) || tdsbpf_seq_before(ds->next_seq, end))
		return 0;
	if ((fl & TDSBPF_TCP_ACK) && (!ds->ack_valid || tdsbpf_seq_before(ds->ack_hi, l4->ack)))
		return 0;
	return 1;
}

/*
 * A packet of a closed flow seen at another point than this side's first,
 * that carries nothing newer than what the flow counted: the closing
 * packet (its RST included) or its last ACK seen a second time.
 */
TDSBPF_INLINE int tdsbpf_seen_closing(const struct tdsbpf_l4 *l4, const struct tdsbpf_dir_state *ds)
{
	__u8 fl = l4->flags;
	__u32 end = l4->seq + l4->plen + ((fl & (TDSBPF_TCP_SYN | TDSBPF_TCP_FIN)) ? 1 : 0);

	if (!ds->seq_valid || tdsbpf_seq_before(ds->next_seq, end))
		return 0;
	if ((fl & TDSBPF_TCP_ACK) && (!ds->ack_valid || tdsbpf_seq_before(ds->ack_hi, l4->ack)))
		return 0;
	return 1;
}

/* The highest ACK this side sent, for tdsbpf_seen_before. */
TDSBPF_INLINE void tdsbpf_note_ack(struct tdsbpf_dir_state *ds, const struct tdsbpf_l4 *l4)
{
	if ((l4->flags & TDSBPF_TCP_ACK) && (!ds->ack_valid || tdsbpf_seq_before(ds->ack_hi, l4->ack))) {
		ds->ack_hi = l4->ack;
		ds->ack_valid = 1;
	}
}

#endif /* TDSBPF_WALK_FLOW_STATE_H */
