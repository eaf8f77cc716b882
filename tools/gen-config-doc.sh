#!/bin/sh
# Refresh the key reference in docs/config.md from the key table:
# everything between the two markers is replaced by `slm config --markdown`.
set -eu
BUILD=${1:-build}
doc=docs/config.md
tmp=$(mktemp)
"$BUILD/bin/slm" config --markdown >"$tmp.ref"
awk -v ref="$tmp.ref" '
	/<!-- keys:begin -->/ { print; while ((getline line < ref) > 0) print line; skip = 1; next }
	/<!-- keys:end -->/ { skip = 0 }
	!skip { print }
' "$doc" >"$tmp"
mv "$tmp" "$doc"
rm -f "$tmp.ref"
echo "updated $doc"
