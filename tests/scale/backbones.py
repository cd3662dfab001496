"""Test-only backbones for the Ray tests: imported by Ray's workers too (the driver's folder is on their path)."""

from __future__ import annotations

import os
from typing import Any

from headstart.backbones import create_backbone


class DiesOnce:
    """A real backbone whose first forward pass, in whichever process runs it first, kills that process (`os._exit`,
    as an out-of-memory kill or a lost node would); a marker file makes the restarted worker live."""

    def __init__(self, spec: str, marker: str) -> None:
        self.inner = create_backbone(spec)
        self.marker = marker

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # while unpickling, before `inner` is set
            raise AttributeError(name)
        return getattr(self.inner, name)

    def embed(self, batch: Any) -> Any:
        if not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            os._exit(1)
        return self.inner.embed(batch)
