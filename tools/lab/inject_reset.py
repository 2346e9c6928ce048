#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Plays a firewall that resets a connection it sits on.

Run in the client's network namespace: once armed (--after seconds), it
waits for the next TCP segment from the server's port, and answers it for
the client with a RST whose sequence number is the one the server expects
and whose IP TTL is its own (--ttl), not the client's. The server takes
the RST and drops the connection; the client knows nothing of it until it
speaks again. A tracer on the server's side sees a reset whose TTL differs
from the rest of the client's packets.

Exit status: 0 once a reset was sent, 1 if no segment came in --timeout
seconds, 2 for bad arguments or no privileges.
"""
import argparse
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def reset_for(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ttl: int) -> bytes:
    """An IPv4 RST from src:sport to dst:dport carrying sequence seq."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x04, 0, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0x7A7A, 0, ttl, socket.IPPROTO_TCP, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True, help="the server's IPv4 address")
    ap.add_argument("--port", type=int, default=1433, help="the server's TCP port")
    ap.add_argument("--after", type=float, default=0.0, help="seconds to wait before arming")
    ap.add_argument("--ttl", type=int, default=200, help="the IP TTL of the reset (the firewall's own)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a segment once armed")
    args = ap.parse_args()
    try:
        server = socket.inet_aton(args.server)
    except OSError:
        print(f"inject_reset: --server {args.server!r} is not an IPv4 address", file=sys.stderr)
        return 2
    if not (0 < args.port < 65536 and 0 < args.ttl < 256):
        print("inject_reset: --port is 1 to 65535, --ttl 1 to 255", file=sys.stderr)
        return 2
    try:
        sniff = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    except PermissionError:
        print("inject_reset: needs root (raw sockets)", file=sys.stderr)
        return 2
    time.sleep(args.after)
    # drop what arrived before arming (what is queued now, not what keeps coming)
    sniff.setblocking(False)
    try:
        for _ in range(100000):
            sniff.recv(65535)
    except BlockingIOError:
        pass
    sniff.setblocking(True)
    sniff.settimeout(0.2)
    end = time.monotonic() + args.timeout
    while time.monotonic() < end:
        try:
            pkt = sniff.recv(65535)
        except socket.timeout:
            continue
        if len(pkt) < 20 or pkt[0] >> 4 != 4 or pkt[9] != socket.IPPROTO_TCP or pkt[12:16] != server:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        if ihl < 20 or len(pkt) < ihl + 20:
            continue
        sport, dport, _seq, ack = struct.unpack("!HHII", pkt[ihl : ihl + 12])
        flags = pkt[ihl + 13]
        if sport != args.port or not flags & 0x10 or flags & 0x07:  # an ACK, not SYN/FIN/RST
            continue
        client = pkt[16:20]
        raw.sendto(reset_for(client, server, dport, sport, ack, args.ttl), (args.server, 0))
        print(f"inject_reset: reset {socket.inet_ntoa(client)}:{dport} -> {args.server}:{sport} seq {ack} ttl {args.ttl}")
        return 0
    print("inject_reset: no segment from the server came", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
