#!/usr/bin/env python3
"""notify_listen.py: the service manager's side of sd_notify, for tests.

    notify_listen.py SOCKET LOG [SECONDS]

Binds a datagram socket at SOCKET (the test gives it to slmd as
NOTIFY_SOCKET), and writes one line per message received to LOG, flushed at
once so a shell test can wait on it:

    <CLOCK_MONOTONIC us when received> pid=<sender pid> FIELD=value|FIELD=value

The fields keep their order; a newline inside the message separates them, as
systemd reads it.  The sender's pid comes from SCM_CREDENTIALS, as systemd
checks NotifyAccess=main with it.  Exits on SIGTERM/SIGINT or after SECONDS
(default 300), removing SOCKET.
"""
import os
import signal
import socket
import struct
import sys
import time


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    path, log_path = sys.argv[1], sys.argv[2]
    limit = float(sys.argv[3]) if len(sys.argv) > 3 else 300.0
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.settimeout(0.2)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    deadline = time.monotonic() + limit
    cred_size = struct.calcsize("3i")
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("listening\n")
        log.flush()
        while not stop and time.monotonic() < deadline:
            try:
                data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(cred_size))
            except socket.timeout:
                continue
            except InterruptedError:
                continue
            pid = -1
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:cred_size])[0]
            fields = data.decode("utf-8", "replace").split("\n")
            fields = [f for f in fields if f]
            now_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            log.write("%d pid=%d %s\n" % (now_us, pid, "|".join(fields)))
            log.flush()
    sock.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
