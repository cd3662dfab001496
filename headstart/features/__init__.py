"""Feature extraction with a frozen backbone, and the on-disk cache that makes the second run free."""

from headstart.features.cache import FeatureCache
from headstart.features.extract import extract_features, iter_batches

__all__ = ["FeatureCache", "extract_features", "iter_batches"]
