"""Choosing a backbone before training: transferability scores (see `headstart.select.scores`)."""
