# slm topology: the plan for this machine and for a synthetic two-socket
# machine, as JSON (the interface scripts rely on) and as a table.
. tests/lib.sh

SLM=$BIN/slm
SYNTH='synthetic:"package:2 numa:1 core:8 pu:2"'

# check_json NAME FILE PYTHON: run the Python checks on the parsed object
# `p`; each failed `check(cond, what)` is one failure.
check_json() {
	local name=$1 file=$2 code=$3
	if python3 - "$file" >"$TMP/check.out" 2>&1 <<PY; then
import json, os, sys
p = json.load(open(sys.argv[1]))
bad = []
def check(cond, what):
    if not cond:
        bad.append(what)
def ints(v):
    return isinstance(v, list) and all(isinstance(x, int) for x in v)
# The interface: these keys with these types, always.
check(isinstance(p.get("nodes"), list) and p["nodes"], "nodes is a non-empty list")
for n in p.get("nodes", []):
    check(isinstance(n.get("id"), int), "node id is an integer")
    check(ints(n.get("cores")), "node cores is a list of integers")
    check(isinstance(n.get("mem_bytes"), int) and n["mem_bytes"] >= 0, "node mem_bytes")
check(isinstance(p.get("groups"), list) and p["groups"], "groups is a non-empty list")
for g in p.get("groups", []):
    check(isinstance(g.get("node"), int), "group node is an integer")
    check(ints(g.get("cores")) and g["cores"], "group cores is a non-empty list")
check(ints(p.get("dataplane_cores")) and p["dataplane_cores"], "dataplane_cores")
check(p.get("ctl_core") is None or isinstance(p.get("ctl_core"), int), "ctl_core")
check(p.get("weights") in ("replicate", "interleave", "single"), "weights")
$code
for b in bad:
    print("   ", b)
sys.exit(1 if bad else 0)
PY
		ok "$name"
	else
		fail "$name:"
		cat "$TMP/check.out"
		head -c 2000 "$file"; echo
	fi
}

# This machine.
if "$SLM" topology --json >"$TMP/real.json" 2>"$TMP/err"; then
	check_json "this machine's plan" "$TMP/real.json" '
cpus = sorted(os.sched_getaffinity(0))
node_cpus = sorted(c for n in p["nodes"] for c in n.get("cpus", []))
check(node_cpus == cpus, "the nodes hold exactly the CPUs we may use: %s vs %s" % (node_cpus, cpus))
sysnodes = [d for d in os.listdir("/sys/devices/system/node") if d.startswith("node") and d[4:].isdigit()]
check(len(p["nodes"]) == len(sysnodes), "one entry per NUMA node of /sys")
check(all(n["mem_bytes"] > 0 for n in p["nodes"] if n["cores"]), "nodes with cores have memory")
node_ids = {n["id"] for n in p["nodes"]}
check(all(g["node"] in node_ids for g in p["groups"]), "groups are on nodes that exist")
used = [c for g in p["groups"] for c in g["cores"]]
check(len(used) == len(set(used)), "no CPU in two groups")
check(all(c in cpus for c in used + p["dataplane_cores"]), "threads on CPUs we may use")
check(p["topology"]["this_system"] is True, "this_system")
if len(cpus) < 4:
    # A small box: the dataplane shares a worker core, ctl goes with it.
    check(p["dataplane_shared"] is True, "dataplane shares on < 4 cores")
    check(p["ctl_core"] in p["dataplane_cores"], "ctl on the dataplane core")
    check(sorted(used) == sorted(c for n in p["nodes"] for c in n["cores"]), "workers use every core")
    check(any("shares CPU" in w for w in p["warnings"]), "a warning says the dataplane shares")
else:
    check(not set(used) & set(p["dataplane_cores"]), "dataplane apart from workers")
'
else
	fail "slm topology --json on this machine: $(cat "$TMP/err")"
fi

# A synthetic two-socket machine: every number is known.
expect_2s='
check(p["topology"]["this_system"] is False, "synthetic is not this system")
check([n["id"] for n in p["nodes"]] == [0, 1], "two nodes")
check([n["cores"] for n in p["nodes"]] == [list(range(0, 16, 2)), list(range(16, 32, 2))], "cores by node")
check([n["mem_bytes"] for n in p["nodes"]] == [1 << 30, 1 << 30], "1 GiB per node")
check([g["node"] for g in p["groups"]] == [0, 1], "a group per node")
check(p["groups"][0]["cores"] == list(range(0, 14, 2)), "group 0 less the dataplane core")
check(p["groups"][1]["cores"] == list(range(16, 32, 2)), "group 1 whole")
check(p["dataplane_cores"] == [14], "dataplane on node 0, highest core")
check(p["ctl_core"] == 15, "ctl on the dataplane core sibling")
check(p["idle_cpus"] == [c for c in range(1, 32, 2) if c != 15], "siblings idle")
'
if "$SLM" topology --set "numa.topology=$SYNTH" --json >"$TMP/2s.json" 2>"$TMP/err"; then
	check_json "synthetic two-socket plan" "$TMP/2s.json" "$expect_2s
check(p['weights'] == 'replicate', 'replicate by default')"
else
	fail "slm topology --json, synthetic: $(cat "$TMP/err")"
fi

# The same from a config file (quotes in an INI value), with weights that
# only fit interleaved.
printf '[numa]\ntopology = %s\n' "$SYNTH" >"$TMP/2s.conf"
if "$SLM" topology -c "$TMP/2s.conf" --weight-bytes 800M --json \
	>"$TMP/2s-il.json" 2>"$TMP/err"; then
	check_json "synthetic plan from a config file, interleaved" "$TMP/2s-il.json" "$expect_2s
check(p['weights'] == 'interleave', 'interleave when replicas do not fit')
check([n['weight_bytes'] for n in p['nodes']] == [400 << 20, 400 << 20], 'half on each node')"
else
	fail "slm topology -c: $(cat "$TMP/err")"
fi

# The table people read.
if "$SLM" topology --set "numa.topology=$SYNTH" --weight-bytes 300M \
	>"$TMP/table" 2>"$TMP/err"; then
	missing=
	for want in "2 packages, 2 NUMA nodes, 16 cores, 32 CPUs" \
		"dataplane 0" "slm-ctl" "group 1" "16,18,20,22,24,26,28,30" \
		"replicate, 300 MiB per copy" "copy 1 on node 1"; do
		grep -qF -- "$want" "$TMP/table" || missing="$missing '$want'"
	done
	if [ -z "$missing" ]; then ok "the table"; else
		fail "the table lacks$missing:"
		cat "$TMP/table"
	fi
else
	fail "slm topology (table): $(cat "$TMP/err")"
fi
"$SLM" topology >"$TMP/real-table" 2>"$TMP/err" && grep -q "^group 0" "$TMP/real-table" &&
	ok "the table for this machine" || fail "table for this machine: $(cat "$TMP/err")"

# The weights' size from a GGUF file: the sum of its tensors.
vocab=${SLM_TESTDATA:-$BUILD/testdata}/vocab/vocab-spm.gguf
if [ -f "$vocab" ]; then
	# A vocabulary file has no tensors: nothing to place.
	if "$SLM" topology --model "$vocab" --json >"$TMP/vocab.json" 2>"$TMP/err" &&
		python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["weight_bytes"] != 0)' "$TMP/vocab.json"; then
		ok "--model with a tensorless file"
	else
		fail "--model $vocab: $(cat "$TMP/err")"
	fi
else
	fail "missing test input $vocab (make testdata)"
fi
for model in "${SLM_TESTDATA:-$BUILD/testdata}"/models/*.gguf; do
	[ -f "$model" ] || continue
	size=$(stat -c %s "$model")
	if "$SLM" topology --model "$model" --json >"$TMP/model.json" 2>"$TMP/err" &&
		python3 -c 'import json,sys; w=json.load(open(sys.argv[1]))["weight_bytes"]; sys.exit(not 0 < w <= int(sys.argv[2]))' \
			"$TMP/model.json" "$size"; then
		ok "--model $(basename "$model"): weights sized from its tensors"
	else
		fail "--model $model: $(cat "$TMP/err")"
	fi
	break
done

# Refusals: clear, exit status 1.
expect_fail "replicate that does not fit" "numa.weights = replicate" \
	"node 0" "numa.weights = interleave" -- \
	"$SLM" topology --set "numa.topology=$SYNTH" --set numa.weights=replicate \
	--weight-bytes 900M
expect_fail "bad synthetic description" "numa.topology" "package:two" -- \
	"$SLM" topology --set 'numa.topology=synthetic:"package:two"'
expect_fail "missing XML file" "$TMP/none.xml" -- \
	"$SLM" topology --set "numa.topology=$TMP/none.xml"
expect_fail "bad groups" "numa.groups = 'sockets'" -- \
	"$SLM" topology --set numa.groups=sockets
expect_fail "CPU not on the machine" "numa.dataplane_cores: CPU 4000" -- \
	"$SLM" topology --set numa.dataplane_cores=cpus:4000
expect_fail "missing model file" "$TMP/none.gguf" -- \
	"$SLM" topology --model "$TMP/none.gguf"
expect_fail "bad size" "--weight-bytes 'lots'" -- \
	"$SLM" topology --weight-bytes lots
finish
