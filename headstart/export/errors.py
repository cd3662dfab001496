"""The export's own user-facing error."""

from __future__ import annotations

from headstart.errors import HeadstartError


class ExportError(HeadstartError):
    """A model that cannot be exported, or whose export fails its parity or accuracy gate (nothing is written)."""
