# The .deb installed into a throwaway root: an overlay of this machine's
# own root in a private mount namespace (writes go to a tmpfs and vanish
# with the namespace; the host's dpkg database, users and units are never
# touched).  Installing creates the user slmd and its directories and
# enables slmd.service (not slmd-dpdk.service); the installed units
# verify; reinstalling keeps an edited conffile; remove keeps config and
# models; purge deletes both.  Services are not started: the throwaway root
# has no running systemd (and a policy-rc.d that forbids starts).
. tests/lib.sh

[ -z "${SLM_SANITIZED:-}" ] ||
	skip "packages are built and checked by make test: a package build under make asan would relink the sanitized tree without its flags"

[ "$(id -u)" -eq 0 ] || skip "needs root for a throwaway root (mount namespace + overlay)"
command -v unshare >/dev/null 2>&1 || skip "needs unshare (util-linux) for a throwaway root"
mkdir -p "$TMP/probe"
unshare -m sh -c 'mount -t tmpfs tmpfs "$1"' _ "$TMP/probe" 2>/dev/null ||
	skip "this machine allows no mount namespace (unshare -m) for a throwaway root"

. tests/lib_deb.sh
deb_ready

cat >"$TMP/inner.sh" <<'EOF'
# Runs in a private mount namespace: $1 scratch dir, $2 the .debs.
set -u
ns=$1 debs=$2
failures=0
ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
mount --make-rprivate / 2>/dev/null
mount -t tmpfs tmpfs "$ns" || exit 3
mkdir -p "$ns/upper" "$ns/work" "$ns/root"
if ! mount -t overlay overlay -o "lowerdir=/,upperdir=$ns/upper,workdir=$ns/work" "$ns/root" 2>"$ns/err"; then
	echo "overlayfs over / is not possible here: $(cat "$ns/err")"
	exit 77
fi
r=$ns/root
mount -t proc proc "$r/proc"
mount --bind /dev "$r/dev"
mount -t tmpfs tmpfs "$r/run"
mount -t tmpfs tmpfs "$r/tmp"
mkdir -p "$r/tmp/debs"
cp "$debs"/*.deb "$r/tmp/debs/"
# No service starts in here, and no man-db index rebuild (slow).
printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
chmod 0755 "$r/usr/sbin/policy-rc.d"
rm -f "$r/var/lib/man-db/auto-update"
inroot() {
	chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"
}
# A leftover of an earlier install in this machine's root is purged first
# (in the overlay only).
inroot sh -c 'dpkg -s slmd >/dev/null 2>&1 && dpkg -P slmd libslmclient-dev libslmclient1 >/dev/null 2>&1; true'
inroot sh -c 'rm -rf /etc/slmd /var/lib/slmd /etc/systemd/system/multi-user.target.wants/slmd*.service'

if inroot sh -c 'dpkg -i /tmp/debs/*.deb' >"$ns/install.log" 2>&1; then
	ok "dpkg -i $(cd "$debs" && ls | tr '\n' ' ')"
else
	fail "dpkg -i: $(tail -n 20 "$ns/install.log")"
	exit 1
fi
[ "$(inroot dpkg-query -W -f='${Status}' slmd)" = "install ok installed" ] &&
	ok "slmd: install ok installed" || fail "slmd status: $(inroot dpkg-query -W -f='${Status}' slmd)"
pw=$(inroot getent passwd slmd)
uid=$(echo "$pw" | cut -d: -f3)
case $pw in
slmd:*:/var/lib/slmd:/usr/sbin/nologin) ok "user slmd created: $pw" ;;
*) fail "user slmd: '$pw'" ;;
esac
for d in /var/lib/slmd /var/lib/slmd/models; do
	[ "$(inroot stat -c '%a %U %G' "$d" 2>&1)" = "750 slmd slmd" ] && ok "$d 0750 slmd:slmd" ||
		fail "$d: $(inroot stat -c '%a %U %G' "$d" 2>&1)"
done
link=$(inroot readlink /etc/systemd/system/multi-user.target.wants/slmd.service)
[ "$link" = /lib/systemd/system/slmd.service ] && ok "slmd.service enabled" ||
	fail "slmd.service not enabled: '$link'"
inroot test -e /etc/systemd/system/multi-user.target.wants/slmd-dpdk.service &&
	fail "slmd-dpdk.service enabled by the install" || ok "slmd-dpdk.service left disabled"
for u in slmd slmd-dpdk; do
	out=$(inroot systemd-analyze verify "/lib/systemd/system/$u.service" 2>&1)
	[ $? -eq 0 ] && [ -z "$out" ] && ok "installed $u.service verifies (binary and man pages in place)" ||
		fail "installed $u.service: $out"
done
inroot /usr/sbin/slmd --version | grep -q "^slmd $SLM_VERSION" && ok "the installed slmd runs" ||
	fail "the installed slmd does not run"
inroot man -w slmd 2>/dev/null | grep -q "/usr/share/man/man8/slmd.8.gz" && ok "man slmd finds slmd(8)" ||
	fail "man slmd does not find the page"
if inroot dpkg -s libslmclient-dev >/dev/null 2>&1; then
	mod=$(inroot dpkg -L libslmclient-dev | grep '/pkgconfig/.*\.pc$' | head -n 1 | xargs -r basename | sed 's/\.pc$//')
	if inroot sh -c "printf '#include <slm/client.h>\nint main(void) { return 0; }\n' > /tmp/use.c &&
		cc -Wall -Werror -o /tmp/use /tmp/use.c -Wl,--no-as-needed \$(pkg-config --cflags --libs $mod) &&
		/tmp/use && ldd /tmp/use" >"$ns/use.log" 2>&1 &&
		grep -qE "libslmclient.so.1 => (/usr)?/lib/[^/]+/libslmclient.so.1" "$ns/use.log"; then
		ok "a program builds against the installed libslmclient-dev ($mod) and runs"
	else
		fail "building against the installed libslmclient-dev ($mod): $(cat "$ns/use.log")"
	fi
fi

# Reinstall over an edited conffile: kept.
echo "; edited by the operator" >>"$r/etc/slmd/slmd.conf"
echo "model" >"$r/var/lib/slmd/models/m.gguf"
inroot sh -c 'dpkg -i --force-confold /tmp/debs/slmd_*.deb' >"$ns/reinstall.log" 2>&1 ||
	fail "reinstall: $(tail -n 5 "$ns/reinstall.log")"
grep -q "edited by the operator" "$r/etc/slmd/slmd.conf" && ok "reinstall keeps the edited slmd.conf" ||
	fail "reinstall replaced the edited slmd.conf"

# Remove: the programs go, config and models stay.
inroot dpkg -r slmd >"$ns/remove.log" 2>&1 || fail "dpkg -r: $(tail -n 5 "$ns/remove.log")"
[ ! -e "$r/usr/sbin/slmd" ] && ok "remove: /usr/sbin/slmd gone" || fail "remove left /usr/sbin/slmd"
grep -q "edited by the operator" "$r/etc/slmd/slmd.conf" 2>/dev/null && ok "remove keeps /etc/slmd/slmd.conf" ||
	fail "remove deleted /etc/slmd/slmd.conf"
[ -f "$r/var/lib/slmd/models/m.gguf" ] && ok "remove keeps the models" || fail "remove deleted the models"
[ "$(inroot dpkg-query -W -f='${Status}' slmd)" = "deinstall ok config-files" ] &&
	ok "slmd: deinstall ok config-files" || fail "after remove: $(inroot dpkg-query -W -f='${Status}' slmd)"

# Purge: config and models go; the user stays (Debian's practice).
inroot dpkg -P slmd >"$ns/purge.log" 2>&1 || fail "dpkg -P: $(tail -n 5 "$ns/purge.log")"
[ ! -e "$r/etc/slmd" ] && ok "purge deletes /etc/slmd" || fail "purge left /etc/slmd: $(ls -A "$r/etc/slmd")"
[ ! -e "$r/var/lib/slmd" ] && ok "purge deletes /var/lib/slmd" || fail "purge left /var/lib/slmd"
inroot test -e /etc/systemd/system/multi-user.target.wants/slmd.service &&
	fail "purge left the enable symlink" || ok "purge removes the enable symlink"
inroot dpkg -s slmd >/dev/null 2>&1 && fail "slmd still known to dpkg after purge"
inroot getent passwd slmd >/dev/null && ok "the user slmd stays after purge"
exit $((failures > 0))
EOF

host_before=$(dpkg-query -W -f='${Status}' slmd 2>&1; ls -d /etc/slmd /var/lib/slmd 2>&1; getent passwd slmd)
mkdir -p "$TMP/ns"
SLM_VERSION=$DEB_VERSION unshare -m bash "$TMP/inner.sh" "$TMP/ns" "$DEB_DIR" >"$TMP/inner.log" 2>&1
status=$?
cat "$TMP/inner.log"
case $status in
0) ;;
77) skip "$(tail -n 1 "$TMP/inner.log")" ;;
*) failures=$((failures + $(grep -c '^FAIL' "$TMP/inner.log") + 0))
   [ "$failures" -gt 0 ] || fail "the throwaway root failed (status $status)" ;;
esac
# The namespace is gone: nothing of the install may be left on the host.
host_after=$(dpkg-query -W -f='${Status}' slmd 2>&1; ls -d /etc/slmd /var/lib/slmd 2>&1; getent passwd slmd)
[ "$host_before" = "$host_after" ] && ok "the host is untouched (dpkg status, /etc/slmd, /var/lib/slmd, user)" ||
	fail "the throwaway install leaked to the host: before '$host_before', after '$host_after'"
finish
