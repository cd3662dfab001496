"""Metrics, reports and plots."""

from headstart.evaluate.metrics import classification_metrics
from headstart.evaluate.report import to_markdown, write_report

__all__ = ["classification_metrics", "to_markdown", "write_report"]
