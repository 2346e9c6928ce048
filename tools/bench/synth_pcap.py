#!/usr/bin/python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""A deterministic capture of N TDS connections that log in and stay open.

Each connection: SYN, SYN+ACK, ACK, PRELOGIN (no encryption), the server's
PRELOGIN answer, LOGIN7 (SQL authentication), the login reply
(ENVCHANGE database, LOGINACK, ENVCHANGE packet size, DONE) and the client's
ACK. Nothing closes, so every connection is still tracked when the file ends:
what the memory row of the benchmark suite measures.

Addresses are from the benchmarking and documentation ranges; the file is only
ever read, nothing here is sent anywhere.

    synth_pcap.py OUT.pcap N
"""
import os
import struct
import sys

SERVER_IP = bytes([198, 51, 100, 1])
SERVER_PORT = 1433
CLIENT_MAC = bytes.fromhex("020000000002")
SERVER_MAC = bytes.fromhex("020000000001")


def _ipv4_checksum(hdr):
    s = sum(struct.unpack("!10H", hdr))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return (~s) & 0xFFFF


def _frame(src_mac, dst_mac, src_ip, dst_ip, sport, dport, seq, ack, flags, payload, ip_id):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      5 << 4, flags, 64240, 0, 0) + payload
    total = 20 + len(tcp)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ip_id & 0xFFFF, 0x4000, 64, 6, 0,
                               src_ip, dst_ip))
    struct.pack_into("!H", ip, 10, _ipv4_checksum(bytes(ip)))
    return dst_mac + src_mac + b"\x08\x00" + bytes(ip) + tcp


def _tds(ptype, body, spid=0, packet_id=1):
    return struct.pack("!BBHHBB", ptype, 0x01, 8 + len(body), spid, packet_id, 0) + body


def _prelogin(options):
    """options: list of (token, bytes) in order; returns the PRELOGIN body."""
    head_len = 5 * len(options) + 1
    head, data = b"", b""
    for token, value in options:
        head += struct.pack("!BHH", token, head_len + len(data), len(value))
        data += value
    return head + b"\xff" + data


def _ucs2(s):
    return s.encode("utf-16-le")


def _login7(user, host):
    # variable part in the order of the offsets below
    fields = [("host", host), ("user", user), ("password", "lab"), ("app", "tdsbpf-bench"),
              ("server", "198.51.100.1"), ("ext", ""), ("clt", "ODBC"), ("lang", ""),
              ("db", "master")]
    fixed_len = 94
    off = fixed_len
    pairs = b""
    data = b""
    for name, value in fields:
        raw = _ucs2(value)
        if name == "password":
            # the LOGIN7 password scrambling (nibble swap, XOR 0xA5)
            raw = bytes((((b << 4) & 0xF0) | (b >> 4)) ^ 0xA5 for b in raw)
        pairs += struct.pack("<HH", off + len(data), len(value))
        data += raw
    end = off + len(data)
    tail = b"\x02\x00\x00\x00\x00\x01"  # ClientID (a MAC address)
    tail += struct.pack("<HH", end, 0)  # SSPI
    tail += struct.pack("<HH", end, 0)  # AtchDBFile
    tail += struct.pack("<HH", end, 0)  # ChangePassword
    tail += struct.pack("<I", 0)        # cbSSPILong
    head = struct.pack("<IIIIII", end, 0x74000004, 4096, 7, 4242, 0)
    head += bytes([0xE0, 0x03, 0x00, 0x00])
    head += struct.pack("<iI", 0, 0x409)
    body = head + pairs + tail
    assert len(body) == fixed_len, len(body)
    return body + data


def _b_varchar(s):
    return bytes([len(s)]) + _ucs2(s)


def _login_reply():
    env_db = bytes([1]) + _b_varchar("master") + _b_varchar("master")
    env_ps = bytes([4]) + _b_varchar("4096") + _b_varchar("4096")
    prog = _b_varchar("Microsoft SQL Server")
    ack = bytes([1]) + bytes([0x74, 0x00, 0x00, 0x04]) + prog + bytes([16, 0, 0x03, 0xE8])
    done = b"\xfd" + struct.pack("<HHQ", 0, 0, 0)
    return (b"\xe3" + struct.pack("<H", len(env_db)) + env_db +
            b"\xad" + struct.pack("<H", len(ack)) + ack +
            b"\xe3" + struct.pack("<H", len(env_ps)) + env_ps + done)


def write(path, n):
    prelogin_c = _tds(0x12, _prelogin([(0, bytes([17, 0, 0, 0, 0, 0])), (1, b"\x02"), (2, b"\x00"),
                                        (3, struct.pack("!I", 4242)), (4, b"\x00")]))
    prelogin_s = _tds(0x04, _prelogin([(0, bytes([16, 0, 0x03, 0xE8, 0, 0])), (1, b"\x02"),
                                        (2, b"\x00"), (3, b""), (4, b"\x00")]))
    reply = _tds(0x04, _login_reply(), spid=52)
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    t_us = 1_700_000_000 * 1_000_000
    step_us = 10
    for i in range(n):
        # 256 connections per client address, from the benchmarking range
        # 198.18.0.0/15 (RFC 2544), so no 4-tuple repeats
        a = i >> 8
        cip = bytes([198, 18 + ((a >> 16) & 1), (a >> 8) & 0xFF, a & 0xFF])
        cport = 10000 + (i & 0xFF)
        login = _tds(0x10, _login7("user%d" % (i % 1000), "host%d" % (i % 97)))
        cs, ss = (i * 7919) & 0xFFFFFFFF, (i * 104729 + 1) & 0xFFFFFFFF
        seq = [
            (0, cs, 0, 0x02, b""),
            (1, ss, cs + 1, 0x12, b""),
            (0, cs + 1, ss + 1, 0x10, b""),
            (0, cs + 1, ss + 1, 0x18, prelogin_c),
            (1, ss + 1, cs + 1 + len(prelogin_c), 0x18, prelogin_s),
            (0, cs + 1 + len(prelogin_c), ss + 1 + len(prelogin_s), 0x18, login),
            (1, ss + 1 + len(prelogin_s), cs + 1 + len(prelogin_c) + len(login), 0x18, reply),
            (0, cs + 1 + len(prelogin_c) + len(login), ss + 1 + len(prelogin_s) + len(reply), 0x10, b""),
        ]
        for k, (to_client, s, a, flags, payload) in enumerate(seq):
            if to_client:
                f = _frame(SERVER_MAC, CLIENT_MAC, SERVER_IP, cip, SERVER_PORT, cport, s, a, flags, payload, i)
            else:
                f = _frame(CLIENT_MAC, SERVER_MAC, cip, SERVER_IP, cport, SERVER_PORT, s, a, flags, payload, i)
            t_us += step_us
            out += struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(f), len(f))
            out += f
    with open(path + ".tmp", "wb") as fh:
        fh.write(out)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    write(sys.argv[1], int(sys.argv[2]))
