"""Autoencoders: the encoder becomes the backbone.

- `variant=dense` (default): the classic one of the Keras autoencoder example — input -> Dense(32, relu) ->
  Dense(input, sigmoid), binary cross-entropy on pixels in [0, 1], Adam, batch 256, 50 epochs
  (`headstart:dense-encoder?input=SIDE&code=32`, SIDE the images' own side when they share one, else 28).
- `variant=conv`: two stride-2 convolutions to the code, two transposed convolutions back
  (`headstart:conv-encoder?input=16&code=32`).
- `variant=denoising`: the dense one, fed inputs with a fraction `noise` (default 0.3) of pixels zeroed
  (masking noise, Vincent et al. 2008), reconstructing the clean ones. `noise` > 0 corrupts any variant.

With `--backbone SPEC`, that backbone is the encoder (its weights continued, or `?init=random`) and a dense sigmoid
decoder maps its embedding back to the input pixels.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from headstart.backbones.scratch import ConvEncoder, DenseEncoder
from headstart.pretrain.common import Pretrained, PretrainError, PretrainJob, image_side, start_backbone, unit_range

MODALITIES = ("image",)
OPTIONS: dict[str, object] = {"variant": "dense", "code": 32, "noise": -1.0, "hidden": 0}
DEFAULTS: dict[str, object] = {"epochs": 50, "batch_size": 256, "lr": 1e-3}
VARIANTS = ("dense", "conv", "denoising")


class Autoencoder(nn.Module):
    def __init__(self, encoder: nn.Module, embed: object, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self._embed = embed  # the backbone's own `embed`, which runs `encoder`

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self._embed(x))  # logits: the sigmoid lives in the loss (autocast-safe)


class DenseDecoder(nn.Module):
    def __init__(self, code: int, channels: int, side: int) -> None:
        super().__init__()
        self.shape = (channels, side, side)
        self.fc = nn.Linear(code, channels * side * side)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(z).view(-1, *self.shape)


class ConvDecoder(nn.Module):
    """The mirror of `ConvEncoder`: Dense -> two stride-2 transposed convolutions, resized to the input side."""

    def __init__(self, encoder: ConvEncoder, code: int) -> None:
        super().__init__()
        w, self.grid, self.side, self.width = encoder.width, encoder.grid, encoder.side, encoder.width
        self.fc = nn.Sequential(nn.Linear(code, 2 * w * self.grid * self.grid), nn.ReLU())
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(w, encoder.channels, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.deconvs(self.fc(z).view(-1, 2 * self.width, self.grid, self.grid))
        if x.shape[-1] != self.side:
            x = F.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False)
        return x


def default_architecture(job: PretrainJob) -> str:
    o = job.options
    if o["variant"] == "conv":
        return f"headstart:conv-encoder?code={o['code']}&input=16"
    side = image_side(job.data) or 28
    hidden = f"&hidden={o['hidden']}" if o["hidden"] else ""
    return f"headstart:dense-encoder?code={o['code']}{hidden}&input={side}"


def train(job: PretrainJob) -> Pretrained:
    o = job.options
    if o["variant"] not in VARIANTS:
        raise PretrainError(f"autoencoder variant must be one of {', '.join(VARIANTS)}, not {o['variant']!r}")
    noise = float(o["noise"]) if o["noise"] >= 0 else (0.3 if o["variant"] == "denoising" else 0.0)
    if not 0.0 <= noise < 1.0:
        raise PretrainError(f"autoencoder noise must lie in [0, 1), not {noise}")
    backbone, architecture = start_backbone(job, default_architecture(job), "autoencoder")
    encoder = backbone.module
    side = backbone.image_preprocessing.size
    channels = getattr(encoder, "channels", 3)
    if isinstance(encoder, ConvEncoder):
        decoder: nn.Module = ConvDecoder(encoder, backbone.embed_dim)
    else:
        decoder = DenseDecoder(backbone.embed_dim, channels, side)
    net = Autoencoder(encoder, backbone.embed, decoder)
    optimizer = torch.optim.Adam(net.parameters(), lr=job.settings.lr)
    model, optimizer = job.fabric.setup(net, optimizer)

    images = job.images(backbone)
    targets = unit_range(backbone, images)
    if channels == 1:
        targets = targets.mean(dim=1, keepdim=True)
    model.train()
    for epoch in job.loop({"autoencoder": net}, {"adam": optimizer}):
        for idx in epoch.track(epoch.batches(len(images))):
            x, target = images[idx], targets[idx]
            if noise:
                keep = torch.rand(x.shape[0], 1, *x.shape[2:], generator=epoch.generator, device=x.device) >= noise
                x = torch.where(keep, x, _zero_pixel(backbone, x))
            loss = F.binary_cross_entropy_with_logits(model(x).float(), target)
            optimizer.zero_grad(set_to_none=True)
            job.fabric.backward(loss)
            optimizer.step()
            epoch.log(loss, len(idx))
    net.eval()
    notes = [f"variant {o['variant']}" + (f", masking noise {noise}" if noise else "")]
    if not isinstance(encoder, (DenseEncoder, ConvEncoder)):
        notes.append(f"encoder {architecture} with a dense sigmoid decoder")
    return Pretrained(backbone, architecture=architecture, history=job.history, notes=notes)


def _zero_pixel(backbone: object, x: torch.Tensor) -> torch.Tensor:
    """The normalised value of a black pixel, per channel (masking noise sets pixels to it)."""
    pre = backbone.image_preprocessing  # type: ignore[attr-defined]
    mean = torch.tensor(pre.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (-mean / std).expand_as(x)
