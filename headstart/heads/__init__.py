"""Task heads on frozen features, with the scikit-learn estimator contract."""

from headstart.heads.base import TorchHead
from headstart.heads.linear import LinearHead
from headstart.heads.mlp import MLPHead

HEADS: dict[str, type[TorchHead]] = {"linear": LinearHead, "mlp": MLPHead}


def make_head(kind: str, **params: object) -> TorchHead:
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; choose one of: {', '.join(HEADS)}")
    return HEADS[kind](**params)


__all__ = ["HEADS", "LinearHead", "MLPHead", "TorchHead", "make_head"]
