#!/usr/bin/env bash
# The `ember` command as users and scripts call it: every sub-command end to
# end on generated data, exit codes (0 ok, 1 failure, 2 usage), clear
# messages for bad input, and refusal of broken model files.
#   test_cli.sh EMBER DATA_DIR
set -u
EMBER=$1
DATA=${2:-}
T=$(mktemp -d /tmp/ember-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
# expect CODE DESCRIPTION -- command...
expect() {
    local code=$1 what=$2
    shift 3
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ "$rc" -eq "$code" ]; then ok; else bad "$what: exit $rc, expected $code"; sed 's/^/    /' "$T/err" | head -5; fi
}
# the last command's stderr/stdout must contain a text
err_has() { if grep -q -- "$1" "$T/err"; then ok; else bad "stderr lacks '$1'"; sed 's/^/    /' "$T/err" | head -5; fi; }
out_has() { if grep -q -- "$1" "$T/out"; then ok; else bad "stdout lacks '$1'"; sed 's/^/    /' "$T/out" | head -5; fi; }

# --- help and usage
expect 0 "help" -- "$EMBER" --help
for c in train eval recommend similar serve models "data synth" "data split" "data stats"; do
    # shellcheck disable=SC2086
    expect 0 "$c --help" -- "$EMBER" $c --help
    out_has "usage"
done
expect 2 "no command" -- "$EMBER"
expect 2 "unknown command" -- "$EMBER" frobnicate
expect 2 "unknown option" -- "$EMBER" train --nope
err_has "unknown option"
expect 2 "missing required" -- "$EMBER" train --train x.tsv
expect 2 "missing value" -- "$EMBER" eval --model
expect 2 "bad number" -- "$EMBER" recommend --model m --user 1 -k ten
expect 2 "data without sub-command" -- "$EMBER" data

# --- generated data, split, stats
expect 0 "synth" -- "$EMBER" data synth --out "$T/i.tsv" --items-out "$T/items.item" --users 300 --items 400 --interactions 12000 --seed 3
expect 0 "split" -- "$EMBER" data split --input "$T/i.tsv" --out "$T/s" --seed 3
for f in train valid test; do [ -s "$T/s/$f.tsv" ] && ok || bad "split wrote no $f.tsv"; done
expect 0 "stats" -- "$EMBER" data stats "$T/i.tsv" --json
out_has '"users":300'

# --- every model: train, eval, recommend, similar
for m in pop itemknn userknn ease; do
    expect 0 "train $m" -- "$EMBER" train --train "$T/s/train.tsv" --valid "$T/s/valid.tsv" --model "$m" --out "$T/$m.ember"
    expect 0 "eval $m" -- "$EMBER" eval --model "$T/$m.ember" --test "$T/s/test.tsv" --exclude "$T/s/train.tsv,$T/s/valid.tsv" -k 10 --json
    for key in '"ndcg@10"' '"recall@10"' '"hit@10"' '"mrr@10"' '"precision@10"' '"coverage@10"' '"users"'; do out_has "$key"; done
    user=$(awk -F'\t' 'NR == 2 {print $1}' "$T/s/train.tsv")
    expect 0 "recommend $m" -- "$EMBER" recommend --model "$T/$m.ember" --user "$user" -k 5 --json --item-features "$T/items.item"
    out_has '"title"'
    expect 0 "recommend history $m" -- "$EMBER" recommend --model "$T/$m.ember" --history 1,2,3 -k 5
done
# --all-users: every user's list as TSV, the same as --user one by one
expect 0 "train als" -- "$EMBER" train --train "$T/s/train.tsv" --model als --param iterations=3 --out "$T/als.ember"
for m in als itemknn; do
    expect 0 "all users $m" -- "$EMBER" recommend --model "$T/$m.ember" --all-users -k 3 --out "$T/all.tsv"
    n_users=$(cut -f1 "$T/s/train.tsv" | tail -n +2 | sort -u | wc -l)
    [ "$(tail -n +2 "$T/all.tsv" | wc -l)" -eq $((n_users * 3)) ] && ok || bad "all users $m: not 3 lines per user"
    want=$("$EMBER" recommend --model "$T/$m.ember" --user "$user" -k 3 --json | grep -o '"item":"[^"]*"' | cut -d'"' -f4 | tr '\n' ' ')
    got=$(awk -F'\t' -v u="$user" '$1 == u {printf "%s ", $2}' "$T/all.tsv")
    [ "$got" = "$want" ] && ok || bad "all users $m: user $user got '$got', one by one '$want'"
done
expect 2 "all users with --user" -- "$EMBER" recommend --model "$T/als.ember" --all-users --user "$user"
expect 2 "--out without --all-users" -- "$EMBER" recommend --model "$T/als.ember" --user "$user" --out "$T/x"
expect 1 "all users unwritable" -- "$EMBER" recommend --model "$T/als.ember" --all-users --out "$T/no/such/dir"
err_has "cannot write"
expect 0 "similar" -- "$EMBER" similar --model "$T/itemknn.ember" --item 1 -k 5
expect 1 "similar on pop" -- "$EMBER" similar --model "$T/pop.ember" --item 1
err_has "no notion of similar"
expect 1 "bad param" -- "$EMBER" train --train "$T/s/train.tsv" --model itemknn --param k=zero --out "$T/x.ember"
expect 1 "bad param value" -- "$EMBER" train --train "$T/s/train.tsv" --model itemknn --param k=0 --out "$T/x.ember"
err_has "k=0"
expect 1 "unknown model" -- "$EMBER" train --train "$T/s/train.tsv" --model nosuch --out "$T/x.ember"
err_has "unknown model"

# --- bad input: clear message, exit 1, nothing written
printf 'user\titem\trating\ttimestamp\n1\t2\t5\t100\n1\tbroken\n' >"$T/bad.tsv"
expect 1 "malformed file" -- "$EMBER" train --train "$T/bad.tsv" --model pop --out "$T/bad.ember"
err_has "bad.tsv:3"
[ ! -e "$T/bad.ember" ] && ok || bad "a model was written from a malformed file"
expect 0 "skip-bad" -- "$EMBER" train --train "$T/bad.tsv" --model pop --out "$T/bad.ember" --skip-bad
err_has "skipped 1 malformed line"
expect 1 "missing file" -- "$EMBER" train --train "$T/none.tsv" --model pop --out "$T/x.ember"
err_has "none.tsv"
expect 1 "unknown user" -- "$EMBER" recommend --model "$T/pop.ember" --user no-such-user
err_has "unknown to the model"
expect 1 "unknown item" -- "$EMBER" similar --model "$T/itemknn.ember" --item no-such-item

# --- broken model files are refused, never crash
head -c 1000 "$T/ease.ember" >"$T/trunc.ember"
expect 1 "truncated model" -- "$EMBER" recommend --model "$T/trunc.ember" --user "$user"
err_has "ember:"
cp "$T/ease.ember" "$T/flip.ember"
printf '\x55' | dd of="$T/flip.ember" bs=1 seek=5000 conv=notrunc status=none
expect 1 "corrupted model" -- "$EMBER" eval --model "$T/flip.ember" --test "$T/s/test.tsv"
err_has "checksum"
expect 1 "foreign file as model" -- "$EMBER" recommend --model "$T/i.tsv" --user "$user"
err_has "not an ember model"
expect 1 "empty model file" -- "$EMBER" recommend --model /dev/null --user "$user"

# --- ML-100K, if present: the protocol's figures through the command line
if [ -n "$DATA" ] && [ -f "$DATA/ml-100k/splits/general/train.tsv" ]; then
    D=$DATA/ml-100k/splits/general
    expect 0 "train ease ml-100k" -- "$EMBER" train --train "$D/train.tsv" --model ease --out "$T/ml.ember"
    expect 0 "eval ease ml-100k" -- "$EMBER" eval --model "$T/ml.ember" --test "$D/test.tsv" --exclude "$D/train.tsv,$D/valid.tsv" -k 10 --json
    ndcg=$(sed -n 's/.*"ndcg@10":\([0-9.]*\).*/\1/p' "$T/out")
    awk -v n="$ndcg" 'BEGIN { exit !(n >= 0.333) }' && ok || bad "ease ndcg@10 $ndcg < 0.333"
    expect 0 "recommend ml-100k titles" -- "$EMBER" recommend --model "$T/ml.ember" --user 1 -k 5 --item-features "$DATA/ml-100k/ml-100k.item"
else
    echo "skipped the ML-100K part: $DATA/ml-100k absent"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
