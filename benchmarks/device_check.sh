#!/usr/bin/env bash
# The learner on a GPU machine, in one sitting of under ten minutes:
#   1. CUDA correctness: one CQN update on CUDA against the CPU (both critic layouts), bf16
#      under autocast, the encoder's CPU kernels against the ATen ops that replace them on
#      a GPU (tests/learn/cqn/test_cuda.py; every test there skips without CUDA);
#   2. the from-scratch pixel update's speed on CUDA, small and RLBench shapes, fp32 and
#      bf16, plus the pretrained-feature shape (bench_cqn_update, results appended);
#   3. one pixel learning curve: reach from the cameras with the classifier reward
#      (bench_learning_pixels), for what time is left.
# Run from the repository root on the device, with the project's venv set up there:
#   bash benchmarks/device_check.sh [OUT_DIR]
# Results lines land in benchmarks/results.jsonl and, with OUT_DIR, are copied there.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-}}
py=${PYTHON:-.venv/bin/python}
start=$(date +%s)
budget_s=${DEVICE_BUDGET_S:-540}
left() { echo $(( budget_s - ($(date +%s) - start) )); }
export MUJOCO_GL=${MUJOCO_GL:-egl}

"$py" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.cuda.get_device_name(0), torch.__version__)" || exit 2
lines_before=$(wc -l < benchmarks/results.jsonl)

echo "== CUDA correctness"
timeout "$(left)" "$py" -m pytest -q -p no:cacheprovider tests/learn/cqn/test_cuda.py
correct=$?

echo "== update speed on CUDA"
for precision in fp32 bf16; do
  timeout "$(left)" "$py" -m benchmarks.bench_cqn_update --device cuda --precision "$precision" \
    --shapes small rlbench
done
timeout "$(left)" "$py" -m benchmarks.bench_cqn_update --device cuda --shapes pretrained \
  2>/dev/null || echo "(no pretrained shape in bench_cqn_update)"

echo "== pixel learning curve, $(left) s left"
if [ "$(left)" -gt 120 ] && [ -f benchmarks/bench_learning_pixels.py ]; then
  timeout "$(left)" "$py" -m benchmarks.bench_learning_pixels --task reach --encoder scratch \
    --seeds 0 --device cuda --max-wall-s $(( $(left) - 30 )) \
    --checkpoint-dir "${out:-/tmp}/learning_pixels"
fi

if [ -n "$out" ]; then
  mkdir -p "$out"
  tail -n +"$((lines_before + 1))" benchmarks/results.jsonl > "$out/results.jsonl"
fi
exit $correct
