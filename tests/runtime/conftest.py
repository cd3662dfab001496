"""The export tests' fitted models, shared."""

from tests.export.conftest import image_check, image_model, text_model  # noqa: F401
