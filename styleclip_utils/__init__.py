"""styleclip_utils: the package behind the StyleCLIP notebooks. One folder per role (see docs/layout.md):

    data/      SynthFaces (schema, renderer, captions, writer), the CelebA-HQ layout, photo alignment
    models/    network definitions: StyleGAN2, the small SynthFaces nets, ArcFace IR-SE50
    weights/   registry of the real files, checkpoint formats and loaders, the shipped SynthFaces zoo
    losses/    what an editing method may optimise: CLIP loss, identity loss
    metrics/   quality of the shipped models
    train/     the loop, the GAN loss, trainers, recipes (`python -m styleclip_utils.train RECIPE`)
    edit/      latent optimisation and the edit scorecard
    checks.py  notebook parameter validation; runs.py: run notebooks with papermill; viz.py: figures
"""
import warnings

# clip-anytorch imports pkg_resources (hence setuptools<81), whose deprecation warning is not ours to fix and
# would land in every notebook's committed stderr.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

from .data.align import align_face  # noqa: E402,F401  (the documented entry point: styleclip_utils.align_face)

__version__ = "0.1.0"
