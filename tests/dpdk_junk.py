#!/usr/bin/env python3
"""Frames for the DPDK host test (tests/integration/dpdk_host.sh).

    dpdk_junk.py IFACE SERVER_MAC SERVER_IP CLIENT_IP PORT MODE

MODE "kinds": N frames of each kind the host must drop, each a valid
frame but for the one thing wrong with it, then prints "expect NAME N"
for every drop counter they must raise (exactly: nothing else reaches
those counters in the test's namespaces).  Also sends a PING with no
UDP checksum (0: allowed over IPv4) and one with a wrong checksum, and
prints "pong-nocsum yes|no" and "pong-badcsum yes|no" for whether slmd
answered each.

MODE "random": thousands of random frames, some shaped like IPv4 to
slmd with random fields, for "never crash".
"""
import os
import random
import socket
import struct
import sys
import time

iface, srv_mac_s, srv_ip_s, cli_ip_s, port_s, mode = sys.argv[1:7]
SRV_MAC = bytes.fromhex(srv_mac_s.replace(':', ''))
SRV_IP = socket.inet_aton(srv_ip_s)
CLI_IP = socket.inet_aton(cli_ip_s)
PORT = int(port_s)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((iface, 0))
CLI_MAC = s.getsockname()[4][:6]
# Ports our hand-made PINGs come from: bound, so the kernel takes the
# PONGs quietly instead of answering "port unreachable" to slmd.
quiet = []
for p in (40000, 40077, 40078):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((cli_ip_s, p))
    quiet.append(u)


def csum(b):
    if len(b) % 2:
        b += b'\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff


def eth(payload, etype=0x0800, dst=SRV_MAC):
    return dst + CLI_MAC + struct.pack('!H', etype) + payload


def ip(payload, proto=17, src=CLI_IP, dst=SRV_IP, ver_ihl=0x45, frag=0x4000,
       options=b'', total=None, bad_csum=False):
    if total is None:
        total = 20 + len(options) + len(payload)
    h = struct.pack('!BBHHHBBH4s4s', ver_ihl, 0, total, 1, frag, 64, proto,
                    0, src, dst) + options
    c = csum(h)
    if bad_csum:
        c ^= 0x5555
    return h[:10] + struct.pack('!H', c) + h[12:] + payload


def udp(body, sport=40000, dport=PORT, length=None, cs='good', src=CLI_IP,
        dst=SRV_IP):
    if length is None:
        length = 8 + len(body)
    h = struct.pack('!HHHH', sport, dport, length, 0)
    c = 0
    if cs != 'none':
        ph = src + dst + struct.pack('!BBH', 0, 17, 8 + len(body))
        c = csum(ph + h + body) or 0xffff
        if cs == 'bad':
            c ^= 0x00ff
    return h[:6] + struct.pack('!H', c) + body


def icmp(typ=8, code=0, bad=False):
    body = struct.pack('!BBHHH', typ, code, 0, 0x1234, 1) + b'x' * 16
    c = csum(body)
    if bad:
        c ^= 1
    return body[:2] + struct.pack('!H', c) + body[4:]


def ping_body(seq):
    # The protocol's PING: 40-byte header, magic 'SM', version 1, type 1.
    return struct.pack('<HBBBBHIIIIQQ', 0x4D53, 1, 1, 0, 0, 0, 0x1234, 0,
                       seq, 0, seq, 0)


def send(frame, n=1):
    for _ in range(n):
        s.send(frame)


def answered(seq, wait=0.5):
    s.settimeout(0.05)
    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:
            d = s.recv(2048)
        except socket.timeout:
            continue
        if (d[6:12] == SRV_MAC and d[12:14] == b'\x08\x00' and d[23] == 17
                and struct.unpack('!H', d[34:36])[0] == PORT
                and len(d) >= 42 + 40 and d[42 + 3] == 2
                and struct.unpack('<I', d[42 + 16:42 + 20])[0] == seq):
            return True
    return False


N = 5
good = udp(ping_body(0))
expect = {}


def kind(name, frame, count=N):
    send(frame, count)
    expect[name] = expect.get(name, 0) + count


if mode == 'kinds':
    kind('drop_l2_foreign', eth(ip(good), dst=b'\x02\x99\x99\x99\x99\x99'))
    kind('drop_l2_foreign', eth(ip(good), dst=b'\x01\x00\x5e\x00\x00\x01'))
    kind('drop_l2_proto', eth(b'\0' * 46, etype=0x88b5))
    kind('drop_l2_proto', eth(b'\x00\x05\x08\x00' + ip(good), etype=0x8100))
    kind('drop_ipv6', eth(b'\x60' + b'\0' * 45, etype=0x86dd))
    kind('drop_arp', eth(struct.pack('!HHBBH6s4s6s4s', 1, 0x0800, 6, 4, 1,
                                     CLI_MAC, CLI_IP, b'\0' * 6,
                                     socket.inet_aton('10.77.0.99')),
                         etype=0x0806, dst=b'\xff' * 6))
    kind('drop_arp', eth(struct.pack('!HHBBH', 6, 0x0800, 6, 4, 1) + b'\0' * 20,
                         etype=0x0806, dst=b'\xff' * 6))
    kind('drop_ip_malformed', eth(ip(good, ver_ihl=0x65)))
    kind('drop_ip_malformed', eth(ip(good, total=400)))
    kind('drop_ip_options', eth(ip(good, ver_ihl=0x46, options=b'\x01' * 4)))
    kind('drop_ip_fragment', eth(ip(good, frag=0x2000)))
    kind('drop_ip_fragment', eth(ip(good, frag=0x0010)))
    kind('drop_ip_cksum', eth(ip(good, bad_csum=True)))
    kind('drop_ip_foreign', eth(ip(udp(ping_body(0), dst=socket.inet_aton(
        '10.77.0.99')), dst=socket.inet_aton('10.77.0.99'))))
    zero = socket.inet_aton('0.0.0.0')
    kind('drop_ip_source', eth(ip(udp(ping_body(0), src=zero), src=zero)))
    kind('drop_ip_proto', eth(ip(b'\0' * 20, proto=6)))
    kind('drop_icmp', eth(ip(icmp(typ=13), proto=1)))
    kind('drop_l4_cksum', eth(ip(icmp(bad=True), proto=1)))
    kind('drop_l4_cksum', eth(ip(udp(ping_body(0), cs='bad'))))
    kind('drop_udp_malformed', eth(ip(udp(ping_body(0), length=300))))
    kind('drop_udp_port', eth(ip(udp(ping_body(0), dport=PORT + 1))))
    # A PING with no UDP checksum is answered; one with a wrong one is not.
    send(eth(ip(udp(ping_body(77), sport=40077, cs='none'))))
    print('pong-nocsum', 'yes' if answered(77) else 'no')
    send(eth(ip(udp(ping_body(78), sport=40078, cs='bad'))))
    expect['drop_l4_cksum'] += 1
    print('pong-badcsum', 'yes' if answered(78) else 'no')
    for k, v in sorted(expect.items()):
        print('expect', k, v)
else:
    rnd = random.Random(int(os.environ.get('SEED', '1')))
    n = 0
    for i in range(3000):
        r = rnd.random()
        if r < 0.3:
            f = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(14, 200)))
        elif r < 0.6:
            et = rnd.choice([0x0800, 0x0806, 0x86dd, 0x8100, rnd.getrandbits(16)])
            f = eth(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 300))), etype=et)
        else:
            body = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 300)))
            proto = rnd.choice([1, 17, 17, 6, rnd.getrandbits(8)])
            pl = udp(body, dport=rnd.choice([PORT, PORT, rnd.getrandbits(16)]),
                     length=rnd.choice([None, rnd.getrandbits(16)]),
                     cs=rnd.choice(['good', 'bad', 'none'])) if proto == 17 else body
            f = eth(ip(pl, proto=proto, ver_ihl=rnd.choice([0x45, 0x45, 0x46, 0x4f, 0x55]),
                       frag=rnd.choice([0x4000, 0, 0x2000, rnd.getrandbits(16)]),
                       total=rnd.choice([None, None, rnd.getrandbits(16)]),
                       bad_csum=rnd.random() < 0.2))
        try:
            s.send(f[:1514])
            n += 1
        except OSError:
            pass
    print('sent', n)
