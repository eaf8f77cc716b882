# The control socket and slmctl against a running slmd: every command
# from the command line, output and exit codes, the JSON scripts rely on,
# a peer of another uid, the Prometheus page and /health.
. tests/lib.sh

CTL=$BIN/slmctl
chmod 755 "$TMP"
SOCK=$TMP/run/ctl.sock
CONF=$TMP/slmd.conf
cat >"$CONF" <<EOF
[daemon]
drain_timeout_ms = 5000
EOF

"$BIN/slmd" -c "$CONF" --set ctl.socket="$SOCK" --set ctl.mode=0666 \
	--set metrics.listen=127.0.0.1:0 --set log.level=info \
	--set dataplane.listen=udp://127.0.0.1:0 >"$TMP/slmd.log" 2>&1 &
SLMD=$!
at_exit "kill $SLMD 2>/dev/null; wait $SLMD 2>/dev/null"
for _ in $(seq 100); do
	grep -q 'state: serving' "$TMP/slmd.log" && break
	sleep 0.05
done
grep -q 'state: serving' "$TMP/slmd.log" || {
	cat "$TMP/slmd.log"
	fail "slmd did not come up"
	finish
}
S=(-s "$SOCK")

# run NAME STATUS CMD...: the exit status and stdout/stderr kept.
run() {
	local name=$1 want=$2
	shift 2
	"$@" >"$TMP/out" 2>"$TMP/err"
	local got=$?
	if [ "$got" -ne "$want" ]; then
		fail "$name: exit status $got, expected $want: $(head -c 400 "$TMP/err")"
		return 1
	fi
	ok "$name"
}

# py NAME CODE: run Python checks on the JSON in $TMP/out (as `j`).
py() {
	local name=$1 code=$2
	if python3 - "$TMP/out" >"$TMP/py.out" 2>&1 <<PY; then
import json, sys
j = json.load(open(sys.argv[1]))
$code
PY
		ok "$name"
	else
		fail "$name: $(tail -n 3 "$TMP/py.out")"
	fi
}

# --- status, stats: the interface scripts rely on --------------------------
run "status --json" 0 "$CTL" "${S[@]}" status --json
py "status has version, state, uptime_s, model, dataplane" '
for k in ("version", "state", "uptime_s", "model", "dataplane"):
    assert k in j, k
assert j["state"] == "serving", j["state"]
assert isinstance(j["uptime_s"], (int, float)) and j["uptime_s"] >= 0
# No model.path: the serving core runs its synthetic model.
assert j["model"]["synthetic"] is True and j["model"]["arch"] == "llama", j["model"]
assert isinstance(j["groups"], list) and j["groups"][0]["kv_blocks_total"] > 0, j["groups"]
assert j["dataplane"]["url"].startswith("udp://127.0.0.1:"), j["dataplane"]
open(sys.argv[1] + ".url", "w").write(j["dataplane"]["url"])'
DP_URL=$(cat "$TMP/out.url")
run "status" 0 "$CTL" "${S[@]}" status
grep -q '^slmd .*: serving, up' "$TMP/out" || fail "status table: $(head -2 "$TMP/out")"
grep -q '^model: *name=synthetic-random, .*synthetic=yes' "$TMP/out" || fail "status shows the model: $(grep model: "$TMP/out")"
grep -q '^groups: *1$' "$TMP/out" || fail "status shows the groups: $(grep -A1 groups: "$TMP/out")"
grep -q "^dataplane: *url=$DP_URL, backend=" "$TMP/out" || fail "status shows the dataplane: $(grep dataplane "$TMP/out")"

run "stats --json" 0 "$CTL" "${S[@]}" stats --json
py "stats has the four counters, sourced by the serving core" '
for k in ("requests_total", "tokens_generated_total", "prefix_hit_tokens_total"):
    assert j[k] == 0, (k, j.get(k))
assert j["unsourced"] == [], j["unsourced"]
# The dataplane is there: drops have their source.
assert j["drops_total"] == 0 and "drops_total" not in j["unsourced"]
assert j["drops_by_reason"]["bad_mac"] == 0'
run "stats" 0 "$CTL" "${S[@]}" stats
grep -q '^requests_total  *0$' "$TMP/out" ||
	fail "stats table: $(grep requests_total "$TMP/out")"
# A datagram too short for a header: dropped, counted by reason.
python3 -c "import socket,sys; h,p=sys.argv[1][6:].rsplit(':',1); socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', (h, int(p)))" "$DP_URL"
for _ in $(seq 50); do
	"$CTL" "${S[@]}" stats --json >"$TMP/out" && grep -q '"drops_total":1' "$TMP/out" && break
	sleep 0.05
done
py "a dropped datagram in drops_total, by reason" '
assert j["drops_total"] == 1 and j["drops_by_reason"]["short"] == 1, j["drops_by_reason"]'

# --- perf: hardware counters, or why not -----------------------------------
run "perf --json" 0 "$CTL" "${S[@]}" perf --json
cp "$TMP/out" "$TMP/perf.json"
py "perf lists the control thread" '
names = [t["name"] for t in j["threads"]]
assert "ctl0" in names, names
hw = j["hw_counters"]
if not hw["available"]:
    for t in j["threads"]:
        assert "cycles" not in t["events"], t'
run "perf" 0 "$CTL" "${S[@]}" perf
if perf stat -e instructions true 2>&1 | grep -q 'not supported'; then
	grep -q 'not supported on this machine' "$TMP/out" ||
		fail "perf does not say hardware counters are not supported: $(head -3 "$TMP/out")"
fi
grep -q '^ctl0 ' "$TMP/out" || fail "perf table lacks the ctl thread"

# --- top ---------------------------------------------------------------------
run "top, two frames" 0 "$CTL" "${S[@]}" top -n 2 -i 0.2
[ "$(grep -c 'req/s' "$TMP/out")" -eq 2 ] || fail "top printed $(grep -c 'req/s' "$TMP/out") frames"
# Idle: rates are 0, latencies of an interval without requests are '-'.
grep -q '^ *0.0 *0.0 *0 *0 *- *- *- *- *- *0 %$' "$TMP/out" ||
	fail "top of an idle slmd: $(sed -n 3,4p "$TMP/out")"
grep -q '^g0.worker0 *worker *0 .* idle$' "$TMP/out" || fail "top lists the idle worker: $(grep worker "$TMP/out")"
run "top --json" 0 "$CTL" "${S[@]}" top -n 1 -i 0.2 --json
py "top --json: 0 rates, null latencies while idle" '
assert j["requests_per_s"] == 0 and j["ttft_p50_us"] is None
assert j["kv_use_ratio"] == 0
assert any(t["name"] == "ctl0" and t["cpu_pct"] is not None for t in j["threads"])'

# --- config --------------------------------------------------------------------
run "config set (runtime key)" 0 "$CTL" "${S[@]}" config set log.level debug
grep -q 'log.level: info -> debug' "$TMP/out" || fail "config set output: $(cat "$TMP/out")"
run "config get" 0 "$CTL" "${S[@]}" config get log.level
grep -qx 'log.level = debug' "$TMP/out" || fail "config get: $(cat "$TMP/out")"
grep -q 'slmctl (uid 0' "$TMP/slmd.log" || fail "the change is not logged"
expect_fail "config set (needs a restart)" "cannot change while running" "ESTATE" -- \
	"$CTL" "${S[@]}" config set engine.threads 2
expect_fail "config set (bad value)" "out of bounds" -- \
	"$CTL" "${S[@]}" config set ctl.max_clients=0
run "config list" 0 "$CTL" "${S[@]}" config list
grep -q '^ctl.max_line  *65536  *runtime' "$TMP/out" || fail "config list: $(grep max_line "$TMP/out")"
run "config dump" 0 "$CTL" "${S[@]}" config dump
"$BIN/slm" config -c "$TMP/out" >/dev/null 2>"$TMP/err" || fail "the dump does not load: $(cat "$TMP/err")"
printf '[daemon]\ndrain_timeout_ms = 7000\n[engine]\nthreads = 3\n' >"$CONF"
run "config reload" 0 "$CTL" "${S[@]}" config reload
grep -q 'daemon.drain_timeout_ms: 5000 -> 7000' "$TMP/out" || fail "reload output: $(cat "$TMP/out")"
grep -q 'engine.threads: 3 in the file, still 0 (needs a restart)' "$TMP/out" ||
	fail "reload does not report the restart-only key: $(cat "$TMP/out")"
run "config get after reload" 0 "$CTL" "${S[@]}" config get daemon.drain_timeout_ms --json
py "reloaded value" 'assert j["keys"]["daemon.drain_timeout_ms"]["value"] == "7000"'
printf '[daemon]\ndrain_timeout_ms = soon\n' >"$CONF"
expect_fail "config reload (bad file)" "slmd.conf:2" "ECONFIG" -- "$CTL" "${S[@]}" config reload

# --- the rest ----------------------------------------------------------------
# The reload re-applied the file and the --set overrides: the runtime
# change of log.level is gone (the command line said info).
run "log-level" 0 "$CTL" "${S[@]}" log-level warn
grep -q 'log level: warn (was info)' "$TMP/out" || fail "log-level: $(cat "$TMP/out")"
run "topology" 0 "$CTL" "${S[@]}" topology
grep -q '^topology' "$TMP/out" || fail "topology: $(head -2 "$TMP/out")"
run "help" 0 "$CTL" "${S[@]}" help
grep -q '^  model ' "$TMP/out" && ! grep -q 'model .*(not in this build)' "$TMP/out" ||
	fail "help: $(cat "$TMP/out")"
# the serving core answers model (tests/integration/ctl_model_swap.sh
# swaps under load): a file that is not there, from its reader
expect_fail "model load (no such file)" "cannot open" "x.gguf" "ENOTFOUND" -- \
	"$CTL" "${S[@]}" model load x.gguf
expect_fail "model swap (no such file)" "cannot open" -- "$CTL" "${S[@]}" model swap x.gguf
run "cache flush" 0 "$CTL" "${S[@]}" cache flush --json
py "cache flush: done, nothing cached" 'assert j["flushed"] is True and j["kv_blocks"]["cached"] == 0, j'
expect_fail "cache (unknown op)" "unknown op 'melt'" "ENOTFOUND" -- "$CTL" "${S[@]}" cache melt
expect_fail "unknown command" "unknown command 'frob'" "ENOTFOUND" -- "$CTL" "${S[@]}" frob
expect_fail "bad JSON" "bad JSON" -- "$CTL" "${S[@]}" call 'nonsense'
grep -q '"code":"EFORMAT"' "$TMP/out" || fail "call prints the error response"
run "call" 0 "$CTL" "${S[@]}" call '{"cmd":"status","id":"x1"}'
py "call returns the whole response" 'assert j["ok"] and j["id"] == "x1"'
run "--json error object" 1 "$CTL" "${S[@]}" model unload nobody --json
py "the error as JSON on stdout" 'assert j["error"]["code"] == "ENOTFOUND"'
run "model list --json" 0 "$CTL" "${S[@]}" model list --json
py "model list: the synthetic model serves" '
m = j["models"]
assert len(m) == 1 and m[0]["state"] == "serving" and m[0]["synthetic"]'

# An oversized line, then a request on the same connection.
python3 - "$SOCK" >"$TMP/py.out" 2>&1 <<'PY' && ok "oversized line: error, connection survives" || fail "oversized line: $(tail -3 "$TMP/py.out")"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb")
f.write(b"x" * 200000 + b"\n" + b'{"cmd":"status","id":2}\n')
f.flush()
a = json.loads(f.readline())
b = json.loads(f.readline())
assert a["error"]["code"] == "ETOOBIG", a
assert b["ok"] and b["id"] == 2, b
PY

# --- who may connect -------------------------------------------------------------
if [ "$(id -u)" -eq 0 ]; then
	run "a peer of another uid is refused" 1 setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$CTL" "${S[@]}" status
	grep -q 'uid 65534 is not allowed.*(EAUTH)' "$TMP/err" || fail "refusal message: $(cat "$TMP/err")"
else
	echo "note: not root: the other-uid check runs in the unit tests only when root"
fi
run "cannot connect" 2 "$CTL" -s "$TMP/none.sock" status
grep -qx "slmctl: cannot connect to $TMP/none.sock: No such file or directory (is slmd running?)" "$TMP/err" ||
	fail "cannot-connect message: $(cat "$TMP/err")"

# --- metrics and health ---------------------------------------------------------------
URL=$("$CTL" "${S[@]}" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ctl"]["metrics"])')
code=$(curl -s -o "$TMP/health" -w '%{http_code}' "$URL/health")
[ "$code" = 200 ] && ok "/health 200 while serving" || fail "/health while serving: $code $(cat "$TMP/health")"
curl -s "$URL/metrics" >"$TMP/m1" || fail "GET /metrics"
"$CTL" "${S[@]}" stats >/dev/null
curl -s "$URL/metrics" >"$TMP/m2" || fail "GET /metrics"
python3 - "$TMP/m1" "$TMP/m2" >"$TMP/py.out" 2>&1 <<'PY' && ok "the metrics page parses; counters only grow" || fail "metrics: $(tail -5 "$TMP/py.out")"
import re, sys
line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*)?\})? (?P<value>\S+)$')
def parse(path):
    types, samples, seen = {}, {}, []
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, t = line.split(" ")
            assert name not in types, "family twice: " + name
            assert t in ("counter", "gauge", "histogram"), t
            types[name] = t
            seen.append(name)
            continue
        m = line_re.match(line)
        assert m, "bad line: " + line
        name, value = m.group(1), m.group("value")
        float(value.replace("+Inf", "inf"))
        assert name.startswith("slmd_"), name
        fam = re.sub(r"_(bucket|sum|count)$", "", name)
        fam = fam if fam in types else name
        assert fam in types, "no TYPE before " + name
        assert fam == seen[-1], "family not contiguous: " + name
        if types[fam] == "counter":
            assert name.endswith("_total"), "counter without _total: " + name
        samples[line.rsplit(" ", 1)[0]] = float(value.replace("+Inf", "inf"))
    return types, samples
t1, s1 = parse(sys.argv[1])
t2, s2 = parse(sys.argv[2])
for need in ("slmd_info", "slmd_uptime_seconds", "slmd_state", "slmd_ctl_connections_total",
             "slmd_thread_cpu_seconds_total", "slmd_process_cpu_seconds_total"):
    assert need in t1, need
grew = 0
for k, v in s1.items():
    fam = k.split("{")[0]
    if t1.get(fam) == "counter" and k in s2:
        assert s2[k] >= v, ("counter went back", k, v, s2[k])
        grew += s2[k] > v
assert grew > 0, "no counter grew between scrapes"
assert s1['slmd_state{state="serving"}'] == 1
assert s1['slmd_drops_total{thread="dataplane",reason="short"}'] == 1
PY
run "drain" 0 "$CTL" "${S[@]}" drain --wait
grep -q '^drained' "$TMP/out" || fail "drain --wait: $(cat "$TMP/out")"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/health")
[ "$code" = 503 ] && ok "/health 503 while draining" || fail "/health while draining: $code"
run "status while drained" 0 "$CTL" "${S[@]}" status --json
py "draining, drained, not exiting" 'assert j["state"] == "draining" and j["drained"] and not j["exiting"]'
run "shutdown --wait" 0 "$CTL" "${S[@]}" shutdown --wait
wait $SLMD
status=$?
[ "$status" -eq 0 ] && ok "slmd exits 0 after shutdown" || fail "slmd exit status $status"
[ ! -e "$SOCK" ] && ok "the socket is removed" || fail "the socket is left behind"
finish
