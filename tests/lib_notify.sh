# Sourced by the sd_notify tests after tests/lib.sh: a notify socket the
# test owns (tests/tools/notify_listen.py), slmd started under it, and waits
# on what arrives.  The listener's log has one line per message:
#   <CLOCK_MONOTONIC us> pid=<sender> FIELD=value|FIELD=value...

command -v python3 >/dev/null 2>&1 || skip "python3 is needed for the notify socket"

NOTIFY_SOCK=$TMP/notify.sock
NOTIFY_LOG=$TMP/notify.log
SLMD_LOG=$TMP/slmd.log
SLMD_PID=
LISTENER_PID=

# Start the listener (once per test) and wait until it is bound.
notify_listen() {
	: >"$NOTIFY_LOG"
	python3 tests/tools/notify_listen.py "$NOTIFY_SOCK" "$NOTIFY_LOG" 600 &
	LISTENER_PID=$!
	at_exit "kill $LISTENER_PID 2>/dev/null; wait $LISTENER_PID 2>/dev/null"
	wait_for_line "^listening" 10 || { fail "the notify listener did not start"; finish; }
}

# Clear the log between runs of slmd (the listener keeps appending).
notify_reset() {
	echo "listening" >"$NOTIFY_LOG"
}

# wait_for_line REGEX SECONDS: true once a line of the log matches.
# Gives up early when slmd (SLMD_PID, once started) has exited.
wait_for_line() {
	local re=$1 secs=$2 i
	for ((i = 0; i < secs * 20; i++)); do
		grep -qE -- "$re" "$NOTIFY_LOG" && return 0
		if [ -n "$SLMD_PID" ] && ! kill -0 "$SLMD_PID" 2>/dev/null; then
			grep -qE -- "$re" "$NOTIFY_LOG"
			return
		fi
		sleep 0.05
	done
	return 1
}

# wait_after LINE REGEX SECONDS: true once a line after line number LINE
# matches.
wait_after() {
	local from=$1 re=$2 secs=$3 i
	for ((i = 0; i < secs * 20; i++)); do
		tail -n +"$((from + 1))" "$NOTIFY_LOG" | grep -qE -- "$re" && return 0
		sleep 0.05
	done
	return 1
}

# count_lines REGEX: lines of the log that match.
count_lines() {
	grep -cE -- "$1" "$NOTIFY_LOG" || true
}

# Free UDP port on 127.0.0.1 (for a dataplane, when slmd has one).
free_udp_port() {
	python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# slmd_has_key section.key: true when this slmd knows the key.
slmd_has_key() {
	"$BIN/slmd" --set "$1=$2" --dump-config >/dev/null 2>&1
}

# The --set overrides that keep a test's slmd to itself: its ctl socket
# and, once slmd has a dataplane, a free port.
slmd_private_sets() {
	SLMD_SETS=(--set "ctl.socket=$TMP/ctl.sock")
	if slmd_has_key dataplane.listen udp://127.0.0.1:1; then
		SLMD_PORT=$(free_udp_port)
		SLMD_SETS+=(--set "dataplane.listen=udp://127.0.0.1:$SLMD_PORT")
	fi
}

# start_slmd [VAR=value...] -- [slmd args...]: slmd under the test's
# notify socket, with WATCHDOG_PID set to slmd's own pid (as systemd
# does) when WATCHDOG_USEC is among the variables.
start_slmd() {
	local vars=()
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do vars+=("$1"); shift; done
	[ "${1:-}" = "--" ] && shift
	env NOTIFY_SOCKET="$NOTIFY_SOCK" "${vars[@]}" \
		bash -c 'if [ -n "${WATCHDOG_USEC:-}" ] && [ -z "${WATCHDOG_PID+x}" ]; then export WATCHDOG_PID=$$; fi; exec "$@"' \
		slmd "$BIN/slmd" "$@" 2>>"$SLMD_LOG" &
	SLMD_PID=$!
	at_exit "kill -KILL $SLMD_PID 2>/dev/null"
}

# stop_slmd: SIGTERM and wait; sets SLMD_STATUS.
stop_slmd() {
	kill -TERM "$SLMD_PID" 2>/dev/null
	wait_exit "$SLMD_PID" 60
}

# wait_exit PID SECONDS: wait for slmd to exit (SLMD_STATUS = its status,
# or "timeout" after killing it).
wait_exit() {
	local pid=$1 secs=$2 i
	for ((i = 0; i < secs * 20; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid"
			SLMD_STATUS=$?
			return 0
		fi
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	SLMD_STATUS=timeout
	return 1
}

# Line number of the first line matching REGEX (0 if none).
first_line() {
	local n
	n=$(grep -nE -- "$1" "$NOTIFY_LOG" | head -n 1 | cut -d: -f1)
	echo "${n:-0}"
}
