#!/usr/bin/env bash
# main_job.sh — tgpt's built-in default, with nothing downloaded: a captioned synthetic world, a
# small CLIP pretrained on it with the contrastive loss, then zero-shot, CoOp, TGP-T and CLIP's
# linear probe at 16 shots on its four downstream datasets, a table, an SVG plot and a JSON
# summary.
#
#   bash scripts/main_job.sh [--bin DIR] [--out DIR] [--size default|toy] [--seed S]
#
# --bin    the folder holding the tgpt tools (default build/)
# --out    the output folder (default output/default); what it holds afterwards:
#            world/          the generated world (tgpt-data synth; reused when it is the same)
#            vocab/merges.txt BPE merges learned from the pretraining captions
#            clip/           the pretrained CLIP (clip.safetensors, log.txt); reused when the
#                            world and the pretraining settings are the same (clip/settings.txt)
#            runs/<method>/<dataset>/<K>shots/seed<S>/  each run's log.txt and metrics.json
#            summary.md, summary.svg, summary.json     the comparison
# --size   default: the documented main job (minutes on a 2-core CPU); toy: a seconds-long run
#          of the same pipeline at toy sizes (the test suite's smoke test; numbers mean nothing)
# --seed   the few-shot draw and training seed (default 1)
#
# Ctrl-C stops the running stage with its state saved; running the command again continues
# (the pretraining resumes from its checkpoint, finished stages are not redone).
set -euo pipefail

bin=build
out=output/default
size=default
seed=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "main_job.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [[ "$size" != default && "$size" != toy ]]; then
  echo "main_job.sh: --size must be default or toy, got '$size'" >&2
  exit 2
fi
for tool in tgpt-data tgpt-tokenize tgpt-train tgpt-eval; do
  if [[ ! -x "$bin/$tool" ]]; then
    echo "main_job.sh: $bin/$tool not found; build first (cmake --build build)" >&2
    exit 1
  fi
done

shots=16
datasets=(SynthShapes:synth_shapes SynthColors:synth_colors SynthScenes:synth_scenes
          SynthSpecies:synth_species)
case "$size" in
  default)
    world_opts=(--pretrain 20000 --size 64 --train-per-class 24 --val-per-class 8
                --test-per-class 50)
    merges=2000
    pretrain_opts=(--width 64 --layers 2 --heads 2 --image-size 64 --patch 8 --batch-size 128
                   --max-iter 2000 --warmup-iter 50 --lr 1e-3 --weight-decay 0.1)
    fewshot_iters=400
    ;;
  toy)
    world_opts=(--pretrain 96 --size 32 --train-per-class 16 --val-per-class 2
                --test-per-class 4)
    merges=200
    pretrain_opts=(--width 16 --layers 1 --heads 2 --image-size 32 --patch 8 --batch-size 16
                   --max-iter 6 --warmup-iter 2 --lr 2e-3 --weight-decay 0.1)
    fewshot_iters=4
    ;;
esac
# The few-shot runs of the main job (both methods, every dataset): short schedules (TGP-T's
# learning rate raised to match), and no flip or crop augmentation, which would change these
# classes (a flip swaps left and right, a crop drops objects); everything else is the method's
# official setting (TGP-T: AdamW, batch 8, best val model; CoOp: SGD lr 0.002, batch 32, last).
no_augment=(INPUT.TRANSFORMS "('normalize',)")
tgpt_opts=(OPTIM.MAX_ITER "$fewshot_iters" OPTIM.LR 5e-4 OPTIM.WARMUP_ITER 20
           TRAIN.TEST_FREQ "$((fewshot_iters / 4 > 0 ? fewshot_iters / 4 : 1))" "${no_augment[@]}")
coop_opts=(OPTIM.MAX_ITER "$fewshot_iters" "${no_augment[@]}")

start=$(date +%s.%N)
stage() { printf '\n== %s\n' "$*"; }
mkdir -p "$out"

stage "1/5 the synthetic world ($out/world)"
"$bin/tgpt-data" synth --out "$out/world" --seed 1 "${world_opts[@]}"

stage "2/5 BPE vocabulary from the pretraining captions ($out/vocab)"
mkdir -p "$out/vocab"
"$bin/tgpt-tokenize" learn --captions "$out/world/pretrain/captions.txt" --merges "$merges" \
  -o "$out/vocab/merges.txt"

stage "3/5 CLIP pretraining, contrastive loss ($out/clip)"
settings="world: $(cksum < "$out/world/world.json" | cut -d' ' -f1)
vocab: $(cksum < "$out/vocab/merges.txt" | cut -d' ' -f1)
pretrain: ${pretrain_opts[*]}"
if [[ -f "$out/clip/clip.safetensors" && -f "$out/clip/settings.txt" &&
      "$(cat "$out/clip/settings.txt")" == "$settings" ]]; then
  echo "reusing $out/clip/clip.safetensors (same world and settings)"
else
  resume=()
  if [[ -f "$out/clip/checkpoint-last.safetensors" && -f "$out/clip/settings.txt" &&
        "$(cat "$out/clip/settings.txt")" == "$settings" ]]; then
    resume=(--resume)
    echo "continuing from $out/clip/checkpoint-last.safetensors"
  else
    rm -rf "$out/clip"
    mkdir -p "$out/clip"
    printf '%s\n' "$settings" > "$out/clip/settings.txt"
  fi
  "$bin/tgpt-train" --method clip --images "$out/world/pretrain/images" \
    --captions "$out/world/pretrain/captions.txt" --vocab "$out/vocab/merges.txt" \
    --output "$out/clip" --seed 1 "${pretrain_opts[@]}" "${resume[@]}"
fi
weights="$out/clip/clip.safetensors"

# Results of earlier runs are stale once the CLIP changed: the runs are redone every time.
rm -rf "$out/runs"
k=0
for entry in "${datasets[@]}"; do
  name=${entry%%:*}
  k=$((k + 1))
  stage "4/5 $name ($k/${#datasets[@]}): zero-shot, CoOp, TGP-T and the linear probe at $shots shots"
  dir="$out/world/${entry##*:}"
  "$bin/tgpt-eval" zeroshot --weights "$weights" --split "$dir/split_zhou_$name.json" \
    --image-root "$dir/images" --templates "$out/world/templates.json" --dataset "$name" \
    --output "$out/runs/zeroshot/$name/0shots/seed1"
  "$bin/tgpt-train" --method coop --dataset "$name" --root "$out/world" --shots "$shots" \
    --seed "$seed" --weights "$weights" --output "$out/runs/coop" "${coop_opts[@]}"
  "$bin/tgpt-train" --method tgpt --dataset "$name" --root "$out/world" --shots "$shots" \
    --seed "$seed" --weights "$weights" --templates "$out/world/templates.json" \
    --output "$out/runs/tgpt" "${tgpt_opts[@]}"
  # The linear probe on the frozen image features: how much the features hold (prompt tuning
  # changes only the text side).
  "$bin/tgpt-train" --method probe --dataset "$name" --root "$out/world" --shots "$shots" \
    --seed "$seed" --weights "$weights" --output "$out/runs/probe"
done

stage "5/5 summary"
seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
"$bin/tgpt-eval" compare "$out/runs" --shots "$shots" --markdown "$out/summary.md" \
  --svg "$out/summary.svg" --json "$out/summary.json" --field "main_job_seconds=$seconds"
echo
echo "main job: ${seconds} s"
echo "table:    $out/summary.md"
echo "plot:     $out/summary.svg"
echo "summary:  $out/summary.json"
echo "logs:     $out/clip/log.txt, $out/runs/<method>/<dataset>/${shots}shots/seed$seed/log.txt"
