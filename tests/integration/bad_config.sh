# Every program refuses a bad config file with file, line and key, exit 1.
. tests/lib.sh

printf '[log]\nlevel = info\n[engine]\nthreads = lots\n' >"$TMP/badvalue.conf"
printf '[engine]\nthreds = 2\n' >"$TMP/badkey.conf"
printf '[log]\nlevel = loud\n' >"$TMP/badenum.conf"

for prog in "$BIN/slmd" "$BIN/slmctl status" "$BIN/slm config"; do
	set -- $prog
	name=$(basename "$1")${2:+ $2}
	expect_fail "$name: bad value" "$TMP/badvalue.conf:4:" "engine.threads" "lots" -- \
		"$@" -c "$TMP/badvalue.conf"
	expect_fail "$name: unknown key" "$TMP/badkey.conf:2:" "engine.threds" -- \
		"$@" -c "$TMP/badkey.conf"
	expect_fail "$name: bad enum" "$TMP/badenum.conf:2:" "log.level" "error|warn" -- \
		"$@" --config="$TMP/badenum.conf"
	expect_fail "$name: missing file" "$TMP/none.conf" "No such file" -- \
		"$@" -c "$TMP/none.conf"
	expect_fail "$name: bad --set" "engine.threads" "out of bounds" -- \
		"$@" --set engine.threads=99999
done
finish
