"""Training: the shared loop (loop.py), the GAN loss apart from it (gan_loss.py), the trainers (stylegan2.py,
nets.py), and recipes (recipes.py; `python -m styleclip_utils.train RECIPE`)."""
