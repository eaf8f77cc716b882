#!/bin/bash
# Run every unit suite and every integration test against a build folder.
#   tests/run.sh [BUILD]            all tests
#   SLM_UNIT_SUITES="gguf quant"    only these CUnit suites
#   SLM_INTEGRATION="name ..."      only these integration tests
# An integration test is tests/integration/<name>.sh: exit 0 passes, 77
# skips (its last output line says why), anything else fails.  Ends with
# CUnit's run summary and one line "N passed, N failed[, N skipped]".
set -u
BUILD=${1:-build}
export SLM_BUILD=$BUILD
export SLM_ROOT=$PWD
export SLM_TEST_DATA=${SLM_TEST_DATA:-$PWD/tests/data}
export SLM_TESTDATA=${SLM_TESTDATA:-$PWD/$BUILD/testdata}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

passed=0 failed=0 skipped=0
skip_reasons=()

echo "== unit tests ($BUILD/tests/unit_tests)"
# shellcheck disable=SC2086
SLM_TEST_COUNTS=$out/counts "$BUILD/tests/unit_tests" ${SLM_UNIT_SUITES:-} \
	2>&1 | tee "$out/unit.log"
unit_status=${PIPESTATUS[0]}
if [ -s "$out/counts" ]; then
	read -r p f s <"$out/counts"
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	while IFS= read -r line; do skip_reasons+=("$line"); done < <(
		sed -n '/^Skipped tests:/,/^$/p' "$out/unit.log" | sed '1d;/^$/d')
fi
if [ "$unit_status" -ne 0 ] && [ ! -s "$out/counts" ]; then
	echo "unit tests did not finish (status $unit_status)"
	failed=$((failed + 1))
fi

echo
echo "== integration tests"
for t in tests/integration/*.sh; do
	[ -e "$t" ] || continue
	name=$(basename "$t" .sh)
	if [ -n "${SLM_INTEGRATION:-}" ] && ! grep -qw -- "$name" <<<"$SLM_INTEGRATION"; then
		continue
	fi
	start=$(date +%s.%N)
	timeout --kill-after=10 900 bash "$t" >"$out/$name.log" 2>&1
	status=$?
	secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	case $status in
	0)
		echo "  $name ... passed (${secs}s)"
		passed=$((passed + 1)) ;;
	77)
		why=$(grep -v '^\s*$' "$out/$name.log" | tail -n 1)
		echo "  $name ... skipped: $why"
		skip_reasons+=("  integration/$name: $why")
		skipped=$((skipped + 1)) ;;
	*)
		echo "  $name ... FAILED (status $status, ${secs}s); its output:"
		sed 's/^/    | /' "$out/$name.log" | tail -n 60
		failed=$((failed + 1)) ;;
	esac
done

echo
sed -n '/^Run Summary:/,/^$/p' "$out/unit.log"
if [ ${#skip_reasons[@]} -gt 0 ]; then
	echo "Skipped, and why:"
	printf '%s\n' "${skip_reasons[@]}"
fi
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
