#!/usr/bin/env bash
set -uo pipefail
export PYTHONUNBUFFERED=1
T0=$(date +%s)
mkdir -p /tmp/site && python3 benchmarks/gpu_setup.py /tmp/site || exit 3
export PYTHONPATH=$PWD:/tmp/site HF_HUB_OFFLINE=1 HEADSTART_OFFLINE=1 HEADSTART_CACHE=/tmp/hs-cache TOKENIZERS_PARALLELISM=false
left() { echo $(( ${BUDGET:-200} - ($(date +%s) - T0) )); }
step() { echo "=== $1 (t=$(( $(date +%s) - T0 ))s)"; }
step "finetune 224 px, 100/class, batch 64: headstart gradual vs fastai (uint8 batches, normalised on the GPU)"
timeout $(( $(left) - 100 )) python3 benchmarks/finetune.py --modality image --labels-per-class 100 --size 224 --batch-size 64 --epochs 5 --workers 6 --only gradual --fastai-lrs 0.002 --out $OUT/finetune_gpu_224_v2.json > /tmp/g.log 2>&1; grep -E '^\{|Error' /tmp/g.log
python3 -c "import json;d=json.load(open('$OUT/finetune_gpu_224_v2.json'));print([r.get('epoch_s') for r in d['rows']])" 2>/dev/null
step "extraction throughput vs raw forward (text tokenised in workers on a GPU)"
timeout $(( $(left) - 3 )) python3 benchmarks/extract.py --text-n 1024 --image-n 1024 --reps 3 --out $OUT/extract_gpu_v2.json > /tmp/e.log 2>&1; grep -E "^[0-9]\.|^   |Error" /tmp/e.log | head -20
step done
