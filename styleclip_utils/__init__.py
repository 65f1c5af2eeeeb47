"""styleclip_utils: the shared package behind the StyleCLIP notebooks.

One module per job (see README): stylegan2, checkpoints, registry, synthfaces, datasets, align, training,
train_stylegan2, train_nets, nets, viz, runs, paths.
"""
from .align import align_face  # noqa: F401  (the documented entry point: styleclip_utils.align_face)

__version__ = "0.1.0"
