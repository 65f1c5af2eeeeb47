"""Weight files: the registry of the real pipeline's files and its cache, checkpoint formats and their
loaders (official.py), and the shipped SynthFaces models (zoo.py)."""
