"""Attribute directions in W (InterFaceGAN, Shen et al. 2020): label generated faces with the judges, fit one
linear model per feature on their w, and edit along its unit normal; conditional editing projects chosen other
directions out. Notebook 06's sliders.

    D = fit_directions(G, classifier, measure_judge, n=2000)        # seconds on CPU
    ws2 = D.edit(ws, "yaw", 1.5)                                     # 1.5 units (1 unit = 1 std of the faces' w . n)
    ws3 = D.edit(ws, "smile", 2.0, condition_on=["mouth open"])      # smile with the mouth-opening direction removed
    table = measure_directions(G, D, classifier, measure_judge)      # how far each slider moves each feature

The judges label the faces a direction is fitted on and then measure the moves. A linear fit on thousands of
faces cannot exploit a judge's quirks the way an optimised edit can, but its numbers are the judges' view: the
table says how well each direction is *read*, on faces (another seed stream) the fit never saw.
"""
from dataclasses import dataclass, field

import torch

from .playground import ws_of_seeds

# slider -> (judge output, its name, sign): "attribute" = the classifier's probability, "measure" = the measure
# judge's value in the renderer's unit (data/render.py MEASURES), None = SynthFaces does not draw it.
FEATURES = {
    "age": ("attribute", "Young", -1.0),        # older; SynthFaces' age is young/old only
    "eye distance": ("measure", "eye_distance", 1.0),
    "eyebrows": ("measure", "eyebrows", 1.0),
    "eye ratio": ("measure", "eye_ratio", 1.0),
    "eyes open": ("measure", "eyes_open", 1.0),
    "gender": ("attribute", "Male", 1.0),
    "lip ratio": ("measure", "lip_ratio", 1.0),
    "mouth open": ("measure", "mouth_open", 1.0),
    "nose-mouth distance": ("measure", "nose_mouth", 1.0),
    "nose ratio": ("measure", "nose_ratio", 1.0),
    "nose tip": ("attribute", "Pointy_Nose", 1.0),
    "pitch": None,                               # SynthFaces draws no pitch (the head only turns and tilts)
    "roll": ("measure", "roll", 1.0),
    "smile": ("measure", "smile", 1.0),
    "yaw": ("measure", "yaw", 1.0),
}
DOMAIN_FEATURE = {"toon": ("domain", "toon", 1.0)}   # the two-domain generator's extra slider


def available(features=FEATURES):
    """The sliders SynthFaces can drive (those it draws)."""
    return [k for k, v in features.items() if v is not None]


@torch.no_grad()
def read_features(img, classifier, measure_judge, features):
    """Judge readings of images for each feature -> [B, K] in feature order (signed as the slider moves)."""
    probs = torch.sigmoid(classifier(img).float())
    measures, p_toon = measure_judge.predict(img)
    names = list(measure_judge.measures)
    cols = []
    for source, key, sign in (features[k] for k in features):
        if source == "attribute":
            col = probs[:, classifier.index(key)]
        elif source == "measure":
            col = measures[:, names.index(key)]
        else:
            col = p_toon
        cols.append(sign * col)
    return torch.stack(cols, 1)


@dataclass
class Directions:
    """Unit normals in W, one per feature, with what a unit is and how well w predicts the feature."""
    names: list
    normals: torch.Tensor        # [K, dim], unit length
    sigma: torch.Tensor          # [K]: std of w . n over the fitted faces: one slider unit
    label_sd: torch.Tensor       # [K]: std of the judge's reading over the fitted faces
    r2: dict = field(default_factory=dict)   # held-out R^2 of the linear fit: how linearly W holds the feature
    features: dict = field(default_factory=dict)

    def index(self, name):
        if name not in self.names:
            known = ", ".join(self.names)
            extra = f"; SynthFaces draws no {name}" if name in self.features and self.features[name] is None else ""
            raise KeyError(f"no direction {name!r}{extra}; known: {known}")
        return self.names.index(name)

    def direction(self, name, condition_on=()):
        """The unit direction of `name`, with the directions of `condition_on` projected out (InterFaceGAN's
        conditional manipulation: moving along it leaves their linear readings unchanged)."""
        n = self.normals[self.index(name)]
        if not condition_on:
            return n
        if name in condition_on:
            raise ValueError(f"{name!r} cannot be conditioned on itself")
        N = self.normals[[self.index(c) for c in condition_on]]          # [C, dim]
        coef = torch.linalg.solve(N @ N.T, N @ n)                         # least squares: n's part in their span
        n = n - coef @ N
        norm = n.norm()
        if norm < 1e-3:
            raise ValueError(f"{name!r} lies in the span of {list(condition_on)}: nothing is left to move")
        return n / norm

    def edit(self, ws, name, amount, condition_on=()):
        """ws [B, n_latent, dim] (or w [B, dim]) moved `amount` units along `name` (every row of w+)."""
        n = self.direction(name, condition_on).to(ws)
        return ws + float(amount) * float(self.sigma[self.index(name)]) * n

    def edit_many(self, ws, amounts, condition_on=()):
        """Several sliders at once: {name: amount} (each conditioned on `condition_on` minus itself)."""
        for name, amount in amounts.items():
            if amount:
                ws = self.edit(ws, name, amount, [c for c in condition_on if c != name])
        return ws


@torch.no_grad()
def label_faces(G, classifier, measure_judge, seeds, features=FEATURES, batch=250):
    """(w [N, dim], judge readings [N, K]) of the faces of `seeds` (psi 1)."""
    feats = {k: v for k, v in features.items() if v is not None}
    ws, ys = [], []
    for i in range(0, len(seeds), batch):
        w = ws_of_seeds(G, seeds[i:i + batch])
        ys.append(read_features(G.synthesis(w, noise_mode="const"), classifier, measure_judge, feats).cpu())
        ws.append(w[:, 0].cpu())
    return torch.cat(ws), torch.cat(ys)


def fit_directions(G, classifier, measure_judge, n=2000, seed=0, features=FEATURES, ridge=1.0, held_out=0.2):
    """Label n generated faces (seeds seed .. seed + n) and fit one ridge regression per feature on w (centred;
    labels standardised) -> Directions. R^2 is measured on the last `held_out` share of the faces.

    `ridge` is relative to the mean eigenvalue of the faces' w covariance. 1.0 (strong) leans each direction
    towards the directions W varies most along: on the SynthFaces generator it gave the best held-out R^2 of
    1e-3 .. 10 with 1,600 and 4,000 faces (docs/playground.md), where 1e-3 fitted noise (negative R^2)."""
    if not (isinstance(n, int) and n >= 50):
        raise ValueError(f"n must be an integer >= 50 faces to fit directions on, got {n!r}")
    feats = {k: v for k, v in features.items() if v is not None}
    w, y = label_faces(G, classifier, measure_judge, list(range(seed, seed + n)), feats)
    w, y = w.double(), y.double()
    k = int(n * (1 - held_out))
    mu, y_mu, y_sd = w[:k].mean(0), y[:k].mean(0), y[:k].std(0).clamp_min(1e-8)
    X, Y = w[:k] - mu, (y[:k] - y_mu) / y_sd
    A = X.T @ X
    A += ridge * A.trace() / A.shape[0] * torch.eye(A.shape[0], dtype=A.dtype)
    B = torch.linalg.solve(A, X.T @ Y)                                   # [dim, K]
    pred = (w[k:] - mu) @ B
    truth = (y[k:] - y_mu) / y_sd
    r2 = 1 - (pred - truth).pow(2).mean(0) / truth.var(0, unbiased=False).clamp_min(1e-12)
    normals = (B / B.norm(dim=0, keepdim=True)).T                        # [K, dim]
    sigma = ((w - mu) @ normals.T).std(0)
    return Directions(list(feats), normals.float(), sigma.float(), y.std(0).float(),
                      {name: round(float(v), 3) for name, v in zip(feats, r2)}, dict(features))


@torch.no_grad()
def measure_directions(G, D, classifier, measure_judge, n=200, seed=100_000, amount=1.5, condition=None):
    """Each direction on n fresh faces (seeds seed ..): the judges read every feature on the faces and on the faces
    moved +amount units (one shared reading of the start faces: one batch per direction). -> {name: dict(
    target_per_unit (the feature's own unit), target_sd_per_unit, others_sd_per_unit {other: move in that
    feature's std per unit}, worst_other, worst_other_sd, mean_other_sd)}. `condition`: {name: [names]} to measure
    the conditioned direction instead."""
    feats = {k: D.features[k] for k in D.names}
    ws = ws_of_seeds(G, list(range(seed, seed + n)))
    start = read_features(G.synthesis(ws), classifier, measure_judge, feats)
    out = {}
    for j, name in enumerate(D.names):
        cond = (condition or {}).get(name, ())
        moved = read_features(G.synthesis(D.edit(ws, name, amount, cond)), classifier, measure_judge, feats)
        per_unit = ((moved - start) / amount).mean(0).cpu()               # [K], signed
        in_sd = per_unit / D.label_sd.clamp_min(1e-8)
        others = {o: round(float(in_sd[i]), 3) for i, o in enumerate(D.names) if i != j}
        worst = max(others, key=lambda o: abs(others[o]))
        out[name] = dict(target_per_unit=float(f"{float(per_unit[j]):.4g}"), target_sd_per_unit=round(float(in_sd[j]), 3),
                         others_sd_per_unit=others, worst_other=worst, worst_other_sd=others[worst],
                         mean_other_sd=round(sum(abs(v) for v in others.values()) / len(others), 3),
                         conditioned_on=list(cond))
    return out


def unit_of(D, name):
    """The unit the target move of `name` is read in."""
    source, key, sign = D.features[name]
    if source == "attribute":
        return f"P({key})" if sign > 0 else f"-P({key})"
    if source == "domain":
        return "P(toon)"
    from ..data.render import MEASURES
    return MEASURES[key][2]


def from_boundaries(paths, G, n=2000, seed=0):
    """Directions from InterFaceGAN boundary files (`.npy`, a unit normal [1, dim] in W, e.g. its published
    stylegan_ffhq_age_w_boundary.npy), named by file stem: the real pipeline's sliders, where no SynthFaces judge
    can label faces. One unit = the std of n mapped faces' w along the normal."""
    import numpy as np
    from pathlib import Path

    normals, names = [], []
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"boundary file {path} does not exist: give InterFaceGAN .npy boundaries")
        try:
            b = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"{path} is not a .npy array ({e}): an InterFaceGAN boundary is a [1, dim] float array") from None
        b = torch.as_tensor(b, dtype=torch.float32).reshape(-1)
        if b.numel() != G.style_dim or not torch.isfinite(b).all() or b.norm() == 0:
            raise ValueError(f"{path}: expected a finite non-zero normal of {G.style_dim} values (this generator's w), "
                             f"got {b.numel()}")
        normals.append(b / b.norm())
        names.append(path.stem)
    N = torch.stack(normals)
    with torch.no_grad():
        w = ws_of_seeds(G, list(range(seed, seed + n)))[:, 0].cpu()
    return Directions(names, N, (w @ N.T).std(0), torch.ones(len(names)), {},
                      {k: ("boundary", str(p), 1.0) for k, p in zip(names, paths)})
