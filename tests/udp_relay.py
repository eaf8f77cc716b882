#!/usr/bin/env python3
"""A lossy UDP relay for the RPC tests (the kernel here has no netem).

    udp_relay.py SERVER_PORT LOSS DUP REORDER

Listens on a free loopback port (printed as "port N"), forwards datagrams
between clients and the server at 127.0.0.1:SERVER_PORT, dropping a
fraction LOSS, duplicating DUP and holding back REORDER (sent after the
next datagram, or within 3 ms) in both directions.  Clients are told apart
by the protocol's connection id (header bytes 8..11).  On SIGTERM it
prints what it did and exits.
"""
import random
import select
import signal
import socket
import struct
import sys
import time

server_port = int(sys.argv[1])
loss, dup, reorder = (float(x) for x in sys.argv[2:5])
rng = random.Random(1234)
server = ('127.0.0.1', server_port)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
sock.bind(('127.0.0.1', 0))
print('port', sock.getsockname()[1], flush=True)
clients = {}
held = None
stats = dict(forwarded=0, dropped=0, duplicated=0, reordered=0)
running = True


def stop(*_):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)


def send(data, to):
    sock.sendto(data, to)
    stats['forwarded'] += 1


while running:
    try:
        ready, _, _ = select.select([sock], [], [], 0.002)
    except InterruptedError:
        continue
    if held and time.monotonic() - held[2] > 0.003:
        send(held[0], held[1])
        held = None
    if not ready:
        continue
    data, src = sock.recvfrom(4096)
    if len(data) < 12:
        continue
    conn = struct.unpack_from('<I', data, 8)[0]
    if src == server:
        to = clients.get(conn)
        if to is None:
            continue
    else:
        clients[conn] = src
        to = server
    if rng.random() < loss:
        stats['dropped'] += 1
        continue
    if held is None and rng.random() < reorder:
        held = (data, to, time.monotonic())
        stats['reordered'] += 1
        continue
    send(data, to)
    if held:
        send(held[0], held[1])
        held = None
    if rng.random() < dup:
        send(data, to)
        stats['duplicated'] += 1
print(' '.join('%s=%d' % kv for kv in stats.items()), flush=True)
