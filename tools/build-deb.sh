#!/bin/sh
# make deb: the Debian packages of this tree, built by dpkg-buildpackage
# with debhelper (debian/), into BUILD/deb/.
#
#   tools/build-deb.sh BUILD
#
# A binary-only build (-b) of the working tree as it is, without a
# pre-clean (-nc) so the build folder of `make` is reused; unsigned.  The
# .changes and .buildinfo go beside the .debs instead of into the parent
# directory, which is not ours.
set -eu
build=${1:-build}
out=$(pwd)/$build/deb
version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
upstream=$(sed -n 's/^#define SLM_VERSION "\(.*\)"/\1/p' common/version.h)
if [ "$version" != "$upstream" ]; then
	echo "deb: debian/changelog says $version but common/version.h says $upstream: add a changelog entry (dch -v $upstream)" >&2
	exit 1
fi
rm -rf "$out"
mkdir -p "$out"
# No debhelper state from an earlier run (its build stamp would skip the
# build step); the build folder itself is kept and `make` brings it up to
# date.
dh_clean
SLM_BUILD=$build SLM_DEB_OUT=$out dpkg-buildpackage -b -nc -us -uc \
	--buildinfo-option="-u$out" --changes-option="-u$out" \
	--buildinfo-file="$out/slmd_${version}_$arch.buildinfo" \
	--changes-file="$out/slmd_${version}_$arch.changes"
dh_clean
echo "deb: packages in $out:"
ls -1 "$out"
