#!/usr/bin/env bash
# The third device run (prepared in a session without a GPU; run it where one is lent):
#   bash benchmarks/gpu_kit.sh                       # here, once: builds .gpu/
#   run(command="BUDGET=420 bash benchmarks/gpu_run3.sh", carry=[".gpu"], timeout_s=480)
# 1. the layout A/B behind `preferred_memory_format` (Lite0 train and inference steps, fp32 and bf16, 224 px x 64);
# 2. the 224 px fine-tuning comparison with fastai that missed its goal before persistent workers, sync-free steps,
#    the plain layout in float32 and cuDNN autotuning (2.05 vs 1.12 s per epoch);
# 3. the default 64 px comparison.
set -uo pipefail
export PYTHONUNBUFFERED=1
T0=$(date +%s)
mkdir -p /tmp/site && python3 benchmarks/gpu_setup.py /tmp/site || exit 3
export PYTHONPATH=$PWD:/tmp/site HF_HUB_OFFLINE=1 HEADSTART_OFFLINE=1 HEADSTART_CACHE=/tmp/hs-cache TOKENIZERS_PARALLELISM=false
left() { echo $(( ${BUDGET:-420} - ($(date +%s) - T0) )); }
step() { echo "=== $1 (t=$(( $(date +%s) - T0 ))s)"; }
step "layout: plain vs channels_last, Lite0 224 px x 64"
timeout 90 python3 benchmarks/layout.py --device cuda --size 224 --batch-size 64 --precisions fp32,bf16 --reps 10 2>&1 | grep -v Warning
cp benchmarks/results/layout_cuda.json $OUT/ 2>/dev/null
step "finetune 224 px, 100/class, batch 64: headstart gradual vs fastai"
timeout $(( $(left) - 120 )) python3 benchmarks/finetune.py --modality image --labels-per-class 100 --size 224 --batch-size 64 --epochs 5 --workers 6 --only gradual --fastai-lrs 0.002 --out $OUT/finetune_gpu_224_v3.json > /tmp/g.log 2>&1; grep -E '^\{|Error' /tmp/g.log
step "finetune 64 px, 10/class, batch 16 (the benchmark's defaults): all strategies vs fastai"
timeout $(( $(left) - 5 )) python3 benchmarks/finetune.py --modality image --epochs 5 --workers 4 --out $OUT/finetune_gpu_v3.json > /tmp/f.log 2>&1; grep -E '^\{|Error' /tmp/f.log
step done
