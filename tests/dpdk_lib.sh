# Sourced by the DPDK integration tests after tests/lib.sh and
# tests/rpc_lib.sh: what they need (root, a DPDK build), a pair of
# network namespaces joined by a veth, slmd with the DPDK backend in one
# of them, and the cleanup of everything, DPDK's runtime files included,
# however the test ends.
#
#   NS_S, NS_C      the server's and the client's namespaces
#   IF_S, IF_C      the veth ends in them
#   SRV_IP, CLI_IP  10.77.0.2 (slmd's DPDK port), 10.77.0.1 (the kernel)

# dpdk_require: skip unless this can run here.
dpdk_require() {
	[ "$(id -u)" = 0 ] || skip "needs root for netns/DPDK"
	grep -q 'define HAVE_DPDK 1' "$BUILD/gen/slm_features.h" 2>/dev/null ||
		skip "this build has no DPDK (libdpdk-dev missing when it was built)"
	local t
	for t in ip ethtool python3; do
		command -v "$t" >/dev/null || skip "needs $t (make deps)"
	done
}

# Names unique to this run (an interface name has at most 15 characters).
TAG=s$(printf '%x' $$ | tail -c 6)
NS_S=${TAG}srv NS_C=${TAG}cli IF_S=${TAG}s IF_C=${TAG}c
SRV_IP=10.77.0.2 CLI_IP=10.77.0.1

in_srv() { ip netns exec "$NS_S" "$@"; }
in_cli() { ip netns exec "$NS_C" "$@"; }

# DPDK processes keep a runtime folder per file prefix (slmd-PID,
# slmc-PID); slmd and the client library remove theirs at start, so only
# a process killed at the wrong moment leaves one.  Remove those whose
# process is gone.
dpdk_cleanup_runtime() {
	local d pid
	for d in /var/run/dpdk/slmd-* /var/run/dpdk/slmc-*; do
		[ -d "$d" ] || continue
		pid=${d##*-}
		kill -0 "$pid" 2>/dev/null || rm -rf "$d"
	done
}
at_exit dpdk_cleanup_runtime
# A test stopped by a signal (run.sh's timeout) still cleans up.
trap 'exit 143' INT TERM

# netns_pair: the two namespaces and the veth between them, IPv6 off (no
# router solicitations in the counters), the kernel end with checksum
# offload off (a veth otherwise hands the other end UDP checksums left
# for hardware that is not there, and slmd drops them as wrong).
netns_pair() {
	ip netns add "$NS_S" || return 1
	at_exit "ip netns del $NS_S 2>/dev/null"
	ip netns add "$NS_C" || return 1
	at_exit "ip netns del $NS_C 2>/dev/null"
	ip link add "$IF_S" type veth peer name "$IF_C" || return 1
	ip link set "$IF_S" netns "$NS_S" && ip link set "$IF_C" netns "$NS_C" || return 1
	local ns
	for ns in "$NS_S" "$NS_C"; do
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
		ip -n "$ns" link set lo up
	done
	ip -n "$NS_S" link set "$IF_S" up
	ip -n "$NS_C" addr add "$CLI_IP/24" dev "$IF_C"
	ip -n "$NS_C" link set "$IF_C" up
	in_cli ethtool -K "$IF_C" tx off >/dev/null || return 1
}

# start_dpdk NAME [slmd args...]: slmd with the DPDK backend in NS_S, its
# port an af_packet vdev on IF_S at SRV_IP:7070 unless the args say
# otherwise, with a control socket of its own (another slmd on the
# machine may hold the default one); waits for "ready".  Sets SLMD_PID,
# SLMD_URL, SLMD_LOG.
start_dpdk() {
	local name=$1
	shift
	SLMD_LOG=$TMP/slmd.$name.log
	# ip netns exec execs slmd in place: $! is slmd's pid.
	ip netns exec "$NS_S" "$BIN/slmd" --set dataplane.kind=dpdk \
		--set "dpdk.port=net_af_packet0,iface=$IF_S" \
		--set "dataplane.listen=udp://$SRV_IP:7070" \
		--set log.target=stderr --set "ctl.socket=$TMP/ctl.$name.sock" \
		"$@" >"$SLMD_LOG" 2>&1 &
	SLMD_PID=$!
	at_exit "kill $SLMD_PID 2>/dev/null; wait $SLMD_PID 2>/dev/null"
	local i
	for ((i = 0; i < 150; i++)); do
		if grep -q 'ready: serving on' "$SLMD_LOG" 2>/dev/null; then
			SLMD_URL=$(sed -n 's/.*ready: serving on \([a-z]*:[^ ]*\).*/\1/p' "$SLMD_LOG" | head -n1)
			return 0
		fi
		kill -0 "$SLMD_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "slmd ($name) did not become ready:"
	sed 's/^/  | /' "$SLMD_LOG"
	return 1
}

# serving_core_present URL [ns-command]: true when slmd answers generate
# (the serving core is wired in), false while it says "no model loaded".
serving_core_present() {
	local url=$1
	shift
	"$@" "$BIN/slm" generate -s "$url" --max-tokens 1 --timeout 5000 hi \
		>"$TMP/probe" 2>&1
	! grep -q 'no model loaded' "$TMP/probe"
}
