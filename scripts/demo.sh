#!/usr/bin/env bash
# The demo of `make demo`: generate data, split it, train every model,
# evaluate them side by side, and show recommendations with item titles.
# Runs on ember's own synthetic data, so it needs nothing but the build.
set -eu
EMBER=${1:-build/ember}
OUT=${DEMO_OUT:-demo-out}
mkdir -p "$OUT"
start=$(date +%s.%N)

echo "== 1. data: 3,000 users x 4,000 items x 150,000 interactions (ember data synth)"
"$EMBER" data synth --out "$OUT/interactions.tsv" --items-out "$OUT/items.item" \
    --users 3000 --items 4000 --interactions 150000 --seed 7
"$EMBER" data split --input "$OUT/interactions.tsv" --out "$OUT/split" --method ratio \
    --valid 0.1 --test 0.1 --seed 7

echo
echo "== 2. train and evaluate (full ranking over all items, train+valid items excluded)"
json_get() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" <<<"$1"; }
printf "%-9s %9s %10s %8s %8s %12s %9s %9s\n" model ndcg@10 recall@10 hit@10 mrr@10 coverage@10 fit_s eval_s
for m in pop itemknn userknn ease; do
    t0=$(date +%s.%N)
    "$EMBER" train --train "$OUT/split/train.tsv" --valid "$OUT/split/valid.tsv" \
        --model "$m" --out "$OUT/$m.ember" --quiet
    t1=$(date +%s.%N)
    j=$("$EMBER" eval --model "$OUT/$m.ember" --test "$OUT/split/test.tsv" \
        --exclude "$OUT/split/train.tsv,$OUT/split/valid.tsv" -k 10 --json)
    printf "%-9s %9.4f %10.4f %8.4f %8.4f %12.4f %9.2f %9.2f\n" "$m" \
        "$(json_get "$j" 'ndcg@10')" "$(json_get "$j" 'recall@10')" "$(json_get "$j" 'hit@10')" \
        "$(json_get "$j" 'mrr@10')" "$(json_get "$j" 'coverage@10')" \
        "$(awk -v a="$t1" -v b="$t0" 'BEGIN { print a - b }')" "$(json_get "$j" 'seconds')"
done

echo
echo "== 3. recommendations (ease) with the user's recent history"
for u in 1 2 3; do
    hist=$(awk -F'\t' -v u="$u" '$1 == u {print $4 "\t" $2}' "$OUT/split/train.tsv" | sort -n |
        tail -n 3 | cut -f2 | tr '\n' ',' | sed 's/,$//')
    titles=$(awk -F'\t' -v h=",$hist," 'NR > 1 && index(h, "," $1 ",") { printf "%s%s (%s)", sep, $2, $3; sep = "; " }' "$OUT/items.item")
    echo "-- user $u, recently: $titles"
    "$EMBER" recommend --model "$OUT/ease.ember" --user "$u" -k 5 --item-features "$OUT/items.item"
done

echo
first=$(awk -F'\t' 'NR == 2 {print $2}' "$OUT/split/test.tsv")
second=$(awk -F'\t' 'NR == 3 {print $2}' "$OUT/split/test.tsv")
seen=$(awk -F'\t' -v a="$first" -v b="$second" 'NR > 1 && ($1 == a || $1 == b) { printf "%s%s (%s)", sep, $2, $3; sep = "; " }' "$OUT/items.item")
echo "== 4. a new visitor who just viewed: $seen (no retraining: --history)"
"$EMBER" recommend --model "$OUT/itemknn.ember" --history "$first,$second" -k 5 \
    --item-features "$OUT/items.item"

echo
echo "== 5. items similar to item $first (itemknn)"
"$EMBER" similar --model "$OUT/itemknn.ember" --item "$first" -k 5 --item-features "$OUT/items.item"

end=$(date +%s.%N)
printf "\ndemo finished in %.1f s; files are in %s/\n" "$(awk -v a="$end" -v b="$start" 'BEGIN { print a - b }')" "$OUT"
