# Sourced by the package tests after tests/lib.sh: the packages of this
# tree in $BUILD/deb, built by make deb unless they are newer than
# everything that goes into them (deb_package.sh always builds: it tests
# make deb itself).

DEB_VERSION=$(sed -n 's/^#define SLM_VERSION "\(.*\)"/\1/p' common/version.h)

# deb_ready: sets DEB_DIR to a folder holding slmd_<version>_amd64.deb (and
# the library packages when the tree has the library); fails the test if
# make deb fails.
deb_ready() {
	local deb=$BUILD/deb/slmd_${DEB_VERSION}_amd64.deb newer=
	if [ -f "$deb" ]; then
		# Paths first: find takes none after an expression.
		newer=$(find debian configs man tools/install.sh tools/build-deb.sh \
			tests/data/vocab "$BIN/slmd" "$BIN/slmctl" "$BIN/slm" \
			-type f -newer "$deb" -print -quit)
	fi
	if [ ! -f "$deb" ] || [ -n "$newer" ]; then
		if ! make --no-print-directory deb BUILD="$BUILD" >"$TMP/deb.log" 2>&1; then
			fail "make deb failed: $(tail -n 20 "$TMP/deb.log")"
			finish
		fi
	fi
	DEB_DIR=$TMP/debs
	mkdir -p "$DEB_DIR"
	cp "$BUILD"/deb/*.deb "$DEB_DIR/"
	rm -f "$DEB_DIR"/*-dbgsym_*.deb
}
