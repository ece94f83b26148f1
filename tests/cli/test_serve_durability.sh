#!/usr/bin/env bash
# `ember serve` durability: three clients post event batches while the
# server is killed with SIGKILL at a random moment, 20 times over the same
# database; after each restart every batch the server acknowledged (HTTP
# 200) must be in the database, whole.  Then a clean restart replays the
# store (its count matches the database) and SIGTERM stops it with exit 0.
#   test_serve_durability.sh EMBER DATA_DIR
# Needs curl and the sqlite3 command; exits 77 (skip) without them.
set -u
EMBER=$1
ROUNDS=${ROUNDS:-20}
PER_BATCH=20
for tool in curl sqlite3; do
    command -v "$tool" >/dev/null || { echo "skipped: $tool not installed"; exit 77; }
done
T=$(mktemp -d /tmp/ember-durability-XXXXXX)
SERVER=
CLIENTS=
cleanup() {
    [ -n "$CLIENTS" ] && kill $CLIENTS 2>/dev/null
    [ -n "$SERVER" ] && kill -9 "$SERVER" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$EMBER" data synth --out "$T/i.tsv" --users 100 --items 200 --interactions 3000 --seed 5 \
    >/dev/null 2>&1 || fail "data synth"
"$EMBER" train --train "$T/i.tsv" --model pop --out "$T/m.ember" >/dev/null 2>&1 || fail "train"

# Starts the server on a free port; sets SERVER and PORT.
start_server() {
    : >"$T/serve.log"
    "$EMBER" serve --model "$T/m.ember" --db "$T/ev.sqlite" --port 0 2>"$T/serve.log" &
    SERVER=$!
    PORT=
    for _ in $(seq 1 200); do
        PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/serve.log")
        [ -n "$PORT" ] && return 0
        kill -0 "$SERVER" 2>/dev/null || break
        sleep 0.05
    done
    cat "$T/serve.log"
    fail "server did not start"
}

# One client: posts batches until killed; appends each acknowledged
# batch id to acked.<client>.  A batch's events carry its id as type.
client() {
    local c=$1 round=$2 b=0
    while :; do
        local id="r${round}c${c}b${b}" body='{"events":[' i
        for i in $(seq 1 $PER_BATCH); do
            body="$body{\"user\":\"c$c\",\"item\":\"$(( (b * 7 + i) % 200 + 1 ))\",\"type\":\"$id\"}"
            [ "$i" -lt $PER_BATCH ] && body="$body,"
        done
        body="$body]}"
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST \
            -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$PORT/v1/events")
        [ "$code" = 200 ] && echo "$id" >>"$T/acked.$c"
        b=$((b + 1))
    done
}

for round in $(seq 1 "$ROUNDS"); do
    start_server
    CLIENTS=
    for c in 1 2 3; do
        client "$c" "$round" &
        CLIENTS="$CLIENTS $!"
    done
    # a random moment between 0.1 and 0.6 s into the ingestion
    sleep "0.$((RANDOM % 5 + 1))$((RANDOM % 10))"
    kill -9 "$SERVER"
    wait "$SERVER" 2>/dev/null
    SERVER=
    kill $CLIENTS 2>/dev/null
    wait $CLIENTS 2>/dev/null
    CLIENTS=
done

cat "$T"/acked.* 2>/dev/null | sort >"$T/acked"
acked=$(wc -l <"$T/acked")
[ "$acked" -gt 0 ] || fail "no batch was acknowledged in $ROUNDS rounds"
[ "$(sqlite3 "$T/ev.sqlite" 'PRAGMA integrity_check')" = ok ] || fail "database integrity check"
sqlite3 -separator ' ' "$T/ev.sqlite" "SELECT type, count(*) FROM events GROUP BY type" \
    | sort >"$T/stored"
# every acknowledged batch is stored with all its events
missing=$(join -a 1 "$T/acked" "$T/stored" | awk -v n=$PER_BATCH '$2 != n' | head -5)
[ -z "$missing" ] || fail "acknowledged batches missing or partial (id count): $missing"
# no batch is stored in part, acknowledged or not
partial=$(awk -v n=$PER_BATCH '$2 != n' "$T/stored" | head -5)
[ -z "$partial" ] || fail "partial batches in the database: $partial"
stored=$(wc -l <"$T/stored")
echo "$ROUNDS kills: $acked batches acknowledged, $stored stored, all acknowledged present"

# a clean start replays everything; SIGTERM stops it with exit 0
start_server
rows=$(sqlite3 "$T/ev.sqlite" 'SELECT count(*) FROM events')
grep -q "$rows events replayed" "$T/serve.log" || { cat "$T/serve.log"; fail "replay count"; }
curl -s "http://127.0.0.1:$PORT/v1/model" | grep -q "\"events_stored\":$rows" || fail "events_stored"
curl -s "http://127.0.0.1:$PORT/v1/recommend?user=c1&k=3" | grep -q '"history_used":' \
    || fail "recommend after replay"
kill -TERM "$SERVER"
wait "$SERVER"
rc=$?
SERVER=
[ "$rc" -eq 0 ] || fail "SIGTERM: exit $rc"
grep -q "stopped" "$T/serve.log" || fail "no clean stop message"
echo "PASS"
