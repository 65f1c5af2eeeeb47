"""Losses an editing method may optimise: the CLIP loss and the identity loss. Never a judge (metrics/,
edit/scorecard.py) — a model used as both makes its score meaningless."""
