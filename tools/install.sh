#!/bin/sh
# make install: everything an installed slmd needs, under DESTDIR/PREFIX.
#
#   tools/install.sh DESTDIR PREFIX BUILD [LIBDIR]
#
# LIBDIR (default PREFIX/lib) is where the client library and its
# pkg-config file go; the Debian package gives the multiarch directory.
#
#   PREFIX/sbin/slmd, PREFIX/bin/slmctl, PREFIX/bin/slm
#   LIBDIR/libslmclient.{a,so.N,so}       when the build made the library
#   LIBDIR/pkgconfig/*.pc                 whatever .pc files the build made,
#                                         with prefix= and libdir= set
#   PREFIX/include/slm/*.h                the public headers
#   PREFIX/share/slmd/vocab/*.gguf        the three vocabularies (slm
#                                         mkmodel and the synthetic model)
#   PREFIX/share/man/man{1,8}/            slm(1), slmd(8), slmctl(8)
#   PREFIX/share/doc/slmd/                README, operations, configuration
#   systemd units, sysusers.d and tmpfiles.d files: where systemd.pc says
#     for PREFIX=/usr, else under PREFIX/lib (systemd reads /usr/local/lib
#     too); the units' paths follow PREFIX
#   /etc/slmd/slmd.conf                   only if there is none: an
#                                         operator's file is never replaced
set -eu
if [ $# -lt 3 ] || [ $# -gt 4 ]; then
	echo "usage: tools/install.sh DESTDIR PREFIX BUILD [LIBDIR]" >&2
	exit 2
fi
destdir=$1 prefix=$2 build=$3 libdir=${4:-$2/lib}
for dir in "$prefix" "$libdir"; do
	case $dir in
	/*) ;;
	*) echo "install: PREFIX and LIBDIR must be absolute paths, not '$dir'" >&2; exit 1 ;;
	esac
done
root="$destdir$prefix"
lib="$destdir$libdir"
# libdir= of the .pc files: relative to ${prefix} when it lies below it.
case $libdir in
"$prefix"/*) pc_libdir="\${prefix}${libdir#"$prefix"}" ;;
*) pc_libdir=$libdir ;;
esac

for prog in slmd slmctl slm; do
	if [ ! -x "$build/bin/$prog" ]; then
		echo "install: $build/bin/$prog is missing: run make first" >&2
		exit 1
	fi
done

# systemd's directories: its pkg-config file knows them for a /usr install.
sd_var() {
	pkg-config --variable="$1" systemd 2>/dev/null || true
}
unitdir= sysusersdir= tmpfilesdir=
if [ "$prefix" = /usr ]; then
	unitdir=$(sd_var systemdsystemunitdir)
	sysusersdir=$(sd_var sysusersdir)
	tmpfilesdir=$(sd_var tmpfilesdir)
fi
: "${unitdir:=$prefix/lib/systemd/system}"
: "${sysusersdir:=$prefix/lib/sysusers.d}"
: "${tmpfilesdir:=$prefix/lib/tmpfiles.d}"

install -d "$root/bin" "$root/sbin" "$root/share/slmd/vocab" \
	"$root/share/man/man1" "$root/share/man/man8" "$root/share/doc/slmd" \
	"$destdir$unitdir" "$destdir$sysusersdir" "$destdir$tmpfilesdir" \
	"$destdir/etc/slmd"

install -m 0755 "$build/bin/slmd" "$root/sbin/slmd"
install -m 0755 "$build/bin/slmctl" "$root/bin/slmctl"
install -m 0755 "$build/bin/slm" "$root/bin/slm"

# The client library, when this tree has one (client/client*.c; without
# them the build leaves an empty archive, which is not installed).  The
# shared object goes in under its SONAME with the development symlink.
have_lib=
if [ -n "$(ar t "$build/lib/libslmclient.a" 2>/dev/null)" ]; then
	install -d "$lib"
	install -m 0644 "$build/lib/libslmclient.a" "$lib/"
	have_lib=1
fi
for so in "$build"/lib/libslmclient.so*; do
	[ -f "$so" ] && [ ! -L "$so" ] || continue
	soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
	if [ -z "$soname" ]; then
		echo "install: $so has no SONAME" >&2
		exit 1
	fi
	install -d "$lib"
	install -m 0644 "$so" "$lib/$soname"
	[ "$soname" = libslmclient.so ] || ln -sf "$soname" "$lib/libslmclient.so"
	have_lib=1
done
# The memif transport plugin (built when DPDK is present), found by the
# library in slmclient/ beside it.
if [ -e "$build/lib/slmclient/libslmclient-memif.so" ]; then
	install -d "$lib/slmclient"
	install -m 0644 "$build/lib/slmclient/libslmclient-memif.so" "$lib/slmclient/"
fi
for pc in "$build"/lib/pkgconfig/*.pc; do
	[ -f "$pc" ] || continue
	install -d "$lib/pkgconfig"
	sed -e "s|^prefix=.*|prefix=$prefix|" -e "s|^libdir=.*|libdir=$pc_libdir|" \
		"$pc" >"$lib/pkgconfig/$(basename "$pc")"
	chmod 0644 "$lib/pkgconfig/$(basename "$pc")"
done
for h in include/slm/*.h; do
	[ -f "$h" ] || continue
	install -d "$root/include/slm"
	install -m 0644 "$h" "$root/include/slm/"
done
[ -n "$have_lib" ] || echo "install: no client library in $build (this tree has no client/client*.c yet)"

for xz in tests/data/vocab/*.gguf.xz; do
	out="$root/share/slmd/vocab/$(basename "$xz" .xz)"
	xz -dc "$xz" >"$out.tmp"
	chmod 0644 "$out.tmp"
	mv "$out.tmp" "$out"
done

install -m 0644 man/slm.1 "$root/share/man/man1/slm.1"
install -m 0644 man/slmd.8 "$root/share/man/man8/slmd.8"
install -m 0644 man/slmctl.8 "$root/share/man/man8/slmctl.8"
for doc in README.md docs/operations.md docs/config.md docs/architecture.md; do
	[ -f "$doc" ] && install -m 0644 "$doc" "$root/share/doc/slmd/"
done

# Units: their paths follow the prefix.
for unit in slmd.service slmd-dpdk.service; do
	sed "s|/usr/sbin/slmd|$prefix/sbin/slmd|g" "configs/$unit" >"$destdir$unitdir/$unit"
	chmod 0644 "$destdir$unitdir/$unit"
done
install -m 0644 configs/slmd.sysusers "$destdir$sysusersdir/slmd.conf"
install -m 0644 configs/slmd.tmpfiles "$destdir$tmpfilesdir/slmd.conf"

if [ -e "$destdir/etc/slmd/slmd.conf" ]; then
	echo "install: keeping the existing $destdir/etc/slmd/slmd.conf"
else
	install -m 0644 configs/slmd.conf "$destdir/etc/slmd/slmd.conf"
fi
echo "installed under ${destdir:-/}: $prefix (units in $unitdir)"
