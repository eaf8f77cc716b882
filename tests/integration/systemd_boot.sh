# The package under a real systemd: systemd boots as PID 1 of a throwaway
# container (new pid, mount, network, uts, ipc and cgroup namespaces; an
# overlay of this machine's root with writes on a tmpfs; a /dev of its own
# and a read-only /sys and /proc/sys, so nothing reaches the host's
# devices or kernel settings; only a minimal target, with udev, sysctl,
# modules, binfmt and the like masked).  There dpkg -i starts slmd.service
# through its postinst, and the test checks what only systemd can show:
# the unit reaches active with STATUS "serving" through Type=notify, runs
# as slmd without capabilities under seccomp and NoNewPrivileges, reload
# succeeds, a stalled worker (test hook) makes the watchdog abort and
# restart it, stop ends with exit status 0, and dpkg -r stops it.
. tests/lib.sh

[ -z "${SLM_SANITIZED:-}" ] ||
	skip "the packaged service is checked by make test: a package build under make asan would relink the sanitized tree without its flags"
[ "$(id -u)" -eq 0 ] || skip "needs root to boot systemd in a container"
for tool in unshare nsenter findmnt ip; do
	command -v $tool >/dev/null 2>&1 || skip "needs $tool to boot systemd in a container"
done
[ -x /lib/systemd/systemd ] || skip "needs systemd (/lib/systemd/systemd)"
cg2=$(findmnt -n -t cgroup2 -o TARGET | head -n 1)
[ -n "$cg2" ] || skip "needs a cgroup2 hierarchy for the container's systemd"
if ! unshare -m -p -n -u -i -C -f true 2>/dev/null; then
	skip "this machine allows no pid/net/cgroup namespaces for a container"
fi

. tests/lib_deb.sh
deb_ready

# The container's cgroup: a child of ours, removed at the end with all
# that systemd made under it.
self_cg=$(sed -n 's/^0:://p' /proc/self/cgroup)
cg=$cg2${self_cg%/}/slmd-test-$$
if ! mkdir "$cg" 2>/dev/null; then
	skip "cannot make a cgroup for the container under $cg2$self_cg"
fi
cg_cleanup() {
	local i
	for ((i = 0; i < 50; i++)); do
		find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
		[ -d "$cg" ] || return 0
		sleep 0.1
	done
	echo "warning: could not remove the container's cgroup $cg"
}
at_exit cg_cleanup
(echo $BASHPID >"$cg/cgroup.procs") 2>/dev/null ||
	skip "cannot move a process into a child cgroup ($cg) for the container"

cat >"$TMP/inner.sh" <<'EOF'
# PID 1 of the new namespaces until it execs systemd.  $1 scratch, $2 debs,
# $3 the file that stands for the console (systemd's own log).
set -eu
ns=$1 debs=$2 console=$3
mount --make-rprivate /
mount -t tmpfs tmpfs "$ns"
mkdir -p "$ns/upper" "$ns/work" "$ns/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$ns/upper,workdir=$ns/work" "$ns/root"
r=$ns/root
# A /dev of its own: the host's devices are not the container's business.
mount -t tmpfs -o mode=0755,nosuid tmpfs "$r/dev"
for n in null zero full random urandom tty; do
	touch "$r/dev/$n"
	mount --bind "/dev/$n" "$r/dev/$n"
done
mkdir -p "$r/dev/pts" "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"
mount -t tmpfs -o mode=1777 tmpfs "$r/dev/shm"
ln -s /proc/self/fd "$r/dev/fd"
# Its console: a file of the test (PID 1 logs to the journal).
touch "$r/dev/console"
mount --bind "$console" "$r/dev/console"
mount -t proc proc "$r/proc"
mount --bind "$r/proc/sys" "$r/proc/sys"
mount -o remount,bind,ro "$r/proc/sys"
mount -t sysfs -o ro sysfs "$r/sys"
mount -t cgroup2 cgroup2 "$r/sys/fs/cgroup"
mount -t tmpfs -o mode=0755 tmpfs "$r/run"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
ip link set lo up
# Not under /tmp: systemd-tmpfiles empties it at boot.
mkdir -p "$r/opt/slmd-test-debs"
cp "$debs"/*.deb "$r/opt/slmd-test-debs/"
rm -f "$r/var/lib/man-db/auto-update"
rm -f "$r/usr/sbin/policy-rc.d"
# Boot only what a service needs; mask what touches hardware or kernel.
sd=$r/etc/systemd/system
printf '[Unit]\nDescription=slmd container test\nRequires=sysinit.target\nAfter=sysinit.target\n' \
	>"$sd/slmd-test.target"
for u in systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
	systemd-udev-trigger.service systemd-udev-settle.service systemd-sysctl.service \
	systemd-modules-load.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount \
	proc-sys-fs-binfmt_misc.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
	sys-kernel-config.mount sys-fs-fuse-connections.mount dev-hugepages.mount \
	dev-mqueue.mount systemd-random-seed.service systemd-hwdb-update.service \
	systemd-firstboot.service kmod-static-nodes.service ldconfig.service \
	systemd-pstore.service systemd-boot-update.service swap.target \
	cryptsetup.target local-fs.target remote-fs.target systemd-remount-fs.service \
	systemd-repart.service systemd-timesyncd.service getty.target \
	console-getty.service systemd-logind.service apparmor.service; do
	ln -sf /dev/null "$sd/$u"
done
echo slmd-test >"$r/etc/hostname"
exec chroot "$r" env -i container=slmd-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	/lib/systemd/systemd --unit=slmd-test.target --log-target=journal --log-level=info
EOF

mkdir -p "$TMP/ns"
: >"$TMP/console.log"
(
	echo $BASHPID >"$cg/cgroup.procs" || exit 1
	exec unshare -m -p -n -u -i -C -f bash "$TMP/inner.sh" "$TMP/ns" "$DEB_DIR" "$TMP/console.log"
) >"$TMP/boot.log" 2>&1 &
upid=$!
# On exit: kill the container's PID 1 (the kernel kills the rest of its
# namespace), let unshare reap it and exit, then reap unshare.
stop_container() {
	local i
	[ -n "${pid1:-}" ] && kill -KILL "$pid1" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		kill -0 "$upid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$upid" 2>/dev/null
	wait "$upid" 2>/dev/null
}
at_exit stop_container
# PID 1 of the container, as this namespace sees it.
pid1=
for ((i = 0; i < 100; i++)); do
	pid1=$(cat "/proc/$upid/task/$upid/children" 2>/dev/null | awk '{ print $1 }')
	[ -n "$pid1" ] && break
	sleep 0.05
done
[ -n "$pid1" ] || { fail "the container did not start: $(tail -n 20 "$TMP/boot.log")"; finish; }

# c CMD...: run in the container.
c() {
	nsenter -t "$pid1" -a -r -w -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive SYSTEMD_PAGER= "$@"
}
state=
for ((i = 0; i < 300; i++)); do
	state=$(c systemctl is-system-running 2>/dev/null)
	case $state in running | degraded) break ;; esac
	sleep 0.1
done
case $state in
running) ok "systemd booted in the container" ;;
degraded) ok "systemd booted in the container (degraded: $(c systemctl --failed --plain --no-legend | awk '{ print $1 }' | tr '\n' ' '))" ;;
*)
	fail "systemd did not boot in 30 s (state '$state'): $(tail -n 20 "$TMP/boot.log" "$TMP/console.log")"
	finish ;;
esac

# prop NAME: a property of slmd.service.
prop() { c systemctl show slmd.service -p "$1" --value; }
# wait_prop NAME VALUE SECONDS: the property is VALUE, or for StatusText
# starts with it ("serving: <model>").
wait_prop() {
	local i v
	for ((i = 0; i < $3 * 10; i++)); do
		v=$(prop "$1")
		[ "$v" = "$2" ] && return 0
		[ "$1" = StatusText ] && [ "${v%%:*}" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# ---- install: the postinst starts the service --------------------------------
if c sh -c 'dpkg -i /opt/slmd-test-debs/*.deb' >"$TMP/dpkg.log" 2>&1; then
	ok "dpkg -i with systemd running"
else
	fail "dpkg -i: $(tail -n 20 "$TMP/dpkg.log")"
	finish
fi
[ "$(c systemctl is-enabled slmd.service)" = enabled ] && ok "slmd.service enabled" ||
	fail "slmd.service is $(c systemctl is-enabled slmd.service)"
[ "$(c systemctl is-enabled slmd-dpdk.service)" = disabled ] && ok "slmd-dpdk.service disabled" ||
	fail "slmd-dpdk.service is $(c systemctl is-enabled slmd-dpdk.service)"
if wait_prop ActiveState active 60 && wait_prop StatusText serving 60; then
	ok "slmd.service active through Type=notify, STATUS \"serving\""
else
	fail "slmd.service: $(prop ActiveState)/$(prop SubState), status '$(prop StatusText)': $(c journalctl -u slmd --no-pager -n 20 -o cat)"
	finish
fi
main=$(prop MainPID)
st=$(c cat "/proc/$main/status")
uid=$(c id -u slmd)
grep -qE "^Uid:\s+$uid\s" <<<"$st" && ok "runs as slmd (uid $uid)" || fail "not running as slmd: $(grep ^Uid <<<"$st")"
for cap in CapEff CapPrm CapBnd CapAmb; do
	grep -qE "^$cap:\s+0+$" <<<"$st" || fail "$cap is not empty: $(grep "^$cap" <<<"$st")"
done
ok "no capability in any set"
if (ulimit -l unlimited) 2>/dev/null; then
	c grep -qE "^Max locked memory +unlimited" "/proc/$main/limits" && ok "LimitMEMLOCK=infinity in force" ||
		fail "locked memory is limited: $(c grep 'Max locked memory' "/proc/$main/limits")"
else
	echo "note: LimitMEMLOCK=infinity cannot take effect on this machine: its root may not raise RLIMIT_MEMLOCK (no CAP_SYS_RESOURCE); not checked here"
fi
grep -qE "^NoNewPrivs:\s+1" <<<"$st" && grep -qE "^Seccomp:\s+2" <<<"$st" &&
	ok "NoNewPrivileges and a seccomp filter in force" || fail "no NNP/seccomp: $(grep -E 'NoNewPrivs|Seccomp' <<<"$st")"
[ "$(c stat -c '%a %U' /run/slmd)" = "750 slmd" ] && ok "/run/slmd 0750 slmd (RuntimeDirectory)" ||
	fail "/run/slmd: $(c stat -c '%a %U' /run/slmd 2>&1)"
c journalctl -u slmd --no-pager -o cat | grep -q "notify socket /run/systemd/notify; watchdog 30.0 s" &&
	ok "slmd sees the notify socket and the 30 s watchdog" || fail "slmd did not report the watchdog"
# Inside slmd's own mount namespace: what the sandbox lets it touch.
if c nsenter -t "$main" -m -r -w -- sh -c '! touch /etc/slmd/w 2>/dev/null &&
	! touch /usr/w 2>/dev/null && touch /var/lib/slmd/w && rm /var/lib/slmd/w &&
	[ -z "$(ls -A /home 2>/dev/null)" ] && [ ! -e /tmp/slmd-host-tmp-probe ]'; then
	ok "sandbox: /etc and /usr read-only, /var/lib/slmd writable, /home hidden"
else
	fail "the sandbox is not as the unit says: $(c nsenter -t "$main" -m -r -w -- sh -c 'touch /etc/slmd/w; touch /usr/w; touch /var/lib/slmd/w; ls -A /home' 2>&1)"
fi

# The RPC dataplane (io_uring) works inside the sandbox: slm ping answers.
if "$BIN/slm" help 2>/dev/null | grep -qw ping; then
	if c slm ping -n 20 --json >"$TMP/ping.json" 2>"$TMP/ping.err" &&
		grep -q '"lost": *0' "$TMP/ping.json"; then
		ok "slm ping through the sandboxed slmd: $(cat "$TMP/ping.json")"
	else
		fail "slm ping through the sandboxed slmd: $(cat "$TMP/ping.json" "$TMP/ping.err")"
	fi
fi

# ---- reload ----------------------------------------------------------------
if c systemctl reload slmd.service && wait_prop ActiveState active 10; then
	c journalctl -u slmd --no-pager -o cat | grep -q "reloaded configuration" &&
		ok "systemctl reload: slmd reloaded and is active" || fail "reload did not reach slmd"
else
	fail "systemctl reload failed: $(prop ActiveState)"
fi

# ---- the watchdog restarts a stalled slmd --------------------------------------
c mkdir -p /etc/systemd/system/slmd.service.d
c sh -c 'printf "[Service]\nEnvironment=SLMD_TEST_STALL_FILE=/run/slmd/stall SLMD_TEST_LOAD_MS=2000\nWatchdogSec=3s\nRestartSec=1s\n" >/etc/systemd/system/slmd.service.d/test.conf'
c systemctl daemon-reload
# A 2 s load (test hook): the unit stays activating, its status shows the
# percent, and it becomes active only with READY=1.
c systemctl restart --no-block slmd.service
seen=
for ((i = 0; i < 100; i++)); do
	if [ "$(prop ActiveState)" = activating ] && prop StatusText | grep -qE "^loading.*[0-9]+%$"; then
		seen=$(prop StatusText)
		break
	fi
	sleep 0.05
done
[ -n "$seen" ] && ok "while loading: activating, status \"$seen\"" ||
	fail "never saw activating with a load percent (now $(prop ActiveState), '$(prop StatusText)')"
if wait_prop StatusText serving 30 && [ "$(prop ActiveState)" = active ]; then
	ok "active once the load is done"
else
	fail "not active after the load: $(prop ActiveState) '$(prop StatusText)'"
fi
restarts=$(prop NRestarts)
c touch /run/slmd/stall
if wait_prop NRestarts $((restarts + 1)) 30; then
	ok "a stalled worker: the watchdog fired and systemd restarted slmd"
	c journalctl --no-pager -o cat _PID=1 | grep -q "slmd.service: Watchdog timeout" &&
		ok "systemd logged the watchdog timeout" || fail "no 'Watchdog timeout' in systemd's log: $(c journalctl --no-pager -o cat _PID=1 | tail -n 10)"
	wait_prop StatusText serving 30 && ok "serving again after the restart (RuntimeDirectory renewed)" ||
		fail "not serving after the watchdog restart"
else
	fail "no restart within 30 s of the stall (NRestarts $(prop NRestarts))"
fi
c journalctl -u slmd --no-pager -o cat | grep -q "watchdog not fed" &&
	ok "slmd logged that the watchdog was not fed" || fail "no 'watchdog not fed' in the journal"
c rm -f /etc/systemd/system/slmd.service.d/test.conf
c systemctl daemon-reload

# ---- stop: drain, exit 0 ---------------------------------------------------------
c systemctl restart slmd.service
wait_prop StatusText serving 30 || fail "not serving after a restart"
c systemctl stop slmd.service
[ "$(prop ActiveState)" = inactive ] && [ "$(prop Result)" = success ] &&
	[ "$(prop ExecMainStatus)" = 0 ] && ok "systemctl stop: inactive, result success, exit status 0" ||
	fail "after stop: $(prop ActiveState) $(prop Result) status $(prop ExecMainStatus)"

# ---- the DPDK unit: its four capabilities reach slmd; it replaces slmd ----
# The container has no NIC to give DPDK: the drop-in adds memif links
# only (and plain pages), so DPDK's EAL really starts inside the sandbox
# and a local client pings slmd over shared memory.
c systemctl start slmd.service
wait_prop ActiveState active 30 || fail "slmd did not start again"
c mkdir -p /etc/systemd/system/slmd-dpdk.service.d
c sh -c 'printf "[Service]\nRuntimeDirectory=slmd slmd/memif\nExecStart=\nExecStart=/usr/sbin/slmd -c /etc/slmd/slmd.conf --set dataplane.kind=dpdk --set dpdk.memif_socket=/run/slmd/memif/memif.sock --set dpdk.hugepages=no\n" >/etc/systemd/system/slmd-dpdk.service.d/test.conf'
c systemctl daemon-reload
if c systemctl start slmd-dpdk.service; then
	if c slm ping -s memif:///run/slmd/memif/memif.sock -n 20 --json >"$TMP/mping.json" 2>"$TMP/mping.err" &&
		grep -q '"lost":0' "$TMP/mping.json"; then
		ok "slmd-dpdk.service: DPDK starts in the sandbox; slm ping over memif answers"
	else
		fail "slmd-dpdk.service over memif: $(cat "$TMP/mping.json" "$TMP/mping.err" | head -c 400); $(c journalctl -u slmd-dpdk --no-pager -o cat | tail -n 8)"
	fi
	dmain=$(c systemctl show slmd-dpdk.service -p MainPID --value)
	dst=$(c cat "/proc/$dmain/status")
	# CAP_NET_ADMIN 12, CAP_NET_RAW 13, CAP_IPC_LOCK 14, CAP_SYS_NICE 23
	if grep -qE "^CapEff:\s+0+807000$" <<<"$dst" && grep -qE "^CapAmb:\s+0+807000$" <<<"$dst" &&
		grep -qE "^CapBnd:\s+0+807000$" <<<"$dst" && grep -qE "^Uid:\s+$uid\s" <<<"$dst"; then
		ok "slmd-dpdk.service: slmd as slmd with exactly NET_ADMIN, NET_RAW, IPC_LOCK, SYS_NICE"
	else
		fail "slmd-dpdk.service capabilities: $(grep -E '^(Uid|Cap)' <<<"$dst" | tr '\n' ' ')"
	fi
	[ "$(prop ActiveState)" = inactive ] && ok "starting slmd-dpdk.service stopped slmd.service (Conflicts)" ||
		fail "slmd.service is $(prop ActiveState) beside slmd-dpdk.service"
	c systemctl stop slmd-dpdk.service
else
	fail "slmd-dpdk.service did not start: $(c journalctl -u slmd-dpdk --no-pager -o cat | tail -n 5)"
fi
c rm -rf /etc/systemd/system/slmd-dpdk.service.d
c systemctl daemon-reload

# ---- dpkg -r stops it --------------------------------------------------------------
c systemctl start slmd.service
wait_prop ActiveState active 30 || fail "slmd did not start again"
main=$(prop MainPID)
c dpkg -r slmd >"$TMP/remove.log" 2>&1 || fail "dpkg -r: $(tail -n 5 "$TMP/remove.log")"
if c test -d "/proc/$main"; then
	fail "slmd (pid $main) still runs after dpkg -r"
else
	ok "dpkg -r stopped the running service"
fi
c dpkg -P slmd >/dev/null 2>&1 || fail "dpkg -P failed"
c test -e /var/lib/slmd && fail "purge left /var/lib/slmd"
finish
