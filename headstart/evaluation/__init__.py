"""Metrics, reports and plots."""

from headstart.evaluation.metrics import classification_metrics
from headstart.evaluation.report import to_markdown, write_report

__all__ = ["classification_metrics", "to_markdown", "write_report"]
