# docs/config.md and configs/slmd.conf agree with the key table.
. tests/lib.sh

"$BIN/slm" config --markdown >"$TMP/ref.md" || fail "slm config --markdown"
sed -n '/<!-- keys:begin -->/,/<!-- keys:end -->/p' docs/config.md |
	sed '1d;$d' >"$TMP/doc.md"
if diff -u "$TMP/doc.md" "$TMP/ref.md" >"$TMP/diff"; then
	ok "docs/config.md documents exactly the keys of the table"
else
	fail "docs/config.md differs from the key table (run tools/gen-config-doc.sh):"
	cat "$TMP/diff"
fi

# Every key appears in configs/slmd.conf under its own section.
keys=$(grep -o '^| `[a-z_0-9]*\.[a-z_0-9.]*`' "$TMP/ref.md" | tr -d '|` ')
for key in $keys; do
	section=${key%%.*} name=${key#*.}
	if awk -v s="[$section]" -v k="$name" '
		/^\[/ { in_s = ($0 == s) }
		in_s && $0 ~ "^;? *" k " *=" { found = 1 }
		END { exit !found }' configs/slmd.conf; then
		:
	else
		fail "configs/slmd.conf lacks $key"
	fi
done
ok "configs/slmd.conf lists every key"

"$BIN/slmd" -c configs/slmd.conf --dump-config >"$TMP/dump.conf" ||
	fail "slmd refuses configs/slmd.conf"
"$BIN/slm" config -c "$TMP/dump.conf" >"$TMP/dump2.conf" ||
	fail "the dump does not load back"
finish
