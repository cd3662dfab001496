"""DCGAN (Radford et al. 2015): a generator and a discriminator trained against each other; the discriminator's
convolutional trunk becomes the feature extractor, its blocks' feature maps max-pooled and concatenated (the paper
used the discriminator's multi-layer features, max-pooled, for CIFAR-10 classification).

The backbone is `headstart:dcgan-d?size=16&width=32&pool=2` by default (`--backbone headstart:dcgan-d?size=32...`
for other sizes). Generator: z (`z_dim`) -> transposed convolutions with BatchNorm and ReLU, doubling the side from
4x4, tanh output in the discriminator's [-1, 1] pixel range. Adam (lr 2e-4, beta1 0.5), binary cross-entropy,
one-sided label smoothing (`smooth`). A grid of samples from a fixed z is saved as a PNG every epoch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from headstart.backbones.scratch import DCGANTrunk
from headstart.pretrain.common import Pretrained, PretrainError, PretrainJob, grid_png, start_backbone

MODALITIES = ("image",)
OPTIONS: dict[str, object] = {"z_dim": 64, "smooth": 0.1, "beta1": 0.5, "samples": 64}
DEFAULTS: dict[str, object] = {"epochs": 30, "batch_size": 64, "lr": 2e-4}
DEFAULT_ARCHITECTURE = "headstart:dcgan-d?pool=2&size=16&width=32"


class Discriminator(nn.Module):
    """The trunk (the future backbone) plus a 4x4 convolution to one logit."""

    def __init__(self, trunk: DCGANTrunk) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = nn.Conv2d(trunk.out_channels, 1, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk.feature_maps(x)[-1]).flatten()


class Generator(nn.Module):
    def __init__(self, z_dim: int, size: int, width: int, channels: int) -> None:
        super().__init__()
        blocks, side, ch = 0, size, width
        while side > 4:
            side //= 2
            blocks += 1
        ch = width * 2 ** (blocks - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, ch, 4, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(blocks - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


def _dcgan_init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def train(job: PretrainJob) -> Pretrained:
    o, s, fabric = job.options, job.settings, job.fabric
    backbone, architecture = start_backbone(job, DEFAULT_ARCHITECTURE, "gan")
    trunk = backbone.module
    if not isinstance(trunk, DCGANTrunk):
        raise PretrainError(f"gan pretraining trains a headstart:dcgan-d backbone, not {job.backbone}")
    size = backbone.image_preprocessing.size
    width = trunk.blocks[0][0].out_channels
    torch.manual_seed(s.seed)
    disc, gen = Discriminator(trunk), Generator(int(o["z_dim"]), size, width, trunk.channels)
    if not job.backbone:
        disc.apply(_dcgan_init)
    gen.apply(_dcgan_init)
    betas = (float(o["beta1"]), 0.999)
    opt_d = torch.optim.Adam(disc.parameters(), lr=s.lr, betas=betas)
    opt_g = torch.optim.Adam(gen.parameters(), lr=s.lr, betas=betas)
    d_model, opt_d = fabric.setup(disc, opt_d)
    g_model, opt_g = fabric.setup(gen, opt_g)

    images = job.images(backbone)
    fixed = torch.randn(int(o["samples"]), int(o["z_dim"]), generator=torch.Generator().manual_seed(s.seed))
    fixed = fabric.to_device(fixed)
    real_target = 1.0 - float(o["smooth"])
    figures = []
    d_model.train()
    g_model.train()
    for epoch in job.loop({"discriminator": disc, "generator": gen}, {"adam_d": opt_d, "adam_g": opt_g}):
        for idx in epoch.track(epoch.batches(len(images))):
            real = images[idx]
            z = torch.randn(len(idx), int(o["z_dim"]), generator=epoch.generator, device=real.device)
            fake = g_model(z)
            d_real, d_fake = d_model(real).float(), d_model(fake.detach()).float()
            d_loss = F.binary_cross_entropy_with_logits(
                d_real, torch.full_like(d_real, real_target)
            ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            opt_d.zero_grad(set_to_none=True)
            fabric.backward(d_loss)
            opt_d.step()
            g_out = d_model(fake).float()
            g_loss = F.binary_cross_entropy_with_logits(g_out, torch.ones_like(g_out))
            opt_g.zero_grad(set_to_none=True)
            fabric.backward(g_loss)
            opt_g.step()
            epoch.log(d_loss.detach() + g_loss.detach(), len(idx), d_loss=d_loss, g_loss=g_loss)
        if job.rank == 0:
            figures = [_sample_grid(g_model, fixed, job, epoch.number)]
    disc.eval()
    gen.eval()
    notes = [f"DCGAN, z {o['z_dim']}-d; embeddings: {trunk.embed_dim}-d max-pooled discriminator features"]
    return Pretrained(backbone, architecture=architecture, history=job.history, notes=notes, figures=figures)


def _sample_grid(gen: nn.Module, z: torch.Tensor, job: PretrainJob, number: int) -> object:
    was_training = gen.training
    gen.eval()
    with torch.no_grad():
        samples = (gen(z).float() + 1) / 2
    gen.train(was_training)
    return grid_png(samples, job.out / f"samples-epoch-{number:03d}.png", f"generated samples, epoch {number}")
