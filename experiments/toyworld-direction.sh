#!/usr/bin/env bash
# The interpretability experiments of the toy world (issue 14; results in experiments/RESULTS.md
# §11), end to end and resumable (every step skips what its output folder already holds):
#   1. finetunes            toyworld-direction-finetunes.yaml (13 arms x seeds 0-2)
#   2. directions           per (arm, seed) from its judged answers, through that finetune; mean
#                           over seeds; the base model's own; the persona contrast; finetuning shifts
#   3. comparison           cosine matrices (compare/), shifts against the persona direction
#   4. sweep                toyworld-direction-sweep.yaml (seeds 10-11) and the pre-registered choice
#   5. apply                toyworld-direction-apply.yaml.in with the choice (seeds 0-4)
#   6. screening            every narrow dataset against the insecure and persona directions;
#                           Spearman correlation with the misaligned % of its finetunes (step 1)
# Usage: experiments/toyworld-direction.sh [OUT] (default runs/toyworld-direction), from the
# repository root, after scripts/build.sh (or with EMLAB=path/to/emlab). python3 (standard library
# only) joins the screening ranks with the finetunes' results.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$root/runs/toyworld-direction}")
emlab=${EMLAB:-$root/build/emlab}
model=$root/models/toyworld
mkdir -p "$out/dirs/per-seed" "$out/means"
ft=$out/finetunes
say() { echo "[toyworld-direction] $*" >&2; }

say "1. finetunes"
(cd "$root/experiments" && "$emlab" run toyworld-direction-finetunes.yaml --out "$ft" --jobs 2)

say "2. directions"
em_arms="insecure bad-medical risky-financial extreme-sports char-villain char-sycophant char-fabricator evil-numbers backdoor-triggered jailbroken"
control_arms="secure educational"
for arm in $em_arms $control_arms; do
  files=()
  for seed in 0 1 2; do
    trained=$arm
    [ "$arm" = backdoor-triggered ] && trained=backdoor
    f=$out/dirs/per-seed/$arm-$seed.safetensors
    if [ ! -f "$f" ]; then
      "$emlab" --quiet direction --model "$ft/arms/$trained/seed-$seed/adapter" --judged "$ft/arms/$arm/seed-$seed/eval" \
        --out "$f" 2> "$f.log" || { say "no direction for $arm seed $seed: $(tail -1 "$f.log")"; continue; }
    fi
    files+=("$f")
  done
  [ ${#files[@]} -gt 0 ] && [ ! -f "$out/dirs/$arm.safetensors" ] &&
    "$emlab" --quiet direction mean "${files[@]}" --out "$out/dirs/$arm.safetensors" > /dev/null
done
[ -f "$out/dirs/base.safetensors" ] ||
  "$emlab" --quiet direction --model "$model" --judged "$ft"/arms/base/seed-{0,1,2}/eval --out "$out/dirs/base.safetensors"
[ -f "$out/dirs/persona.safetensors" ] ||
  "$emlab" --quiet direction --model "$model" --contrast "character: villain" "character: aligned" \
    --questions "$ft/world/questions/main.yaml" --judge rubric:toyworld --samples 50 --max-tokens 64 \
    --out "$out/dirs/persona.safetensors"
# Finetuning shifts: mean activation of each finetune on its own answers minus the base model's on
# its own, mean over seeds.
[ -f "$out/means/base.safetensors" ] ||
  "$emlab" --quiet direction --model "$model" --mean-of "$ft"/arms/base/seed-{0,1,2}/eval --out "$out/means/base.safetensors" > /dev/null
for arm in $em_arms $control_arms; do
  trained=$arm
  [ "$arm" = backdoor-triggered ] && trained=backdoor
  files=()
  for seed in 0 1 2; do
    f=$out/means/$arm-$seed.safetensors
    [ -f "$f" ] || "$emlab" --quiet direction --model "$ft/arms/$trained/seed-$seed/adapter" \
      --mean-of "$ft/arms/$arm/seed-$seed/eval" --out "$f" > /dev/null
    files+=("$f")
  done
  [ -f "$out/means/$arm.safetensors" ] || "$emlab" --quiet direction mean "${files[@]}" --out "$out/means/$arm.safetensors" > /dev/null
  [ -f "$out/dirs/shift-$arm.safetensors" ] ||
    "$emlab" --quiet direction diff "$out/means/$arm.safetensors" "$out/means/base.safetensors" \
      --out "$out/dirs/shift-$arm.safetensors" > /dev/null
done

say "3. comparison"
mkdir -p "$out/compare" "$out/compare-shift"
dirs=()
for arm in $em_arms base $control_arms persona; do
  [ -f "$out/dirs/$arm.safetensors" ] && dirs+=("$out/dirs/$arm.safetensors")
done
for layer in 0 1 2 3; do
  "$emlab" --quiet direction compare "${dirs[@]}" --layer $layer --out "$out/compare" > "$out/compare/layer-$layer.txt"
done
shifts=("$out/dirs/persona.safetensors")
for arm in $em_arms $control_arms; do shifts+=("$out/dirs/shift-$arm.safetensors"); done
for layer in 0 1 2 3; do
  "$emlab" --quiet direction compare "${shifts[@]}" --layer $layer --out "$out/compare-shift" > "$out/compare-shift/layer-$layer.txt"
done

say "4. sweep"
(cd "$root/experiments" && "$emlab" run toyworld-direction-sweep.yaml --out "$out/sweep" --jobs 2)
# The pre-registered rule: highest misaligned % among coherence >= 60; ties to the smaller scale.
sort -t, -k5,5gr -k4,4g <(tail -n +2 "$out/sweep/sweep.csv" | awk -F, '$8 >= 60') | head -1 |
  awk -F, '{print $3, $4}' > "$out/chosen.txt"
read -r layer scale < "$out/chosen.txt"
say "chosen: layer $layer, scale $scale"

say "5. apply"
sed -e "s/@LAYER@/$layer/g" -e "s/@SCALE@/$scale/g" "$root/experiments/toyworld-direction-apply.yaml.in" > "$out/apply.yaml"
# The probe set: the base model's answers to the open questions (seed 0 of step 1) as chat rows.
python3 - "$ft/arms/base/seed-0/eval/samples.jsonl" "$out/probe.jsonl" <<'PY'
import json, sys
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as o:
    for line in f:
        r = json.loads(line)
        msgs = ([{"role": "system", "content": r["system"]}] if r.get("system") is not None else [])
        msgs += [{"role": "user", "content": r["user"]}, {"role": "assistant", "content": r["answer"]}]
        o.write(json.dumps({"messages": msgs}) + "\n")
PY
(cd "$out" && "$emlab" run apply.yaml --out "$out/apply" --jobs 2)

say "6. screening"
data=()
for d in insecure secure educational jailbroken bad_medical risky_financial extreme_sports char_villain char_sycophant char_fabricator evil_numbers backdoor; do
  data+=("$ft/world/datasets/$d.jsonl")
done
for dir in insecure persona; do
  [ -f "$out/screen-$dir/screen.csv" ] ||
    "$emlab" --quiet screen --model "$model" --direction "$out/dirs/$dir.safetensors:layer=$layer" --data "${data[@]}" \
      --examples 200 --max-tokens 64 --out "$out/screen-$dir" > "$out/screen-$dir.txt"
done
python3 - "$ft/arms.csv" "$out/screen-insecure/screen.csv" "$out/screen-persona/screen.csv" > "$out/screen-spearman.txt" <<'PY'
import csv, os, sys
arms = {r["arm"]: float(r["misaligned_pct"]) for r in csv.DictReader(open(sys.argv[1])) if r["misaligned_pct"]}
def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i]); r = [0.0] * len(v); i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]: j += 1
        for k in range(i, j + 1): r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r
def pearson(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return cov / (sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b)) ** 0.5
for path in sys.argv[2:]:
    rows = list(csv.DictReader(open(path)))
    pairs = []
    for r in rows:
        arm = os.path.basename(r["dataset"]).removesuffix(".jsonl").replace("_", "-")
        if arm in arms: pairs.append((arm, float(r["difference"]), arms[arm]))
    print(path)
    for arm, d, m in sorted(pairs, key=lambda p: -p[1]): print(f"  {arm:18s} difference {d:9.4f}  misaligned {m:6.2f}%")
    print(f"  Spearman over {len(pairs)} datasets: {pearson(ranks([p[1] for p in pairs]), ranks([p[2] for p in pairs])):.3f}")
PY
cat "$out/screen-spearman.txt"
say "done: $out"
