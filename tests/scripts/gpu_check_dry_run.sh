#!/usr/bin/env bash
# gpu_check_dry_run.sh — ctest `gpu_check_dry_run` (label `script`): scripts/gpu_check.sh's logic
# on a CPU machine, no GPU and no .gpu-deps needed.
#   1. --dry-run with the default budget: exit status 0; OUT holds exactly summary.txt and
#      gpu_check.tar.gz; the archive holds the same summary, steps.tsv, probe.tsv and a log per
#      step; the summary (at most 12,000 characters, the stdout tail a device call returns) names
#      every step as planned: probe, configure, build_tests, test:SUITE for every CUDA test suite
#      in tests/cuda (found here from the sources, independently of the script), memcheck,
#      racecheck, build_bench, check:LAB and timing:LAB for every bench/lab_*.cu, bench:gpu;
#      stdout ends with the summary.
#   2. --dry-run with a budget too small for the plan: every step still named, the later ones
#      skipped with "time budget spent", the last lab's timing among them.
#   3. --probe-only on a machine without nvidia-smi: exit status 1 with a message naming it.
# Usage: gpu_check_dry_run.sh WORK_DIR
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:?usage: gpu_check_dry_run.sh WORK_DIR}
rm -rf "$work"
mkdir -p "$work"
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

suites=$(grep -ohE '^TEST(_F|_P)?\( *[A-Za-z0-9_]+' "$repo"/tests/cuda/*.cpp |
  sed -E 's/.*\( *//' | sort -u)
[ -n "$suites" ] || fail "no CUDA test suites found in tests/cuda"
labs=$(find "$repo/bench" -maxdepth 1 -name 'lab_*.cu' -printf '%f\n' | sed 's/\.cu$//' | sort)
expected=(probe configure build_tests memcheck racecheck build_bench bench:gpu bench:tgpt_step bench:tgpt_step_bf16 bench:coop_step)
for s in $suites; do expected+=("test:$s"); done
for l in $labs; do expected+=("check:$l" "timing:$l"); done

# 1. The full plan.
out=$work/full
bash "$repo/scripts/gpu_check.sh" --dry-run "$out" > "$work/full.stdout" ||
  fail "dry run exited with status $? (stdout in $work/full.stdout)"
[ "$(find "$out" -mindepth 1 -printf '%f\n' | sort | tr '\n' ' ')" = "gpu_check.tar.gz summary.txt " ] ||
  fail "OUT should hold exactly gpu_check.tar.gz and summary.txt: $(find "$out" -mindepth 1)"
summary=$out/summary.txt
[ -s "$summary" ] || fail "empty summary"
[ "$(wc -c < "$summary")" -le 12000 ] || fail "summary longer than 12000 characters"
grep -q "DRY RUN" "$summary" || fail "the summary does not say it is a dry run"
mkdir -p "$work/unpacked"
tar -xzf "$out/gpu_check.tar.gz" -C "$work/unpacked" || fail "unreadable archive"
a=$work/unpacked/gpu_check
cmp -s "$a/summary.txt" "$summary" || fail "the archive's summary differs from OUT/summary.txt"
for f in steps.tsv probe.tsv env.txt; do [ -s "$a/$f" ] || fail "archive lacks $f"; done
for s in "${expected[@]}"; do
  grep -qE "^  $s +(planned|ok) " "$summary" || fail "summary does not plan step $s"
  [ "$s" = probe ] || [ -f "$a/${s//:/_}.log" ] || fail "archive has no log of step $s"
done
n_steps=$(awk '/^== /{on = ($0 == "== steps")} on' "$summary" | grep -cE "^  [a-z_]+(:[A-Za-z0-9_]+)? +(planned|ok|skipped) ")
[ "$n_steps" -eq ${#expected[@]} ] || fail "summary has $n_steps steps, expected ${#expected[@]}"
tail -c 12000 "$work/full.stdout" > "$work/full.stdout.tail"
grep -q "== steps" "$work/full.stdout.tail" || fail "stdout does not end with the summary"

# 2. A budget too small for the plan: later steps skipped, still named.
out=$work/tight
bash "$repo/scripts/gpu_check.sh" --dry-run --budget 200 --assume-step-s 30 "$out" > "$work/tight.stdout" ||
  fail "tight dry run exited with status $?"
for s in "${expected[@]}"; do
  grep -qE "^  $s +(planned|ok|skipped) " "$out/summary.txt" || fail "tight summary does not name step $s"
done
last_lab=$(echo "$labs" | tail -1)
grep -qE "^  timing:$last_lab +skipped .*time budget spent" "$out/summary.txt" ||
  fail "the last step was not skipped under a 200 s budget"

# 3. The probe stops with a clear message when the GPU is missing.
if ! command -v nvidia-smi > /dev/null; then
  rc=0
  bash "$repo/scripts/gpu_check.sh" --probe-only "$work/probe" > "$work/probe.stdout" || rc=$?
  [ $rc -eq 1 ] || fail "--probe-only without nvidia-smi exited with $rc, expected 1"
  grep -q "STOPPED at the probe" "$work/probe.stdout" || fail "no stop message"
  grep -q "nvidia-smi" "$work/probe/summary.txt" || fail "the stop message does not name nvidia-smi"
fi
echo "gpu_check dry run: OK (${#expected[@]} steps)"
