"""Errors a user can cause. The CLI prints their message on one line and exits non-zero, without a traceback."""

from __future__ import annotations


class HeadstartError(Exception):
    """Base class for user-facing errors: the message says what is wrong and where."""


class DataError(HeadstartError):
    """Bad input data: a file, row or field that cannot be used."""


class BackboneError(HeadstartError):
    """A backbone spec that cannot be resolved, or weights that cannot be loaded."""


class BundleError(HeadstartError):
    """A saved model folder that is missing, incomplete or corrupt."""
