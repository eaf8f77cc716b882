# Every thread slmd starts runs where the placement plan says: workers and
# dataplane threads on their own CPU, everything else (main, health, ctl,
# loading helpers) on the control CPU and the CPUs no busy thread uses.
# Read from the kernel (/proc/PID/task/*/status), not from slmd's word,
# for the default plan and for one with a dataplane core of its own.
. tests/lib.sh
. tests/lib_notify.sh

[ "$(nproc)" -ge 2 ] || skip "one CPU: nothing to place apart"

check_plan() { # NAME, then slmd/slm settings
	local name=$1
	shift
	notify_reset
	slmd_private_sets
	"$BIN/slm" topology --json "$@" >"$TMP/plan.json" ||
		{ fail "$name: slm topology"; return; }
	start_slmd -- "${SLMD_SETS[@]}" "$@"
	if ! wait_for_line "READY=1" 120; then
		fail "$name: no READY=1: $(tail -n 3 "$SLMD_LOG")"
		stop_slmd
		return
	fi
	if python3 - "$SLMD_PID" "$TMP/plan.json" "$name" <<'PY'; then
import json, os, sys
pid, plan_file, name = sys.argv[1], sys.argv[2], sys.argv[3]
plan = json.load(open(plan_file))
planned = {t["name"]: t["cpu"] for t in plan["threads"]}
housekeeping = {plan["ctl_core"]} | set(plan["idle_cpus"])

def cpus_of(task):
    for line in open(f"/proc/{pid}/task/{task}/status"):
        if line.startswith("Cpus_allowed_list:"):
            out = set()
            for part in line.split()[1].split(","):
                a, _, b = part.partition("-")
                out.update(range(int(a), int(b or a) + 1))
            return out

bad, seen = [], set()
for task in os.listdir(f"/proc/{pid}/task"):
    comm = open(f"/proc/{pid}/task/{task}/comm").read().strip()
    cpus = cpus_of(task)
    if comm in planned:
        seen.add(comm)
        if cpus != {planned[comm]}:
            bad.append(f"{comm} on {sorted(cpus)}, plan: {planned[comm]}")
    elif not cpus <= housekeeping:
        bad.append(f"{comm} on {sorted(cpus)}, housekeeping CPUs: {sorted(housekeeping)}")
missing = set(planned) - seen
if missing:
    bad.append("planned threads not running: " + ", ".join(sorted(missing)))
for b in bad:
    print(f"FAIL: {name}: {b}")
if not bad:
    print(f"ok: {name}: {len(os.listdir(f'/proc/{pid}/task'))} threads where the plan puts them")
sys.exit(1 if bad else 0)
PY
		:
	else
		failures=$((failures + 1))
	fi
	stop_slmd
}

notify_listen
check_plan "default plan"
check_plan "dataplane on a core of its own" --set numa.dataplane_cores=1
finish
