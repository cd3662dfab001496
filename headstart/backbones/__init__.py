"""Backbones: one registry, one factory, a source prefix on every name."""

from headstart.backbones.base import Backbone, BackboneSpec, ImageBackbone, TextBackbone
from headstart.backbones.registry import SOURCES, create_backbone, list_backbones

__all__ = [
    "SOURCES",
    "Backbone",
    "BackboneSpec",
    "ImageBackbone",
    "TextBackbone",
    "create_backbone",
    "list_backbones",
]
