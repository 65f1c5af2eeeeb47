"""Network definitions only (no file loading): StyleGAN2 (rosinality layout), the small SynthFaces nets,
ArcFace IR-SE50."""
