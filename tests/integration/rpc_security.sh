# Pre-shared keys and the allowlist: a loose key file is refused at
# start-up; with keys, a client without the key or with another gets no
# answer at all and each drop is counted; the allowlist keeps others out.
. tests/lib.sh
. tests/rpc_lib.sh

"$BIN/slm" keygen 7 >"$TMP/keys" || fail "slm keygen"
"$BIN/slm" keygen 8 >>"$TMP/keys"
grep -qE '^7 [0-9a-f]{64}$' "$TMP/keys" && ok "slm keygen prints 'ID HEX'" ||
	fail "slm keygen: $(cat "$TMP/keys")"
"$BIN/slm" keygen 9 >"$TMP/other"

chmod 644 "$TMP/keys"
expect_fail "a world-readable key file" "dataplane.key_file" "mode 0644" -- \
	"$BIN/slmd" --set dataplane.listen=udp://127.0.0.1:0 --set "dataplane.key_file=$TMP/keys"
chmod 640 "$TMP/keys"
expect_fail "a group-readable key file" "mode 0640" -- \
	"$BIN/slmd" --set dataplane.listen=udp://127.0.0.1:0 --set "dataplane.key_file=$TMP/keys"
chmod 600 "$TMP/keys" "$TMP/other"
printf '1 00112233\n' >"$TMP/badkeys"
chmod 600 "$TMP/badkeys"
expect_fail "a malformed key file" "badkeys:1:" -- \
	"$BIN/slmd" --set dataplane.listen=udp://127.0.0.1:0 --set "dataplane.key_file=$TMP/badkeys"

start_slmd keys --set "dataplane.key_file=$TMP/keys" || exit 1
"$BIN/slm" ping -s "$SLMD_URL" --key-file "$TMP/keys" -n 20 -q >/dev/null &&
	ok "ping with key 7" || fail "ping with the key file"
"$BIN/slm" ping -s "$SLMD_URL" --key-file "$TMP/keys" --key-id 8 -n 20 -q >/dev/null &&
	ok "ping with key 8" || fail "ping with key 8"
"$BIN/slm" server-info -s "$SLMD_URL" --key-file "$TMP/keys" --json >"$TMP/info.json" &&
	[ "$(json_get "$TMP/info.json" 'd["auth"]')" = True ] &&
	ok "info says MACs are required" || fail "info with keys"
expect_fail "generate with the key (no model yet)" "no model loaded" -- \
	"$BIN/slm" generate -s "$SLMD_URL" --key-file "$TMP/keys" hi
expect_fail "ping without a key" "no answer" -- \
	"$BIN/slm" ping -s "$SLMD_URL" -n 3 -W 100
expect_fail "ping with a key slmd does not have" "no answer" -- \
	"$BIN/slm" ping -s "$SLMD_URL" --key-file "$TMP/other" -n 2 -W 100
expect_fail "generate without a key" "no answer" -- \
	"$BIN/slm" generate -s "$SLMD_URL" --retries 2 --rto-ms 10 hi
# A replayed datagram: capture one the client sends, send it twice.
python3 - "$(port_of "$SLMD_URL")" "$TMP/keys" >"$TMP/replay.out" 2>&1 <<'PY'
import hashlib, socket, struct, sys, time
port, keyfile = int(sys.argv[1]), sys.argv[2]
kid, khex = open(keyfile).readline().split()
key = bytes.fromhex(khex)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(('127.0.0.1', port))
s.settimeout(0.3)
h = struct.pack('<HBBBBHIIIIQQ', 0x4D53, 1, 1, 1, 0, int(kid), 4242, 0, 1, 0, 1,
                int(time.time() * 1e6))
d = h + hashlib.blake2b(h, key=key, digest_size=16).digest()
for name in ('first', 'replay'):
    s.send(d)
    try:
        r = s.recv(2048)
        print(name, 'answered type', r[3])
    except socket.timeout:
        print(name, 'no answer')
tampered = bytearray(d)
tampered[12] ^= 1
s.send(bytes(tampered))
try:
    s.recv(2048)
    print('tampered answered')
except socket.timeout:
    print('tampered no answer')
PY
if grep -qx 'first answered type 2' "$TMP/replay.out" &&
	grep -qx 'replay no answer' "$TMP/replay.out" &&
	grep -qx 'tampered no answer' "$TMP/replay.out"; then
	ok "a MAC made by an independent BLAKE2b (python) is accepted; its replay and a tampered copy are not"
else
	fail "replay test: $(cat "$TMP/replay.out")"
fi
stop_slmd || fail "slmd (keys) did not stop"
[ "$(counter drop_auth_missing)" -ge 4 ] && ok "drop_auth_missing counted" ||
	fail "drop_auth_missing = $(counter drop_auth_missing)"
[ "$(counter drop_unknown_key)" -ge 2 ] && ok "drop_unknown_key counted" ||
	fail "drop_unknown_key = $(counter drop_unknown_key)"
[ "$(counter drop_replay)" = 1 ] && ok "drop_replay = 1" || fail "drop_replay = $(counter drop_replay)"
[ "$(counter drop_bad_mac)" = 1 ] && ok "drop_bad_mac = 1" || fail "drop_bad_mac = $(counter drop_bad_mac)"

# The allowlist.
start_slmd acl --set "dataplane.allow=10.0.0.0/8, 2001:db8::/32" || exit 1
expect_fail "ping from outside the allowlist" "no answer" -- \
	"$BIN/slm" ping -s "$SLMD_URL" -n 3 -W 100
stop_slmd
[ "$(counter drop_not_allowed)" = 3 ] && ok "drop_not_allowed = 3" ||
	fail "drop_not_allowed = $(counter drop_not_allowed)"
start_slmd acl2 --set "dataplane.allow=127.0.0.0/8" || exit 1
"$BIN/slm" ping -s "$SLMD_URL" -n 3 -q >/dev/null && ok "ping from inside the allowlist" ||
	fail "ping from 127.0.0.1 with 127.0.0.0/8 allowed"
stop_slmd
expect_fail "a bad allowlist" "dataplane.allow" "10.0.0.0/33" -- \
	"$BIN/slmd" --set dataplane.listen=udp://127.0.0.1:0 --set dataplane.allow=10.0.0.0/33
finish
