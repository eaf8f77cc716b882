# make install PREFIX=/usr DESTDIR=tmp: every file in its place with its
# mode; the client library (when the tree has one) with its SONAME, its
# symlink, its headers and a pkg-config file a program can build with; the
# vocabularies unpacked and found by `slm mkmodel`; an operator's
# /etc/slmd/slmd.conf never replaced; the units follow PREFIX; the man
# pages render without warnings and name every `slm` command.
. tests/lib.sh

# make install, or under the sanitizers the script it runs: make would
# relink the sanitized build without the sanitizer flags.
slm_install() { # DESTDIR PREFIX
	if [ -n "${SLM_SANITIZED:-}" ]; then
		./tools/install.sh "$1" "$2" "$BUILD"
	else
		make --no-print-directory -s install BUILD="$BUILD" PREFIX="$2" DESTDIR="$1"
	fi
}

dest=$TMP/dest
if ! slm_install "$dest" /usr >"$TMP/install.log" 2>&1; then
	fail "make install failed: $(tail -n 5 "$TMP/install.log")"
	finish
fi
unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null)
unitdir=${unitdir:-/usr/lib/systemd/system}
sysusersdir=$(pkg-config --variable=sysusersdir systemd 2>/dev/null)
sysusersdir=${sysusersdir:-/usr/lib/sysusers.d}
tmpfilesdir=$(pkg-config --variable=tmpfilesdir systemd 2>/dev/null)
tmpfilesdir=${tmpfilesdir:-/usr/lib/tmpfiles.d}

# expect_file PATH MODE: a regular file with that mode.
expect_file() {
	local f=$dest$1
	if [ ! -f "$f" ] || [ -L "$f" ]; then
		fail "missing: $1"
	elif [ "$(stat -c %a "$f")" != "$2" ]; then
		fail "$1: mode $(stat -c %a "$f"), expected $2"
	else
		ok "$1 ($2)"
	fi
}
expect_file /usr/sbin/slmd 755
expect_file /usr/bin/slmctl 755
expect_file /usr/bin/slm 755
expect_file /etc/slmd/slmd.conf 644
expect_file "$unitdir/slmd.service" 644
expect_file "$unitdir/slmd-dpdk.service" 644
expect_file "$sysusersdir/slmd.conf" 644
expect_file "$tmpfilesdir/slmd.conf" 644
expect_file /usr/share/man/man8/slmd.8 644
expect_file /usr/share/man/man8/slmctl.8 644
expect_file /usr/share/man/man1/slm.1 644
expect_file /usr/share/doc/slmd/operations.md 644
cmp -s configs/slmd.conf "$dest/etc/slmd/slmd.conf" && ok "slmd.conf is the default" ||
	fail "the installed slmd.conf differs from configs/slmd.conf"
grep -q "^ExecStart=/usr/sbin/slmd -c /etc/slmd/slmd.conf$" "$dest$unitdir/slmd.service" &&
	ok "slmd.service starts /usr/sbin/slmd" || fail "slmd.service: wrong ExecStart"
"$dest/usr/sbin/slmd" --version | grep -q "^slmd " && ok "the installed slmd runs" ||
	fail "the installed slmd does not run"

# Nothing beyond the list: no test or bench program leaks into the tree.
extra=$(cd "$dest" && find . -type f -o -type l | sed 's|^\.||' | grep -vE \
	"^(/usr/(s?bin/(slmd|slmctl|slm)|share/(man|doc/slmd|slmd/vocab)/.*|include/slm/.*|lib/(libslmclient\.(a|so(\.[0-9]+)*)|slmclient/libslmclient-memif\.so|pkgconfig/.*\.pc))|/etc/slmd/slmd\.conf|$unitdir/slmd(-dpdk)?\.service|$sysusersdir/slmd\.conf|$tmpfilesdir/slmd\.conf)$" || true)
[ -z "$extra" ] && ok "no file beyond the expected ones" || fail "unexpected files: $extra"

# ---- vocabularies -----------------------------------------------------------
n=0
for xz in tests/data/vocab/*.gguf.xz; do
	name=$(basename "$xz" .xz)
	f=$dest/usr/share/slmd/vocab/$name
	if xz -dc "$xz" | cmp -s - "$f" && [ "$(stat -c %a "$f")" = 644 ]; then
		n=$((n + 1))
	else
		fail "vocabulary $name missing, different or not 0644"
	fi
done
[ "$n" -eq 3 ] && ok "the three vocabularies, unpacked" || fail "$n vocabularies, expected 3"
# slm mkmodel finds them beside its own prefix (no SLM_VOCAB_DIR, no build).
if env -u SLM_VOCAB_DIR "$dest/usr/bin/slm" mkmodel --preset tinyllama --n-embd 64 \
	--n-layer 1 --n-head 2 --n-head-kv 1 --n-ff 128 -o "$TMP/m.gguf" 2>"$TMP/mk.log" &&
	grep -q "vocabulary $dest/usr/bin/../share/slmd/vocab/vocab-spm.gguf" "$TMP/mk.log"; then
	ok "slm mkmodel finds the installed vocabulary"
else
	fail "slm mkmodel did not use the installed vocabulary: $(cat "$TMP/mk.log")"
fi

# ---- the client library -----------------------------------------------------
if [ -n "$(ls client/client*.c 2>/dev/null)" ]; then
	so=$(cd "$dest/usr/lib" && ls libslmclient.so.* 2>/dev/null | head -n 1)
	if [ -z "$so" ]; then
		fail "no libslmclient.so.N installed"
	else
		soname=$(readelf -d "$dest/usr/lib/$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
		[ "$soname" = "$so" ] && ok "$so carries its SONAME" || fail "$so has SONAME '$soname'"
		[ "$(readlink "$dest/usr/lib/libslmclient.so")" = "$so" ] &&
			ok "libslmclient.so -> $so" || fail "libslmclient.so is not a symlink to $so"
	fi
	expect_file /usr/lib/libslmclient.a 644
	[ -n "$(ls "$dest"/usr/include/slm/*.h 2>/dev/null)" ] && ok "headers in include/slm" ||
		fail "no header in /usr/include/slm"
	pc=$(ls "$dest"/usr/lib/pkgconfig/*.pc 2>/dev/null | head -n 1)
	if [ -z "$pc" ]; then
		fail "no pkg-config file installed"
	else
		grep -q "^prefix=/usr$" "$pc" && ok "$(basename "$pc"): prefix=/usr" ||
			fail "$(basename "$pc"): $(grep ^prefix= "$pc")"
		# Build a program against the installed tree, as a user would:
		# its .pc with the prefix moved to where the tree is.
		mod=$(basename "$pc" .pc)
		mkdir -p "$TMP/pc"
		sed "s|^prefix=.*|prefix=$dest/usr|" "$pc" >"$TMP/pc/$mod.pc"
		flags=$(PKG_CONFIG_PATH=$TMP/pc pkg-config --cflags --libs "$mod" 2>&1)
		hdrs=$(cd "$dest/usr/include" && ls slm/*.h | sed 's/.*/#include <&>/')
		printf '%s\nint main(void) { return 0; }\n' "$hdrs" >"$TMP/use.c"
		# A sanitized library needs a sanitized program.
		san=
		[ -n "${SLM_SANITIZED:-}" ] && san="-fsanitize=address,undefined"
		# shellcheck disable=SC2086
		if cc -std=gnu11 -Wall -Werror $san -o "$TMP/use" "$TMP/use.c" -Wl,--no-as-needed $flags >"$TMP/cc.log" 2>&1 &&
			LD_LIBRARY_PATH=$dest/usr/lib "$TMP/use" >>"$TMP/cc.log" 2>&1 &&
			LD_LIBRARY_PATH=$dest/usr/lib ldd "$TMP/use" | grep -q "libslmclient.so.* => $dest/usr/lib/"; then
			ok "a program builds with pkg-config $mod and runs on the installed library"
		else
			fail "building against the installed library ($flags): $(cat "$TMP/cc.log")"
		fi
	fi
else
	[ ! -e "$dest/usr/lib/libslmclient.a" ] && [ -z "$(ls "$dest"/usr/lib/pkgconfig 2>/dev/null)" ] &&
		ok "no client library in this tree, and none installed" ||
		fail "a client library was installed from a tree that has none"
fi

# ---- an operator's config is kept; units follow the prefix -------------------
echo "; edited by the operator" >>"$dest/etc/slmd/slmd.conf"
slm_install "$dest" /usr >"$TMP/install2.log" 2>&1 ||
	fail "second make install failed"
grep -q "edited by the operator" "$dest/etc/slmd/slmd.conf" &&
	grep -q "keeping the existing" "$TMP/install2.log" &&
	ok "a second install keeps the operator's slmd.conf" ||
	fail "a second install replaced /etc/slmd/slmd.conf"
local_dest=$TMP/local
slm_install "$local_dest" /usr/local >/dev/null 2>&1 ||
	fail "make install PREFIX=/usr/local failed"
if grep -q "^ExecStart=/usr/local/sbin/slmd " "$local_dest/usr/local/lib/systemd/system/slmd.service" 2>/dev/null &&
	grep -q "^ExecStart=/usr/local/sbin/slmd " "$local_dest/usr/local/lib/systemd/system/slmd-dpdk.service"; then
	ok "PREFIX=/usr/local: units in /usr/local/lib/systemd/system start /usr/local/sbin/slmd"
else
	fail "PREFIX=/usr/local: units missing or with the wrong ExecStart"
fi
expect_fail "a relative PREFIX is refused" "absolute" -- \
	./tools/install.sh "$TMP/x" usr "$BUILD"

# ---- man pages --------------------------------------------------------------
version=$(sed -n 's/^#define SLM_VERSION "\(.*\)"/\1/p' common/version.h)
for page in man/slmd.8 man/slmctl.8 man/slm.1; do
	warn=$(LC_ALL=C.UTF-8 groff -man -ww -z "$page" 2>&1)
	[ -z "$warn" ] && ok "$page: no groff warning" || fail "$page: $warn"
	grep -q "^\.TH .* \"slmd $version\"" "$page" && ok "$page: version $version" ||
		fail "$page: .TH does not say slmd $version"
	if command -v man >/dev/null 2>&1; then
		case $page in *.1) sect=man1 ;; *) sect=man8 ;; esac
		out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$dest/usr/share/man/$sect/$(basename "$page")" 2>&1)
		grep -q "^NAME" <<<"$out" && grep -q "^SYNOPSIS" <<<"$out" &&
			ok "$page renders with man -l" || fail "$page: man -l: $(head -n 3 <<<"$out")"
	else
		fail "man is missing (man-db is in DEB_PACKAGES)"
	fi
done
# Every command `slm help` lists is described in slm(1).
missing=
for cmd in $("$BIN/slm" help | awk '/^commands:/ { on = 1; next } on && NF { print $1 }'); do
	sed 's/\\-/-/g' man/slm.1 | grep -qx "\.B $cmd" || missing="$missing $cmd"
done
[ -z "$missing" ] && ok "slm(1) describes every command of slm help" ||
	fail "slm(1) lacks:$missing"
finish
