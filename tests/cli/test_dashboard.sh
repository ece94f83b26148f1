#!/usr/bin/env bash
# The dashboard of `ember serve` (GET /) in a real browser: headless
# Chromium loads /?user=U, whose script fills the try-it box and asks; the
# DOM after the scripts ran must show the model, the user's
# recommendations with item titles, and an explanation for each.  With
# SCREENSHOT=FILE it also saves a picture of the page (docs/dashboard.png
# was made so).
#   test_dashboard.sh EMBER DATA_DIR
# Needs chromium (Debian package chromium); exits 77 (skip) without it.
set -u
EMBER=$1
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || { echo "skipped: chromium not installed"; exit 77; }
T=$(mktemp -d /tmp/ember-dashboard-XXXXXX)
SERVER=
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$T/dom.html" ] && head -c 3000 "$T/dom.html"; exit 1; }

"$EMBER" data synth --out "$T/i.tsv" --items-out "$T/items.tsv" --users 200 --items 300 \
    --interactions 6000 --seed 3 >/dev/null 2>&1 || fail "data synth"
"$EMBER" train --train "$T/i.tsv" --model itemknn --out "$T/m.ember" >/dev/null 2>&1 || fail "train"
"$EMBER" serve --model "$T/m.ember" --db "$T/ev.sqlite" --port 0 --items "$T/items.tsv" \
    2>"$T/serve.log" &
SERVER=$!
PORT=
for _ in $(seq 1 200); do
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/serve.log")
    [ -n "$PORT" ] && break
    sleep 0.05
done
[ -n "$PORT" ] || fail "the server did not start: $(cat "$T/serve.log")"
USER_ID=$(awk -F'\t' 'NR == 2 {print $1}' "$T/i.tsv")
URL="http://127.0.0.1:$PORT/?user=$USER_ID&k=5"

# one browser run: the DOM once the page's requests have answered
browse() {
    timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
        --no-first-run --user-data-dir="$T/profile" --virtual-time-budget=10000 "$@" "$URL" \
        2>"$T/chromium.log"
}
browse --dump-dom >"$T/dom.html" || fail "chromium exited with $? ($(tail -3 "$T/chromium.log"))"

grep -q 'id="model">model: itemknn' "$T/dom.html" || fail "the model line is missing"
rows=$(grep -o '<tr class="rec">' "$T/dom.html" | wc -l)
[ "$rows" -eq 5 ] || fail "expected 5 recommendation rows, found $rows"
# titles from --items (synthetic titles are topic words, never bare ids)
title=$(awk -F'\t' 'NR == 2 {print $2}' "$T/items.tsv")
[ -n "$title" ] || fail "no title in the item file"
grep -q '<td>[^<]* ([^<]*)</td>' "$T/dom.html" || fail "no 'title (id)' cell"
whys=$(grep -o 'Recommended because of' "$T/dom.html" | wc -l)
[ "$whys" -eq 5 ] || fail "expected 5 explanations, found $whys"
# the request reached the server as a recommendation and 5 explanations
curl -s "http://127.0.0.1:$PORT/metrics" >"$T/metrics" 2>/dev/null || true
if [ -s "$T/metrics" ]; then
    grep -q 'route="explain",code="200"} 5' "$T/metrics" || fail "the server did not answer 5 explanations"
fi
if [ -n "${SCREENSHOT:-}" ]; then
    browse --screenshot="$T/shot.png" --window-size=1200,720 >/dev/null || fail "screenshot"
    cp "$T/shot.png" "$SCREENSHOT"
fi
echo "dashboard: 5 recommendations with titles and explanations rendered in $("$CHROMIUM" --version 2>/dev/null)"
