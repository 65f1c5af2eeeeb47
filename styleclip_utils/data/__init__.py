"""Data: the SynthFaces world (attribute schema, renderer, captions, dataset writer), the CelebA-HQ on-disk
layout both share (reader, validation, resizing), and real photos (loading, FFHQ alignment)."""
