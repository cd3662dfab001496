"""SimCLR (Chen et al. 2020): two augmented views of each image, an MLP projection head, the NT-Xent loss;
the projection head is discarded after training and the encoder's pooled features become the backbone.

Works for any image backbone (`headstart:cnn` by default — a small CNN at 16 px, suited to small images such as
8x8 digits; `headstart:tiny-cnn`, `timm:resnet18?init=random`, `headstart:efficientnet-lite0` to continue a
pretrained one). Views are made on whole batches on the device: a random affine crop (area `scale_min`..1,
aspect 1/`aspect`..`aspect`, rotation up to `rotate` degrees, shift up to `shift` of the side), contrast/brightness
jitter and pixel noise — no flips by default (`flip=true` turns them on: a mirrored digit is another symbol).
Negatives are the other items of each process's batch. Learning rate: cosine decay after a linear warm-up epoch.

Audio (`headstart:logmel-cnn` by default, or any audio backbone): each view is the clip with fine-tuning's audio
augmentation at level `audio_level` (speed/pitch, gain, noise at a random SNR, time shift; each item seeded from the
epoch's generator) and, for log-mel backbones, SpecAugment masks while training.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from headstart.pretrain.common import Pretrained, PretrainError, PretrainJob, start_backbone

MODALITIES = ("image", "audio")
OPTIONS: dict[str, object] = {
    "temperature": 0.2,
    "proj_dim": 64,
    "scale_min": 0.5,
    "aspect": 4 / 3,
    "rotate": 15.0,
    "shift": 0.15,
    "jitter": 0.4,
    "noise": 0.05,
    "flip": False,
    "weight_decay": 1e-4,
    "audio_level": "strong",  # audio: the augmentation level of each view (light or strong)
}
DEFAULTS: dict[str, object] = {"epochs": 30, "batch_size": 256, "lr": 2e-3}
DEFAULT_ARCHITECTURE = "headstart:cnn?size=16&width=32"
DEFAULT_AUDIO_ARCHITECTURE = "headstart:logmel-cnn"


class SimCLRNet(nn.Module):
    def __init__(self, encoder: nn.Module, embed: object, dim: int, proj_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self._embed = embed  # the backbone's own `embed`, which runs `encoder`
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.ReLU(), nn.Linear(dim, proj_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self._embed(x))


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over 2N projections laid out as [view 1 of items 0..N-1, view 2 of items 0..N-1]."""
    z = F.normalize(z.float(), dim=1)
    n = z.shape[0] // 2
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, target)


def augment(x: torch.Tensor, background: torch.Tensor, g: torch.Generator, o: dict) -> torch.Tensor:
    """One random view per image (B, C, H, W), normalised; areas moved in from outside get `background`."""
    b, dev = x.shape[0], x.device

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=g, device=dev)

    area = u(float(o["scale_min"]), 1.0)
    log_ratio = u(-math.log(float(o["aspect"])), math.log(float(o["aspect"])))
    sx, sy = (
        torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.0),
        torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.0),
    )
    angle = u(-1.0, 1.0) * math.radians(float(o["rotate"]))
    shift = float(o["shift"]) * 2
    tx, ty = u(-shift, shift), u(-shift, shift)
    if o["flip"]:
        sx = sx * torch.where(torch.rand(b, generator=g, device=dev) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([sx * cos, -sy * sin, tx], 1), torch.stack([sx * sin, sy * cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    view = F.grid_sample(x - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    jitter = float(o["jitter"])
    contrast = u(1 - jitter, 1 + jitter).view(b, 1, 1, 1)
    brightness = u(-jitter / 2, jitter / 2).view(b, 1, 1, 1)
    view = view * contrast + background + brightness
    if o["noise"]:
        view = view + float(o["noise"]) * torch.randn(view.shape, generator=g, device=dev)
    return view


def train(job: PretrainJob) -> Pretrained:
    o = job.options
    if o["temperature"] <= 0 or not 0 < o["scale_min"] <= 1:
        raise PretrainError("contrastive: temperature must be positive and scale_min lie in (0, 1]")
    if job.data.modality == "audio":
        return _train_audio(job)
    backbone, architecture = start_backbone(job, DEFAULT_ARCHITECTURE, "contrastive")
    net = SimCLRNet(backbone.module, backbone.embed, backbone.embed_dim, int(o["proj_dim"]))
    optimizer = torch.optim.AdamW(net.parameters(), lr=job.settings.lr, weight_decay=float(o["weight_decay"]))
    model, optimizer = job.fabric.setup(net, optimizer)

    images = job.images(backbone)
    pre = backbone.image_preprocessing
    background = torch.tensor([-m / s for m, s in zip(pre.mean, pre.std)], device=images.device).view(1, -1, 1, 1)
    steps = max(1, len(images) // job.settings.batch_size)
    total = job.settings.epochs * steps
    model.train()
    for epoch in job.loop({"simclr": net}, {"adamw": optimizer}):
        batches = epoch.batches(len(images))
        for i, idx in enumerate(epoch.track(batches)):
            step = epoch.index * len(batches) + i
            for group in optimizer.param_groups:
                group["lr"] = job.settings.lr * _schedule(step, steps, total)
            x = images[idx]
            views = torch.cat([augment(x, background, epoch.generator, o), augment(x, background, epoch.generator, o)])
            loss = nt_xent(model(views), float(o["temperature"]))
            optimizer.zero_grad(set_to_none=True)
            job.fabric.backward(loss)
            optimizer.step()
            epoch.log(loss, len(idx))
    net.eval()
    return Pretrained(
        backbone,
        architecture=architecture,
        history=job.history,
        notes=[f"SimCLR, temperature {o['temperature']}; projection head ({o['proj_dim']}-d) discarded"],
    )


def _train_audio(job: PretrainJob) -> Pretrained:
    """SimCLR on clips: two independently augmented views of each clip, NT-Xent, projection head discarded."""
    from headstart.backbones.audio import AudioBackbone, spec_augment_config
    from headstart.backbones.registry import create_backbone
    from headstart.features.audio_augment import LEVELS, AudioAugment
    from headstart.pretrain.common import architecture_of, with_options

    o = job.options
    level = str(o["audio_level"])
    if level not in LEVELS:
        raise PretrainError(f"contrastive: audio_level must be one of {', '.join(LEVELS)}, not {level!r}")
    if job.backbone:
        backbone, architecture = create_backbone(job.backbone), architecture_of(job.backbone)
    else:
        spec = with_options(DEFAULT_AUDIO_ARCHITECTURE, init="random", seed=job.settings.seed)
        backbone, architecture = create_backbone(spec), DEFAULT_AUDIO_ARCHITECTURE
    if not isinstance(backbone, AudioBackbone):
        raise PretrainError(f"contrastive pretraining on audio needs an audio backbone; {backbone.spec} is not one")
    net = SimCLRNet(backbone.module, backbone.embed, backbone.embed_dim, int(o["proj_dim"]))
    optimizer = torch.optim.AdamW(net.parameters(), lr=job.settings.lr, weight_decay=float(o["weight_decay"]))
    model, optimizer = job.fabric.setup(net, optimizer)
    masks = backbone.spec_augment
    if masks is not None:
        masks.configure(*spec_augment_config(level))
    view = AudioAugment(backbone, level)
    clips = job.data.items
    steps = max(1, len(clips) // job.settings.batch_size)
    total = job.settings.epochs * steps
    model.train()
    try:
        for epoch in job.loop({"simclr": net}, {"adamw": optimizer}):
            batches = epoch.batches(len(clips))
            for i, idx in enumerate(epoch.track(batches)):
                step = epoch.index * len(batches) + i
                for group in optimizer.param_groups:
                    group["lr"] = job.settings.lr * _schedule(step, steps, total)
                rows = idx.tolist()
                seeds = torch.randint(2**31 - 1, (2 * len(rows),), generator=epoch.generator, device=idx.device)
                seeds = seeds.tolist()
                waves = [view(clips[j], seeds[k]) for k, j in enumerate(rows)]
                waves += [view(clips[j], seeds[len(rows) + k]) for k, j in enumerate(rows)]
                batch = job.fabric.to_device(backbone.collate(waves))
                loss = nt_xent(model(batch), float(o["temperature"]))
                optimizer.zero_grad(set_to_none=True)
                job.fabric.backward(loss)
                optimizer.step()
                epoch.log(loss, len(rows))
    finally:
        if masks is not None:
            masks.configure(*spec_augment_config("none"))
    net.eval()
    return Pretrained(
        backbone,
        architecture=architecture,
        history=job.history,
        notes=[f"SimCLR on audio ({level} augmentation per view), temperature {o['temperature']}"],
    )


def _schedule(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over the first epoch, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
