# Sourced by integration tests: common paths and helpers.
# A test exits 0 (pass), 77 (skipped: its last line says why) or 1 (fail).
set -u
BUILD=${SLM_BUILD:-build}
BIN=$BUILD/bin
DATA=${SLM_TEST_DATA:-tests/data}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/slm-it-XXXXXX")
cleanup_hooks=()
at_exit() { cleanup_hooks+=("$1"); }
run_cleanup() {
	local i
	for ((i = ${#cleanup_hooks[@]} - 1; i >= 0; i--)); do eval "${cleanup_hooks[i]}" || true; done
	rm -rf "$TMP"
}
trap run_cleanup EXIT

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
skip() { echo "skipped: $*"; exit 77; }
finish() { [ "$failures" -eq 0 ] || { echo "$failures check(s) failed"; exit 1; }; exit 0; }

# expect_fail "what" "fragment"... -- command...: exit status 1 and every
# fragment in its stderr.
expect_fail() {
	local what=$1; shift
	local frags=()
	while [ "$1" != "--" ]; do frags+=("$1"); shift; done
	shift
	"$@" >"$TMP/out" 2>"$TMP/err"
	local status=$?
	if [ "$status" -ne 1 ]; then
		fail "$what: exit status $status, expected 1 ($(head -c 300 "$TMP/err"))"
		return
	fi
	local f
	for f in "${frags[@]}"; do
		if ! grep -qF -- "$f" "$TMP/err"; then
			fail "$what: stderr lacks '$f': $(head -c 300 "$TMP/err")"
			return
		fi
	done
	ok "$what"
}
