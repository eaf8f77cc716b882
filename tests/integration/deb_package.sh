# make deb: the packages build with debhelper, hold what they must with
# the right modes, carry maintainer scripts that create the user and the
# directories before enabling slmd.service (and not slmd-dpdk.service),
# stop both on removal and delete config and models only on purge; lintian
# finds no error or warning; debian/ agrees with the Makefile and the
# version.  deb_install.sh installs them into a throwaway root,
# systemd_boot.sh under a running systemd.
. tests/lib.sh

[ -z "${SLM_SANITIZED:-}" ] ||
	skip "packages are built and checked by make test: a package build under make asan would relink the sanitized tree without its flags"

for tool in dpkg-buildpackage dh dpkg-deb lintian; do
	command -v $tool >/dev/null 2>&1 || { fail "$tool missing (DEB_PACKAGES has its package)"; finish; }
done

# debian/ in step with the rest of the tree.
version=$(sed -n 's/^#define SLM_VERSION "\(.*\)"/\1/p' common/version.h)
[ "$(dpkg-parsechangelog -S Version)" = "$version" ] &&
	ok "debian/changelog is at version $version" ||
	fail "debian/changelog is at $(dpkg-parsechangelog -S Version), common/version.h at $version"
bdeps=$(sed -n '/^Build-Depends:/,/^[A-Z]/p' debian/control)
missing=
for pkg in $(sed -n '/^DEB_PACKAGES :=/,/^$/p' Makefile | tr -d '\\' | tr ' ' '\n' | grep -E '^lib.*-dev$'); do
	grep -qw -- "$pkg" <<<"$bdeps" || missing="$missing $pkg"
done
# libdpdk-dev joins Build-Depends when the DPDK dataplane links it.
missing=$(tr ' ' '\n' <<<"$missing" | grep -v '^libdpdk-dev$' | tr '\n' ' ' | sed 's/^ *//; s/ *$//')
[ -z "$missing" ] && ok "Build-Depends has every library of DEB_PACKAGES" ||
	fail "debian/control Build-Depends lacks: $missing"

# make deb, unless deb_install.sh just ran it on this very tree.
. tests/lib_deb.sh
deb_ready
deb=$(ls "$BUILD"/deb/slmd_"$version"_amd64.deb 2>/dev/null)
[ -n "$deb" ] || { fail "no slmd_${version}_amd64.deb in $BUILD/deb: $(ls "$BUILD/deb")"; finish; }
ok "make deb built $(cd "$BUILD/deb" && ls ./*.deb | tr '\n' ' ')"
[ -f "$BUILD/deb/slmd_${version}_amd64.changes" ] && ok "with its .changes beside it" ||
	fail "no .changes in $BUILD/deb"

# ---- contents of slmd -------------------------------------------------------
dpkg-deb --contents "$deb" | awk '{ print $1, $6 }' >"$TMP/contents"
expect_in_deb() { # MODE PATH
	if grep -qxF -- "$1 ./${2#/}" "$TMP/contents"; then
		ok "slmd.deb: $2 ($1)"
	else
		fail "slmd.deb: no $2 with mode $1 (have: $(grep -F -- "${2#/}" "$TMP/contents" | head -n 1))"
	fi
}
expect_in_deb -rwxr-xr-x /usr/sbin/slmd
expect_in_deb -rwxr-xr-x /usr/bin/slmctl
expect_in_deb -rwxr-xr-x /usr/bin/slm
expect_in_deb -rw-r--r-- /etc/slmd/slmd.conf
expect_in_deb -rw-r--r-- /lib/systemd/system/slmd.service
expect_in_deb -rw-r--r-- /lib/systemd/system/slmd-dpdk.service
expect_in_deb -rw-r--r-- /usr/lib/sysusers.d/slmd.conf
expect_in_deb -rw-r--r-- /usr/lib/tmpfiles.d/slmd.conf
expect_in_deb -rw-r--r-- /usr/share/man/man8/slmd.8.gz
expect_in_deb -rw-r--r-- /usr/share/man/man8/slmctl.8.gz
expect_in_deb -rw-r--r-- /usr/share/man/man1/slm.1.gz
expect_in_deb -rw-r--r-- /usr/share/doc/slmd/copyright
expect_in_deb -rw-r--r-- /usr/share/doc/slmd/operations.md.gz
for v in tests/data/vocab/*.gguf.xz; do
	expect_in_deb -rw-r--r-- "/usr/share/slmd/vocab/$(basename "$v" .xz)"
done
grep -q "libslmclient\|/usr/include" "$TMP/contents" &&
	fail "slmd.deb carries library files that belong to libslmclient*"
mkdir -p "$TMP/x"
dpkg-deb -x "$deb" "$TMP/x"
if readelf -S "$TMP/x/usr/sbin/slmd" | grep -q "\.debug_info"; then
	fail "slmd is not stripped (debug info belongs in slmd-dbgsym)"
else
	ok "binaries stripped (symbols in slmd-dbgsym)"
fi

# ---- control and maintainer scripts -----------------------------------------
mkdir -p "$TMP/ctl"
dpkg-deb -e "$deb" "$TMP/ctl"
grep -qx "/etc/slmd/slmd.conf" "$TMP/ctl/conffiles" &&
	ok "/etc/slmd/slmd.conf is a conffile (dpkg keeps an edited one)" ||
	fail "slmd.conf is not a conffile"
depends=$(dpkg-deb -f "$deb" Depends)
for need in libc6 liburing2 libsystemd0 "systemd | systemd-standalone-sysusers"; do
	grep -qF -- "$need" <<<"$depends" || fail "Depends lacks $need: $depends"
done
ok "Depends: $depends"
post=$TMP/ctl/postinst
n_users=$(grep -n "systemd-sysusers" "$post" | head -n 1 | cut -d: -f1)
n_tmp=$(grep -n "systemd-tmpfiles" "$post" | head -n 1 | cut -d: -f1)
n_enable=$(grep -n "deb-systemd-helper enable 'slmd.service'" "$post" | head -n 1 | cut -d: -f1)
n_start=$(grep -n 'deb-systemd-invoke $_dh_action .slmd.service' "$post" | head -n 1 | cut -d: -f1)
if [ -n "$n_users" ] && [ -n "$n_tmp" ] && [ -n "$n_enable" ] && [ -n "$n_start" ] &&
	[ "$n_users" -lt "$n_tmp" ] && [ "$n_tmp" -lt "$n_enable" ] && [ "$n_enable" -lt "$n_start" ]; then
	ok "postinst: user, then directories, then enable and start slmd.service"
else
	fail "postinst order: sysusers@${n_users:-?} tmpfiles@${n_tmp:-?} enable@${n_enable:-?} start@${n_start:-?}"
fi
grep -q "deb-systemd-helper enable 'slmd-dpdk.service'" "$post" &&
	! grep -B3 "deb-systemd-helper enable 'slmd-dpdk.service'" "$post" | grep -q "was-enabled" &&
	fail "postinst enables slmd-dpdk.service on a fresh install"
grep -q "deb-systemd-invoke [^ ]* 'slmd-dpdk.service'" "$post" &&
	fail "postinst starts slmd-dpdk.service"
ok "postinst leaves slmd-dpdk.service to the operator"
for unit in slmd.service slmd-dpdk.service; do
	grep -q "deb-systemd-invoke stop '$unit'" "$TMP/ctl/prerm" &&
		ok "prerm stops $unit on removal" || fail "prerm does not stop $unit"
done
if grep -A2 '"$1" = "purge"' "$TMP/ctl/postrm" | grep -q 'rm -rf "${DPKG_ROOT:-}/var/lib/slmd" "${DPKG_ROOT:-}/etc/slmd"' &&
	! grep -B2 'rm -rf' "$TMP/ctl/postrm" | grep -q '"remove"'; then
	ok "postrm deletes /etc/slmd and /var/lib/slmd on purge only"
else
	fail "postrm does not limit the deletion to purge"
fi

# ---- the client library packages ----------------------------------------------
if [ -n "$(ls client/client*.c 2>/dev/null)" ]; then
	lib=$(ls "$BUILD"/deb/libslmclient1_*.deb 2>/dev/null)
	dev=$(ls "$BUILD"/deb/libslmclient-dev_*.deb 2>/dev/null)
	if [ -z "$lib" ] || [ -z "$dev" ]; then
		fail "no libslmclient1/libslmclient-dev package although the tree has the client library"
	else
		dpkg-deb --contents "$lib" >"$TMP/lib.contents"
		dpkg-deb --contents "$dev" >"$TMP/dev.contents"
		grep -qE "\./usr/lib/[^/]+/libslmclient\.so\.[0-9]+$" "$TMP/lib.contents" &&
			ok "libslmclient1 holds the shared library (multiarch)" ||
			fail "libslmclient1 lacks the shared library: $(cat "$TMP/lib.contents")"
		dpkg-deb -I "$lib" shlibs >/dev/null 2>&1 &&
			ok "libslmclient1 declares its shlibs" || fail "libslmclient1 has no shlibs file"
		for f in '/usr/lib/[^/]+/libslmclient\.a$' '/usr/lib/[^/]+/libslmclient\.so ->' \
			'/usr/include/slm/[^/]+\.h$' '/usr/lib/[^/]+/pkgconfig/[^/]+\.pc$'; do
			grep -qE -- "\.$f" "$TMP/dev.contents" || fail "libslmclient-dev lacks $f"
		done
		ok "libslmclient-dev holds headers, .a, .so and the .pc"
	fi
else
	[ -z "$(ls "$BUILD"/deb/libslmclient* 2>/dev/null)" ] &&
		ok "no client library in this tree: only the slmd package" ||
		fail "libslmclient packages built from a tree without the library"
fi

# ---- lintian ----------------------------------------------------------------
lintian --tag-display-limit 0 --display-info --pedantic \
	"$BUILD/deb/slmd_${version}_amd64.changes" >"$TMP/lintian.log" 2>&1
bad=$(grep -E '^[EW]: ' "$TMP/lintian.log" || true)
[ -z "$bad" ] && ok "lintian: no error, no warning ($(grep -cE '^[IPX]: ' "$TMP/lintian.log") info/pedantic tags)" ||
	fail "lintian: $bad"
finish
