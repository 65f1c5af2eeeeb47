"""Figures the notebooks share: image grids with labels, bar charts, landmarks; saved reproducibly."""
import os
from pathlib import Path

import matplotlib.pyplot as plt  # headless: matplotlib falls back to Agg; in Jupyter: the inline backend
import numpy as np
import torch


def to_uint8(img):
    """[-1, 1] tensor [3, H, W] (or [B, 3, H, W]) or a PIL image -> uint8 HWC (BHWC) numpy array."""
    if isinstance(img, torch.Tensor):
        x = ((img.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return x.movedim(-3, -1).numpy()
    return np.asarray(img.convert("RGB"))


def image_grid(images, ncols=8, labels=None, title=None, cell=1.3, fontsize=6):
    """A grid of images with an optional label under each (a string, or a list of lines)."""
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * cell, nrows * (cell + (0.25 if labels else 0))),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(to_uint8(images[i]), interpolation="nearest")  # the pixels as they are (and smaller PNGs)
            if labels:
                text = labels[i] if isinstance(labels[i], str) else "\n".join(labels[i])
                ax.set_title(text, fontsize=fontsize, pad=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def bar_chart(names, values, title="", xlabel="", highlight=None, figsize=(10, 3)):
    fig, ax = plt.subplots(figsize=figsize)
    colors = ["tab:orange" if highlight and n in highlight else "tab:blue" for n in names]
    ax.bar(range(len(names)), values, color=colors)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_ylabel(xlabel)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def draw_landmarks(ax, img, landmarks, color="lime"):
    """Image with its 5 points (MTCNN order) and their names."""
    ax.imshow(to_uint8(img), interpolation="nearest")
    pts = np.asarray(landmarks)
    ax.scatter(pts[:, 0], pts[:, 1], s=8, c=color)
    ax.axis("off")


def save_figure(fig, path, dpi=110, also=None):
    """PNG with no timestamp/version metadata (same figure -> same bytes), written atomically. `also`: a folder
    that gets a copy under the same name (`make figures` passes figures/; runs write only their own folder)."""
    for target in [Path(path)] + ([Path(also) / Path(path).name] if also else []):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.stem}.tmp.png")
        fig.savefig(tmp, dpi=dpi, metadata={"Software": None}, bbox_inches="tight")
        os.replace(tmp, target)


def before_after(before, after, labels, cell=1.25, fontsize=8):
    """Rows: the start faces, then each face edited towards its label (one column per edit). `after`: images,
    or {row name: images} for several rows (e.g. one per latent space)."""
    rows = {"before": before, **(after if isinstance(after, dict) else {"after": after})}
    n = len(labels)
    fig, axes = plt.subplots(len(rows), n, figsize=(n * cell, len(rows) * cell + 0.3), squeeze=False)
    for i, (name, images) in enumerate(rows.items()):
        for j in range(n):
            axes[i, j].imshow(to_uint8(images[j]), interpolation="nearest")
            axes[i, j].set_xticks([]), axes[i, j].set_yticks([])
        axes[i, 0].set_ylabel(name, fontsize=fontsize)
    for j in range(n):
        axes[0, j].set_title(labels[j], fontsize=fontsize, pad=3)
    fig.tight_layout(pad=0.3)
    return fig


def loss_curves(log, keys=None, title=""):
    """Losses of a training run from its log.jsonl rows (`train.loop.read_log`), one panel per loss."""
    keys = keys or ([k for k in log[0] if k not in ("step", "seconds")] if log else [])
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(3.2 * max(1, len(keys)), 2.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        rows = [r for r in log if key in r]
        ax.plot([r["step"] for r in rows], [r[key] for r in rows])
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def attribute_labels(attrs, names, k=3, prefer=()):
    """Up to k names of the attributes that are on (attrs: 0/1 per name), `prefer`red ones first."""
    on = [n for n, v in zip(names, attrs) if float(v) > 0.5]
    ordered = [n for n in prefer if n in on] + [n for n in on if n not in prefer]
    return [n.replace("_", " ").lower() for n in ordered[:k]]
