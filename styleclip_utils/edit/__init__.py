"""Editing: StyleCLIP latent optimisation (optimize.py) and the scorecard every method is measured by
(scorecard.py)."""
