# slmd talks to systemd: a notify socket owned by the test sees
# STATUS (with load percent) -> READY -> WATCHDOG pings -> (SIGHUP)
# RELOADING with MONOTONIC_USEC -> READY -> (SIGTERM) STOPPING, exit 0; a
# stalled worker (test hook) stops the pings and they resume when it moves;
# no pings without a watchdog, nor for a watchdog meant for another pid.
. tests/lib.sh
. tests/lib_notify.sh

notify_listen
slmd_private_sets
cat >"$TMP/slmd.conf" <<EOF
[daemon]
health_interval_ms = 100
drain_timeout_ms = 30000
EOF

# ---- 1. the whole life ------------------------------------------------------
start_slmd WATCHDOG_USEC=3000000 SLMD_TEST_LOAD_MS=400 \
	SLMD_TEST_STALL_FILE="$TMP/stall" SLMD_TEST_INFLIGHT_MS=500 -- \
	-c "$TMP/slmd.conf" "${SLMD_SETS[@]}"

if ! wait_for_line "READY=1" 120; then
	fail "no READY=1 within 120 s; slmd log: $(tail -n 5 "$SLMD_LOG")"
	finish
fi
ready=$(first_line "READY=1")
first_msg=$(sed -n 2p "$NOTIFY_LOG")
case $first_msg in
*" STATUS="*) ok "the first message is a STATUS ($first_msg)" ;;
*) fail "first message is not a STATUS: $first_msg" ;;
esac
if head -n "$ready" "$NOTIFY_LOG" | grep -E "STATUS=loading" | grep -q "%"; then
	ok "STATUS lines with the load percent before READY"
else
	fail "no STATUS=loading ...% before READY: $(head -n "$ready" "$NOTIFY_LOG")"
fi
if head -n $((ready - 1)) "$NOTIFY_LOG" | grep -q "READY=1"; then
	fail "READY=1 twice before serving"
fi
if sed -n "${ready}p" "$NOTIFY_LOG" | grep -q "STATUS=serving"; then
	ok "READY=1 comes with STATUS=serving"
else
	fail "READY=1 without STATUS=serving: $(sed -n "${ready}p" "$NOTIFY_LOG")"
fi
if grep -v "^listening" "$NOTIFY_LOG" | grep -qv " pid=$SLMD_PID "; then
	fail "a message from another pid than slmd's ($SLMD_PID): NotifyAccess=main would drop it"
else
	ok "every message comes from slmd's main pid"
fi

# Pings, at the health interval: well within half the watchdog period.
wait_for_line "WATCHDOG=1" 10 || fail "no WATCHDOG=1 after READY"
for ((i = 0; i < 100; i++)); do
	[ "$(count_lines "WATCHDOG=1")" -ge 5 ] && break
	sleep 0.05
done
pings=$(count_lines "WATCHDOG=1")
if [ "$pings" -ge 5 ]; then
	ok "$pings watchdog pings"
else
	fail "only $pings watchdog pings in 5 s at a 100 ms health interval"
fi
max_gap=$(grep "WATCHDOG=1" "$NOTIFY_LOG" | awk 'NR > 1 { g = $1 - prev; if (g > m) m = g } { prev = $1 } END { print m + 0 }')
if [ "$max_gap" -le 1500000 ]; then
	ok "largest gap between pings $((max_gap / 1000)) ms (watchdog 3 s)"
else
	fail "a gap of $((max_gap / 1000)) ms between pings: half the watchdog is 1500 ms"
fi

# ---- 2. a stalled worker stops the pings ------------------------------------
touch "$TMP/stall"
sleep 0.3 # a tick that measured progress before the stall may still ping
before=$(count_lines "WATCHDOG=1")
sleep 1.5
after=$(count_lines "WATCHDOG=1")
if [ "$after" -eq "$before" ]; then
	ok "no ping in 1.5 s (15 health ticks) while the worker is stalled"
else
	fail "$((after - before)) ping(s) while the worker was stalled"
fi
grep -q "watchdog not fed" "$SLMD_LOG" && ok "slmd logs that the watchdog is not fed" ||
	fail "no 'watchdog not fed' in slmd's log"
grep -q "component testhook makes no progress" "$SLMD_LOG" &&
	ok "slmd names the component that makes no progress" ||
	fail "the log does not name the stalled component"
rm -f "$TMP/stall"
resumed=0
for ((i = 0; i < 60; i++)); do
	if [ "$(count_lines "WATCHDOG=1")" -gt "$after" ]; then resumed=1; break; fi
	sleep 0.05
done
[ "$resumed" -eq 1 ] && ok "pings resume when the worker moves again" ||
	fail "no ping within 3 s after the stall ended"
kill -0 "$SLMD_PID" 2>/dev/null || fail "slmd died during the stall"

# ---- 3. SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 ---------------
sed -i 's/^drain_timeout_ms = .*/drain_timeout_ms = 20000/' "$TMP/slmd.conf"
kill -HUP "$SLMD_PID"
if wait_for_line "RELOADING=1" 10; then
	line=$(grep -E "RELOADING=1" "$NOTIFY_LOG" | head -n 1)
	recv_us=${line%% *}
	mono=$(sed -n 's/.*MONOTONIC_USEC=\([0-9]*\).*/\1/p' <<<"$line")
	if [ -n "$mono" ] && [ "$mono" -le "$recv_us" ] && [ $((recv_us - mono)) -lt 2000000 ]; then
		ok "RELOADING=1 with MONOTONIC_USEC=$mono (received at $recv_us)"
	else
		fail "RELOADING=1 without a fitting MONOTONIC_USEC: $line"
	fi
	reload=$(first_line "RELOADING=1")
	if wait_after "$reload" "READY=1" 10; then
		ok "READY=1 after the reload"
	else
		fail "no READY=1 after RELOADING=1"
	fi
else
	fail "no RELOADING=1 after SIGHUP"
fi
for ((i = 0; i < 100; i++)); do
	grep -q "reloaded configuration: 1 key changed" "$SLMD_LOG" && break
	sleep 0.05
done
grep -q "reloaded configuration: 1 key changed" "$SLMD_LOG" &&
	ok "the reload applied daemon.drain_timeout_ms" ||
	fail "the reload did not apply the changed key: $(grep reload "$SLMD_LOG")"

# ---- 4. SIGTERM: STOPPING, the in-flight work finishes, exit 0 --------------
kill -TERM "$SLMD_PID"
wait_exit "$SLMD_PID" 60
if [ "$SLMD_STATUS" = 0 ]; then
	ok "slmd exits 0 after SIGTERM"
else
	fail "slmd exit status $SLMD_STATUS after SIGTERM; log: $(tail -n 5 "$SLMD_LOG")"
fi
drain_line=$(grep -E "STOPPING=1\|STATUS=draining" "$NOTIFY_LOG" | head -n 1)
stop_line=$(grep -E "STOPPING=1\|STATUS=stopping" "$NOTIFY_LOG" | head -n 1)
if [ -n "$drain_line" ] && [ -n "$stop_line" ]; then
	ok "STOPPING=1 with STATUS=draining, then STATUS=stopping"
	extend=$(sed -n 's/.*EXTEND_TIMEOUT_USEC=\([0-9]*\).*/\1/p' <<<"$drain_line")
	[ "$extend" = 35000000 ] &&
		ok "the stop timeout extends to the reloaded drain timeout + 15 s" ||
		fail "EXTEND_TIMEOUT_USEC=$extend on drain, expected 35000000 (20 s reloaded + 15 s)"
	waited=$(( (${stop_line%% *} - ${drain_line%% *}) / 1000 ))
	[ "$waited" -ge 500 ] &&
		ok "the drain waited ${waited} ms for the in-flight work (500 ms)" ||
		fail "the drain ended after ${waited} ms, before the in-flight work (500 ms)"
else
	fail "no STOPPING=1 draining/stopping pair: $(tail -n 5 "$NOTIFY_LOG")"
fi
grep -q "draining: waiting for in-flight" "$NOTIFY_LOG" &&
	ok "a STATUS line while the drain waits" ||
	fail "no 'draining: waiting for in-flight' STATUS"
stop_n=$(first_line "STATUS=stopping")
if [ "$stop_n" -gt 0 ] && tail -n +"$((stop_n + 1))" "$NOTIFY_LOG" | grep -q "WATCHDOG=1"; then
	fail "a ping after STOPPING"
fi

# ---- 5. no watchdog: no pings; a watchdog for another pid: no pings ---------
for variant in none other-pid; do
	notify_reset
	if [ "$variant" = none ]; then
		start_slmd -- -c "$TMP/slmd.conf" "${SLMD_SETS[@]}"
	else
		start_slmd WATCHDOG_USEC=3000000 WATCHDOG_PID=1 -- \
			-c "$TMP/slmd.conf" "${SLMD_SETS[@]}"
	fi
	if wait_for_line "READY=1" 120; then
		sleep 1
		n=$(count_lines "WATCHDOG=1")
		[ "$n" -eq 0 ] && ok "watchdog $variant: no pings in 1 s of serving" ||
			fail "watchdog $variant: $n pings"
	else
		fail "watchdog $variant: no READY=1"
	fi
	stop_slmd
	[ "$SLMD_STATUS" = 0 ] || fail "watchdog $variant: exit status $SLMD_STATUS"
done

# ---- 6. not under systemd at all: runs and stops as before -----------------
"$BIN/slmd" -c "$TMP/slmd.conf" "${SLMD_SETS[@]}" 2>"$TMP/plain.log" &
pid=$!
at_exit "kill -KILL $pid 2>/dev/null"
for ((i = 0; i < 2400; i++)); do
	grep -q "state: serving" "$TMP/plain.log" && break
	sleep 0.05
done
kill -TERM "$pid"
wait_exit "$pid" 60
[ "$SLMD_STATUS" = 0 ] && ok "without NOTIFY_SOCKET slmd serves and exits 0" ||
	fail "without NOTIFY_SOCKET: exit status $SLMD_STATUS"
grep -q "notify socket" "$TMP/plain.log" && fail "slmd claims a notify socket without NOTIFY_SOCKET"

# ---- 7. a bad test hook value is refused at start ---------------------------
expect_fail "SLMD_TEST_LOAD_MS=abc is refused" "SLMD_TEST_LOAD_MS" -- \
	env SLMD_TEST_LOAD_MS=abc "$BIN/slmd" -c "$TMP/slmd.conf" "${SLMD_SETS[@]}"
finish
