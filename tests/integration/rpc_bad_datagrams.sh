# Malformed, truncated, oversized, duplicated, reordered and unknown
# datagrams sent to a running slmd get their documented handling (an ERROR
# or silence, docs/protocol.md) and counter, and slmd keeps serving.
. tests/lib.sh
. tests/rpc_lib.sh

start_slmd bad || exit 1
port=$(port_of "$SLMD_URL")

python3 - "$port" >"$TMP/py.out" 2>&1 <<'PY'
import socket, struct, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(('127.0.0.1', port))
s.settimeout(0.3)
pn = [0]
def hdr(t, conn=77, req=0, seq=0, aux=0, flags=0, version=1):
    pn[0] += 1
    return struct.pack('<HBBBBHIIIIQQ', 0x4D53, version, t, flags, 0, 0,
                       conn, req, seq, aux, pn[0], 0)
def field(tag, val, mandatory=True):
    return struct.pack('<HH', tag | (0x8000 if mandatory else 0), len(val)) + val
def answer():
    try:
        d = s.recv(4096)
    except socket.timeout:
        return None
    t = d[3]
    if t == 9:  # ERROR: ERROR_CODE then MESSAGE
        code = struct.unpack_from('<i', d, 44)[0]
        mlen = struct.unpack_from('<H', d, 50)[0]
        return 'ERROR %d %s' % (code, d[52:52 + mlen].decode())
    return {2: 'PONG', 6: 'REQ_ACK', 7: 'TOKENS', 8: 'DONE'}.get(t, 'type %d' % t)
def case(name, data):
    s.send(data)
    print('%s: %s' % (name, answer()))
ping = hdr(1, seq=1)
case('short', ping[:20])
case('empty', b'')
case('magic', b'XX' + ping[2:])
case('version', hdr(1, version=9))
case('oversized', ping + b'\0' * 1500)
case('unknown type', hdr(42))
case('server type', hdr(7, req=1))
case('conn 0', hdr(1, conn=0))
case('ping field overrun', hdr(1) + struct.pack('<HH', 0x4A, 60) + b'x' * 10)
case('ping mandatory', hdr(1) + field(0x7001, b'?'))
case('ping optional', hdr(1) + field(0x7001, b'?', False))
body = field(0x01, b'hello')
case('req', hdr(5, req=1, aux=1 | len(body) << 16) + body)
case('req dup', hdr(5, req=1, aux=1 | len(body) << 16) + body)
case('req bad frag', hdr(5, req=2, seq=3, aux=2 | 300 << 16) + b'x' * 300)
case('req too big', hdr(5, req=3, aux=1000 | 1024 << 16) + b'x' * 1024)
case('req truncated field', hdr(5, req=4, aux=1 | 7 << 16) + field(0x01, b'hello')[:7])
case('req mandatory', hdr(5, req=5, aux=1 | 9 << 16) + field(0x7777, b'abcde'))
case('req no prompt', hdr(5, req=6, aux=1 | 8 << 16) + field(0x19, b'\1\0\0\0'))
# A two-fragment request whose fragments arrive in reverse order, one
# duplicated: reassembled once (and refused: no model).
big = field(0x01, b'y' * 400)
f0, f1 = big[:256], big[256:]
case('frag 1 of 2', hdr(5, req=7, seq=1, aux=2 | 256 << 16) + f1)
case('frag 1 again', hdr(5, req=7, seq=1, aux=2 | 256 << 16, flags=2) + f1)
case('frag 0 of 2', hdr(5, req=7, seq=0, aux=2 | 256 << 16) + f0)
case('ack unknown', hdr(11, req=99))
case('cancel unknown', hdr(10, req=98))
case('finished id again', hdr(5, req=1, aux=1 | len(body) << 16) + body)
case('ping after all that', hdr(1, seq=5))
PY
cat "$TMP/py.out"

expect_line() {
	if grep -qxF -- "$1" "$TMP/py.out"; then ok "$1"; else fail "expected '$1'"; fi
}
expect_line "short: None"
expect_line "empty: None"
expect_line "magic: None"
expect_line "version: ERROR -5 protocol version 9 not supported (this server speaks 1)"
expect_line "oversized: None"
expect_line "unknown type: ERROR -5 message type 42 not supported"
expect_line "server type: None"
expect_line "conn 0: None"
expect_line "ping field overrun: ERROR -4 field at body offset 0 runs past the end"
expect_line "ping mandatory: ERROR -5 mandatory field 0x7001 not supported"
expect_line "ping optional: PONG"
expect_line "req: ERROR -18 no model loaded"
expect_line "req dup: ERROR -18 no model loaded"
expect_line "req bad frag: None"
expect_line "req too big: ERROR -20 request larger than 65536 bytes (max_request_bytes)"
expect_line "req truncated field: ERROR -4 field at body offset 0 runs past the end"
expect_line "req mandatory: ERROR -5 mandatory field 0x7777 not supported"
expect_line "req no prompt: ERROR -2 request has no prompt"
expect_line "frag 1 of 2: None"
expect_line "frag 1 again: REQ_ACK"
expect_line "frag 0 of 2: ERROR -18 no model loaded"
expect_line "ack unknown: ERROR -18 request 99 is not known"
expect_line "cancel unknown: ERROR -18 request 98 is not known"
expect_line "finished id again: ERROR -18 no model loaded"
expect_line "ping after all that: PONG"

"$BIN/slm" ping -s "$SLMD_URL" -n 10 -q >/dev/null || fail "slmd stopped answering"
stop_slmd || fail "slmd did not stop cleanly"
for c in drop_short=2 drop_magic=1 drop_version=1 drop_oversized=1 \
	drop_bad_type=2 drop_malformed=3 drop_mandatory=2 refused_invalid=1 \
	drop_bad_fragment=1 refused_no_model=2 \
	drop_too_big=1 dup_fragment=1 dup_request=2 drop_unknown_request=2; do
	name=${c%%=*} want=${c#*=}
	got=$(counter "$name")
	if [ "$got" = "$want" ]; then ok "counter $name = $want"; else fail "counter $name = $got, expected $want"; fi
done
finish
