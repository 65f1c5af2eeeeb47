"""CLIP loss for any `clip.model.CLIP` (ViT-B/32 from the registry, or the small SynthFaces CLIP):
1 − cosine between the image and each prompt, per image and prompt.

The generator's [-1, 1] output is resized to CLIP's input and normalised with CLIP's mean/std. The
official StyleCLIP code instead upsamples ×7 (nearest), average-pools down to 224 and feeds the [-1, 1]
image with no normalisation (a known, unfixed bug, REFERENCE.md); `official_preprocess=True` reproduces it
for comparison with published numbers.

`views=K` scores K randomly cropped, shifted and mirrored copies of each image and averages their losses.
A small CLIP is easy to fool pixel by pixel: the optimiser finds changes that lower the loss of one exact
framing without drawing the attribute (a few tinted pixels where hair should turn red). An edit that must
convince CLIP from every framing has to be a real one (the "cutouts" of CLIP-guided image synthesis).
The views are drawn from the loss's own seeded generator, so an edit is deterministic.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .. import dist
from ..data.prompts import check_prompts
from ..models.nets import Judge

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def refuse_judge(model, what):
    """Losses never optimise against a judge: an edit made to please its scorer proves nothing."""
    if isinstance(model, Judge):
        raise TypeError(f"{what} got {type(model).__name__}, a judge of edits; a judge is never a loss (use the "
                        f"small CLIP / the identity net, which the scorecard does not read)")


def to_clip_input(img, resolution):
    """[-1, 1] images -> CLIP's input: resized to `resolution`, normalised with CLIP's mean/std."""
    if img.shape[-1] != resolution:
        # in fp32: the antialiased bicubic kernel has no bf16 version (inputs can be bf16 under autocast)
        img = F.interpolate(img.float(), size=(resolution, resolution), mode="bicubic", align_corners=False,
                            antialias=True).to(img.dtype)
    mean = torch.tensor(CLIP_MEAN, device=img.device, dtype=img.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=img.device, dtype=img.dtype).view(1, 3, 1, 1)
    return ((img + 1) / 2 - mean) / std


def official_clip_input(img, resolution):
    """StyleCLIP's preprocessing: nearest ×7 then average pooling to `resolution`, no normalisation."""
    size = img.shape[-1]
    if (7 * size) % resolution:
        raise ValueError(f"official preprocessing needs 7·{size} divisible by {resolution}")
    return F.avg_pool2d(F.interpolate(img, scale_factor=7, mode="nearest"), kernel_size=7 * size // resolution)


def random_views(img, views, generator, max_crop=0.15):
    """`views` random copies of each image [B, 3, H, W] -> [views·B, 3, H, W] (view-major): crop to
    (1 − U(0, max_crop)) of the side at a random position, resize back, mirror half of them. Differentiable
    in img (bilinear grid_sample); the random draws come from the CPU `generator` (same on any device)."""
    # Drawn for the global batch and sliced under torchrun (styleclip_utils.dist): rank r's images get the views
    # one process would give them. Alone, the draws are rand(views·B).
    n, world = views * img.shape[0], dist.world_size()

    def draw(*shape):
        u = torch.rand(n * world, *shape, generator=generator)
        return dist.shard(u.view(views, -1, *shape), dim=1).reshape(n, *shape)

    scale = 1 - max_crop * draw()
    shift = (2 * draw(2) - 1) * (1 - scale)[:, None]  # the crop stays inside
    mirror = torch.where(draw() < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, :, 2] = scale * mirror, scale, shift
    x = img.repeat(views, 1, 1, 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


@torch.no_grad()
def text_features(model, prompts):
    """The normalised CLIP text embeddings [P, D] of prompts, each as typed (no template): what CLIPLoss
    compares images with, and what a ConditionedMapper is conditioned on."""
    import clip

    tokens = clip.tokenize(list(prompts), context_length=model.context_length, truncate=True)
    return F.normalize(model.encode_text(tokens.to(next(model.parameters()).device)).float(), dim=1)


class CLIPLoss(nn.Module):
    """loss(img, prompt_index=None) -> [B, P] (every image against every prompt), or [B] when
    prompt_index [B] says which prompt each image is edited towards. views > 0: the mean loss over that
    many random crops/mirrors of each image (module docstring); 0 scores the image as it is (official)."""

    def __init__(self, model, prompts, official_preprocess=False, views=0, seed=0):
        super().__init__()
        import clip

        if int(views) != views or views < 0:
            raise ValueError(f"views must be an integer >= 0 (0: no augmentation), got {views!r}")
        refuse_judge(model, "CLIPLoss")
        prompts = check_prompts(prompts)
        for p in prompts:  # CLIP would cut a longer text silently
            n = int(clip.tokenize([p], context_length=1024, truncate=True)[0].argmax()) + 1  # the end token is the last
            if n > model.context_length:
                raise ValueError(f"prompt {p!r} is {n} tokens; this CLIP reads at most {model.context_length} "
                                 f"(ViT-B/32: 77): shorten it")
        self.model = model.eval().requires_grad_(False)
        self.prompts = list(prompts)
        self.official = official_preprocess
        self.views = int(views)
        self.generator = torch.Generator().manual_seed(seed)
        self.resolution = model.visual.input_resolution
        self.register_buffer("text", text_features(model, self.prompts))

    def image_features(self, img):
        x = official_clip_input(img, self.resolution) if self.official else to_clip_input(img, self.resolution)
        return F.normalize(self.model.encode_image(x).float(), dim=1)

    def forward(self, img, prompt_index=None):
        if self.views:
            img = random_views(img, self.views, self.generator)
        loss = 1 - self.image_features(img) @ self.text.t()  # [views·B, P], view-major
        loss = loss.view(max(self.views, 1), -1, loss.shape[1]).mean(0)  # mean over the views: [B, P]
        if prompt_index is None:
            return loss
        return loss.gather(1, torch.as_tensor(prompt_index, device=loss.device).view(-1, 1))[:, 0]
