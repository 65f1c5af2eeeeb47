"""Measurements of the shipped models' quality (classifier accuracy, CLIP zero-shot, identity verification,
generated attribute frequencies)."""
