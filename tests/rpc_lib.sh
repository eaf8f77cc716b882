# Sourced by the RPC integration tests after tests/lib.sh: start and stop
# slmd on a free port, and a lossy UDP relay.

# start_slmd NAME [slmd args...]: start slmd listening on a free loopback
# port (unless the args set dataplane.listen) with a control socket of its
# own (several may run at once, here and in other test runs), wait for its
# "ready" line.
# Sets SLMD_PID, SLMD_URL, SLMD_LOG.  Returns 1 (with the log shown) if it
# does not become ready within 10 s.
start_slmd() {
	local name=$1
	shift
	SLMD_LOG=$TMP/slmd.$name.log
	"$BIN/slmd" --set dataplane.listen=udp://127.0.0.1:0 --set log.target=stderr \
		--set "ctl.socket=$TMP/ctl.$name.sock" "$@" >"$SLMD_LOG" 2>&1 &
	SLMD_PID=$!
	at_exit "kill $SLMD_PID 2>/dev/null; wait $SLMD_PID 2>/dev/null"
	local i
	for ((i = 0; i < 100; i++)); do
		if grep -q 'ready: serving on' "$SLMD_LOG" 2>/dev/null; then
			SLMD_URL=$(sed -n 's/.*ready: serving on \(udp:[^ ]*\).*/\1/p' "$SLMD_LOG" | head -n1)
			return 0
		fi
		kill -0 "$SLMD_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "slmd ($name) did not become ready:"
	sed 's/^/  | /' "$SLMD_LOG"
	return 1
}

# stop_slmd: SIGTERM, wait; 0 when it exited 0 within 10 s.
stop_slmd() {
	kill -TERM "$SLMD_PID" 2>/dev/null || return 1
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$SLMD_PID" 2>/dev/null || break
		sleep 0.1
	done
	wait "$SLMD_PID"
}

# counter NAME: the value of a dataplane counter in the shutdown log line
# of the last stopped slmd (0 when absent).
counter() {
	local v
	v=$(grep 'dataplane: counters:' "$SLMD_LOG" | tail -n1 | tr ' ' '\n' |
		sed -n "s/^$1=//p")
	echo "${v:-0}"
}

# json_get FILE EXPR: a value from a JSON object (python3), e.g.
# json_get out.json 'd["usage"]["generated_tokens"]'.
json_get() {
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# start_relay SERVER_PORT LOSS DUP REORDER: a lossy relay in front of the
# server; sets RELAY_PID, RELAY_URL, RELAY_LOG.
start_relay() {
	RELAY_LOG=$TMP/relay.log
	python3 "${SLM_ROOT:-.}/tests/udp_relay.py" "$@" >"$RELAY_LOG" 2>&1 &
	RELAY_PID=$!
	at_exit "kill $RELAY_PID 2>/dev/null; wait $RELAY_PID 2>/dev/null"
	local i
	for ((i = 0; i < 50; i++)); do
		if grep -q '^port ' "$RELAY_LOG" 2>/dev/null; then
			RELAY_URL=udp://127.0.0.1:$(sed -n 's/^port //p' "$RELAY_LOG")
			return 0
		fi
		sleep 0.1
	done
	echo "the relay did not start:"
	cat "$RELAY_LOG"
	return 1
}

# port_of URL
port_of() {
	echo "${1##*:}"
}
