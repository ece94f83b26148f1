#!/usr/bin/env bash
# bench_serve.sh — indicative figures for `ember serve`, measured with wrk
# (Debian package wrk; this script installs nothing).
#   bench/bench_serve.sh [EMBER]        (default ./build/ember)
# Environment: USERS ITEMS INTERACTIONS (generated data), MODEL (default
# als), FACTORS (als dimension, default 64), THREADS (server, default 2),
# SECONDS (per wrk run, default 10), CONNS (wrk connections, default 32).
#
# It prints, for one server on 127.0.0.1 with THREADS threads:
#   1. the HTTP ceiling: GET /healthz (no model work) at saturation
#   2. GET /v1/recommend?user=U&k=10 at saturation, users in rotation,
#      with wrk's latency percentiles; then at fixed rates (RATES, default
#      "1000 5000") with bench/loadgen.c (Debian's wrk has no -R), latency
#      counted from when each request was due
#   3. event ingestion: POST /v1/events, batches of 100 events, committed
#      durably (synchronous=FULL) — events/s = requests/s x 100
#   4. event-to-visible: POST one event, then GET the user's
#      recommendation; the time from sending the POST to having the changed
#      answer, median and worst of 50 (curl timings, so an upper bound)
# wrk runs on the same machine and takes CPU from the server: the figures
# are a floor, and the machine is shared.
set -eu
EMBER=${1:-./build/ember}
USERS=${USERS:-100000}
ITEMS=${ITEMS:-200000}
INTERACTIONS=${INTERACTIONS:-5000000}
RATES=${RATES:-1000 5000}
LOADGEN=${LOADGEN:-$(dirname "$EMBER")/loadgen}
MODEL=${MODEL:-als}
FACTORS=${FACTORS:-64}
THREADS=${THREADS:-2}
SECONDS_=${SECONDS:-10}
CONNS=${CONNS:-32}
command -v wrk >/dev/null || { echo "bench_serve: wrk is not installed (apt-get install wrk)"; exit 1; }
command -v curl >/dev/null || { echo "bench_serve: curl is not installed"; exit 1; }
[ -x "$LOADGEN" ] || { echo "bench_serve: $LOADGEN missing (make bench)"; exit 1; }
T=$(mktemp -d /tmp/ember-bench-serve-XXXXXX)
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT

echo "== data: $USERS users, $ITEMS items, $INTERACTIONS interactions; model $MODEL"
"$EMBER" data synth --out "$T/i.tsv" --users "$USERS" --items "$ITEMS" \
    --interactions "$INTERACTIONS" --seed 1 >/dev/null
params=()
[ "$MODEL" = als ] && params=(--param "factors=$FACTORS")
t0=$(date +%s.%N)
"$EMBER" train --train "$T/i.tsv" --model "$MODEL" "${params[@]}" --out "$T/m.ember" >/dev/null
echo "trained in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s ($(du -h "$T/m.ember" | cut -f1))"

"$EMBER" serve --model "$T/m.ember" --db "$T/ev.sqlite" --port 0 --threads "$THREADS" \
    2>"$T/serve.log" &
SERVER=$!
PORT=
for _ in $(seq 1 200); do
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/serve.log")
    [ -n "$PORT" ] && break
    sleep 0.05
done
[ -n "$PORT" ] || { cat "$T/serve.log"; exit 1; }
grep "started in" "$T/serve.log"
URL=http://127.0.0.1:$PORT

cat >"$T/recommend.lua" <<EOF
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/recommend?user=" .. (n % $USERS + 1) .. "&k=10")
end
EOF
cat >"$T/events.lua" <<'EOF'
local n = 0
request = function()
  n = n + 1
  local parts = {}
  for i = 1, 100 do
    parts[i] = string.format('{"user":"bench-%d-%d","item":"%d"}', n, i % 10, (n * 31 + i) % 1000 + 1)
  end
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"},
                    '{"events":[' .. table.concat(parts, ",") .. ']}')
end
EOF

run() { # title, then wrk arguments
    local title=$1
    shift
    echo "== $title"
    wrk -t 2 -c "$CONNS" -d "${SECONDS_}s" --latency "$@" 2>&1 |
        grep -E "Requests/sec|Latency|^ +(50|75|90|99)%|Non-2xx|requests in"
}

run "HTTP ceiling: GET /healthz" "$URL/healthz"
run "GET /v1/recommend k=10 (saturation)" -s "$T/recommend.lua" "$URL"
for rate in $RATES; do
    echo "== GET /v1/recommend k=10 at a fixed $rate req/s (loadgen, 16 connections)"
    "$LOADGEN" 127.0.0.1 "$PORT" "$rate" "$SECONDS_" 16 "$USERS" "/v1/recommend?user=%u&k=10" || true
done
run "POST /v1/events, 100 events per batch (durable)" -s "$T/events.lua" "$URL"
curl -s "$URL/metrics" | grep -E "^ember_(events_ingested_total|store_commits_total)"

echo "== event-to-visible (POST an event, then GET: the answer has changed)"
# items the model knows: from the training data
mapfile -t known < <(awk -F'\t' 'NR > 1 && NR <= 51 {print $2}' "$T/i.tsv")
: >"$T/visible"
for i in $(seq 1 50); do
    user="visible-$i"
    post=$(curl -s -o /dev/null -w '%{time_total}' -X POST \
        -d "{\"events\":[{\"user\":\"$user\",\"item\":\"${known[$((i - 1))]}\"}]}" "$URL/v1/events")
    get=$(curl -s -o "$T/answer" -w '%{time_total}' "$URL/v1/recommend?user=$user&k=10")
    grep -q '"history_used":1' "$T/answer" || { echo "not visible: $(cat "$T/answer")"; exit 1; }
    echo "$post $get" >>"$T/visible"
done
awk '{p[NR] = $1 * 1000; g[NR] = $2 * 1000; t[NR] = p[NR] + g[NR]}
     function median(a, n,   i, j, x) { for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x } return a[int((n + 1) / 2)] }
     END { n = NR; mp = median(p, n); mg = median(g, n); mt = median(t, n);
           printf "median over %d: POST (durable commit) %.2f ms + GET %.2f ms = %.2f ms from sending the event to holding the changed answer (worst %.2f ms)\n", n, mp, mg, mt, t[n] }' "$T/visible"
