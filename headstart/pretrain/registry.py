"""The pretraining methods: name -> module (one file per objective). Light, so the CLI can list them without torch.

Each module exposes `train(job) -> Pretrained` (see `headstart.pretrain.common` for the contract) and optionally
`MODALITIES`, `OPTIONS` and `DEFAULTS`.
"""

from __future__ import annotations

METHODS: dict[str, str] = {
    "autoencoder": "headstart.pretrain.autoencoder",
    "gan": "headstart.pretrain.gan",
    "contrastive": "headstart.pretrain.contrastive",
    "masked": "headstart.pretrain.masked",
}
