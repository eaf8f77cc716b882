# On a file system that refuses O_DIRECT (ramfs), the uring loader falls
# back to buffered reads, says so, and still loads.  Needs root to mount.
. tests/lib.sh
MODEL=${SLM_TESTDATA:-$BUILD/testdata}/models/qwen2-s-Q4_K_M.gguf
[ -f "$MODEL" ] || { fail "$MODEL is missing (make testdata)"; finish; }
[ "$(id -u)" -eq 0 ] || skip "needs root to mount a ramfs"
mkdir -p "$TMP/ramfs"
mount -t ramfs ramfs "$TMP/ramfs" 2>"$TMP/err" || skip "cannot mount a ramfs: $(cat "$TMP/err")"
at_exit "umount '$TMP/ramfs'"
cp "$MODEL" "$TMP/ramfs/m.gguf"

"$BIN/slm" bench-load -m "$TMP/ramfs/m.gguf" --mode uring >"$TMP/out" 2>"$TMP/err" ||
	fail "bench-load on ramfs: $(cat "$TMP/err")"
grep -q "^fallback the file system refuses O_DIRECT" "$TMP/out" ||
	fail "no fallback line: $(cat "$TMP/out")"
grep -q "warn  weights: .*refuses O_DIRECT: reading through the page cache" "$TMP/err" ||
	fail "the fallback is not logged: $(cat "$TMP/err")"
grep -q "^method   uring, buffered" "$TMP/out" || fail "method line: $(cat "$TMP/out")"
grep -q "^raw      unavailable: .*refuses O_DIRECT" "$TMP/out" ||
	fail "raw line: $(cat "$TMP/out")"
ok "O_DIRECT refused on ramfs: buffered reads, logged"
finish
