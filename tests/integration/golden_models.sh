# The golden model files make testdata regenerated (build/testdata/models)
# are byte-identical to the files llama.cpp read: every one present, every
# sha256 as in tests/data/golden/manifest.json (extra-manifest.json for
# the two F32 sources), no file left aside as *.mismatch.  Also checks
# that golden_regen refuses a wrong file under the golden name.
. tests/lib.sh
MODELS=${SLM_TESTDATA:-$BUILD/testdata}/models
REGEN=$BUILD/tests/golden_regen
MANIFESTS="$DATA/golden/manifest.json $DATA/golden/extra-manifest.json"

[ -d "$MODELS" ] || { fail "$MODELS does not exist: run make testdata"; finish; }

# Independent of the C code: Python's hashlib against the manifests.
python3 - "$MODELS" $MANIFESTS >"$TMP/check" 2>&1 <<'PY'
import hashlib, json, os, sys
models, manifests = sys.argv[1], sys.argv[2:]
want = {}
for path in manifests:
    for key, entry in json.load(open(path))["files"].items():
        if key.startswith("models/"):
            want.setdefault(key[len("models/"):], entry["sha256"])
bad = 0
for name in sorted(want):
    path = os.path.join(models, name)
    if not os.path.exists(path):
        aside = " (a wrong file was kept as %s.mismatch)" % name \
            if os.path.exists(path + ".mismatch") else ""
        print("FAIL: %s is missing%s" % (name, aside)); bad += 1; continue
    got = hashlib.sha256(open(path, "rb").read()).hexdigest()
    if got != want[name]:
        print("FAIL: %s: sha256 %s, expected %s" % (name, got, want[name])); bad += 1
    else:
        print("ok: %s" % name)
for name in sorted(os.listdir(models)):
    if name.endswith(".mismatch"):
        print("FAIL: %s: make testdata made a file that differs from the golden one" % name); bad += 1
print("checked %d golden files" % len(want))
sys.exit(1 if bad else 0)
PY
status=$?
cat "$TMP/check"
[ "$status" -eq 0 ] || fail "golden model files differ (see above)"
grep -q "checked 27 golden files" "$TMP/check" || fail "expected 27 golden model files in the manifests"

# The guard: a corrupted file is kept aside, never under the golden name.
if [ -f "$MODELS/llama-s-Q4_0.gguf" ]; then
	mkdir -p "$TMP/m"
	cp "$MODELS/llama-s-Q4_0.gguf" "$TMP/m/good.new"
	cp "$MODELS/llama-s-Q4_0.gguf" "$TMP/m/bad.new"
	printf '\x01' | dd of="$TMP/m/bad.new" bs=1 seek=5000 conv=notrunc status=none
	touch "$TMP/m/llama-s-Q4_0.gguf"
	# shellcheck disable=SC2086
	"$REGEN" accept "$TMP/m/bad.new" "$TMP/m/llama-s-Q4_0.gguf" $MANIFESTS 2>"$TMP/err"
	st=$?
	if [ "$st" -eq 2 ] && grep -q "MISMATCH models/llama-s-Q4_0.gguf" "$TMP/err" &&
		[ ! -e "$TMP/m/llama-s-Q4_0.gguf" ] && [ -e "$TMP/m/llama-s-Q4_0.gguf.mismatch" ]; then
		ok "a corrupted file is refused and kept aside"
	else
		fail "accept of a corrupted file: status $st, $(cat "$TMP/err")"
	fi
	# shellcheck disable=SC2086
	if "$REGEN" accept "$TMP/m/good.new" "$TMP/m/llama-s-Q4_0.gguf" $MANIFESTS &&
		[ -e "$TMP/m/llama-s-Q4_0.gguf" ] && [ ! -e "$TMP/m/llama-s-Q4_0.gguf.mismatch" ]; then
		ok "the right file is accepted and the stale .mismatch removed"
	else
		fail "accept of the right file"
	fi
fi
finish
