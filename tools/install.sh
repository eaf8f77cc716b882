#!/bin/sh
# make install: copy the programs, the client library and its header, the
# default config and the systemd files under DESTDIR/PREFIX.
set -eu
destdir=$1 prefix=$2 build=$3
root="$destdir$prefix"
install -d "$root/bin" "$root/sbin" "$root/lib" "$root/include/slm" \
	"$root/lib/pkgconfig" "$destdir/etc/slmd"
install -m 0755 "$build/bin/slmd" "$root/sbin/slmd"
install -m 0755 "$build/bin/slmctl" "$root/bin/slmctl"
install -m 0755 "$build/bin/slm" "$root/bin/slm"
install -m 0644 "$build/lib/libslmclient.a" "$root/lib/"
install -m 0755 "$build/lib/libslmclient.so.1" "$root/lib/"
ln -sf libslmclient.so.1 "$root/lib/libslmclient.so"
# The memif transport plugin (built when DPDK is present), found by the
# library in slmclient/ beside it.
if [ -e "$build/lib/slmclient/libslmclient-memif.so" ]; then
	install -d "$root/lib/slmclient"
	install -m 0755 "$build/lib/slmclient/libslmclient-memif.so" "$root/lib/slmclient/"
fi
./tools/gen-pc.sh "$prefix" <client/slmclient.pc.in >"$root/lib/pkgconfig/slmclient.pc"
for h in include/slm/*.h; do
	[ -e "$h" ] && install -m 0644 "$h" "$root/include/slm/"
done
[ -e "$destdir/etc/slmd/slmd.conf" ] ||
	install -m 0644 configs/slmd.conf "$destdir/etc/slmd/slmd.conf"
echo "installed under $root"
