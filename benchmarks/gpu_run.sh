#!/usr/bin/env bash
# One prepared device run: setup (carried packages/weights), then the GPU figures. Everything lands in $OUT.
set -uo pipefail
export PYTHONUNBUFFERED=1
T0=$(date +%s)
mkdir -p /tmp/site && python3 benchmarks/gpu_setup.py /tmp/site || exit 3
export PYTHONPATH=$PWD:/tmp/site HF_HUB_OFFLINE=1 HEADSTART_OFFLINE=1 HEADSTART_CACHE=/tmp/hs-cache TOKENIZERS_PARALLELISM=false
nvidia-smi -L; python3 -c "import torch,timm,transformers,sentence_transformers,lightning;print('torch',torch.__version__,'timm',timm.__version__,'transformers',transformers.__version__,'st',sentence_transformers.__version__,'lightning',lightning.__version__, torch.cuda.get_device_name(0))"
left() { echo $(( ${BUDGET:-540} - ($(date +%s) - T0) )); }
step() { echo "=== $1 (t=$(( $(date +%s) - T0 ))s)"; }
show() { grep -E '^\{|Error|error:' "$1" | tail -40; }
step "BBC masked-LM domain-adaptive pretraining, 3 epochs over every window, budgets 4/16, seeds 0-1"
timeout $(( $(left) - 250 )) python3 benchmarks/masked_text.py --epochs 3 --max-windows 0 --budgets 4,16 --seeds 0,1 --out $OUT/masked_text_gpu.json > /tmp/m.log 2>&1; show /tmp/m.log
step "finetune benchmark, image+text, 10/class, 5 epochs (same settings as the CPU run)"
timeout $(( $(left) - 150 )) python3 benchmarks/finetune.py --modality both --epochs 5 --workers 4 --out $OUT/finetune_gpu.json > /tmp/f.log 2>&1; show /tmp/f.log
step "extraction throughput vs raw forward on the GPU"
timeout $(( $(left) - 70 )) python3 benchmarks/extract.py --text-n 1024 --image-n 1024 --reps 3 --out $OUT/extract_gpu.json > /tmp/e.log 2>&1; grep -E "^[0-9]\.|^   |Error" /tmp/e.log | head -20
step "finetune benchmark, image 100/class at 224 px, batch 64 (heavier epochs)"
timeout $(( $(left) - 5 )) python3 benchmarks/finetune.py --modality image --labels-per-class 100 --size 224 --batch-size 64 --epochs 5 --workers 6 --only gradual --fastai-lrs 0.002 --out $OUT/finetune_gpu_224.json > /tmp/g.log 2>&1; show /tmp/g.log
step "done"
