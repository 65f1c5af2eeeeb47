"""The judges of edits beyond the attribute classifier: the identity judge's "same person" rule and its
calibration, the realism judge's fit, KID on judge features, and each judge's measured quality.

Judges score; they are never a loss (models/nets.py `Judge`; the losses refuse one). Every threshold here is
calibrated on training people or on unedited generated faces, before any edit is seen.
"""
import torch

from ..data.attributes import IDENTITY_TRAITS, TRAITS_AN_EDIT_MAY_CHANGE
from .quality import _batches, generated_faces, to_uint8, verification_pairs  # noqa: F401 (to_uint8: re-exported)

TRAIT_NAMES = tuple(IDENTITY_TRAITS)


@torch.no_grad()
def judge_traits(judge, images, batch=256, device="cpu"):
    """uint8 images [N, 3, S, S] -> (trait classes [N, T], face shape [N, 4]) on CPU."""
    out = [judge.predict(x.to(device)) for x in _batches(images, batch)]
    return torch.cat([c.cpu() for c, _ in out]), torch.cat([s.cpu() for _, s in out])


def same_person(before, after, traits_used, tolerance, may_change=None):
    """before, after: (classes [N, T], shape [N, 4]) from the identity judge. Same person = every trait in
    `traits_used` that the edit may not change reads the same, and (when "shape" is used) the face shape moved
    by at most `tolerance`. may_change: per item, a set of trait names the edit targets (or None)."""
    (ca, sa), (cb, sb) = before, after
    n = len(ca)
    may_change = may_change or [set()] * n
    checked = torch.tensor([[t in traits_used and t not in m for t in TRAIT_NAMES] for m in may_change],
                           dtype=torch.bool).view(n, len(TRAIT_NAMES))
    ok = ((ca == cb) | ~checked).all(1)
    if "shape" in traits_used:
        ok &= (sa - sb).norm(dim=1) <= tolerance
    return ok


def traits_an_edit_may_change(targets):
    """Column names (None for a free-text prompt) -> the identity traits each edit may change."""
    return [set(TRAITS_AN_EDIT_MAY_CHANGE.get(t, ())) for t in targets]


def identity_judge_quality(judge, train, test, n_pairs=1000, seed=0, consistency=0.97, accuracy=0.9, quantile=0.95,
                           device="cpu"):
    """The identity judge on renders: per-trait accuracy and face-shape error on held-out people, and its
    "same person" rule calibrated on training people: a trait is used only if the judge reads it right on
    >= `accuracy` of their images and the same on >= `consistency` of same-person pairs (a trait it cannot read
    would call every edit another person), and
    the shape tolerance is the `quantile` of shape distances over same-person pairs. Then, on held-out
    people: the share of same-person pairs kept and of different-person pairs rejected."""
    def pairs(data, s):
        classes, shape = judge_traits(judge, data["images"], device=device)
        same, diff = verification_pairs(data["identities"], n_pairs, s)
        return (classes, shape), same, diff

    (cls_tr, shp_tr), same_tr, _ = pairs(train, seed)
    agree = (cls_tr[same_tr[:, 0]] == cls_tr[same_tr[:, 1]]).float().mean(0)
    acc_tr = (cls_tr == train["trait_classes"]).float().mean(0)   # a constant guess agrees with itself too
    used = [t for t, a, c in zip(TRAIT_NAMES, agree, acc_tr) if a >= consistency and c >= accuracy] + ["shape"]
    tolerance = float((shp_tr[same_tr[:, 0]] - shp_tr[same_tr[:, 1]]).norm(dim=1).quantile(quantile))
    (cls_te, shp_te), same_te, diff_te = pairs(test, seed + 1)

    def kept(idx):
        return same_person((cls_te[idx[:, 0]], shp_te[idx[:, 0]]), (cls_te[idx[:, 1]], shp_te[idx[:, 1]]), used,
                           tolerance)

    truth = test["trait_classes"]
    return dict(trait_accuracy={t: round(float((cls_te[:, k] == truth[:, k]).float().mean()), 4)
                                for k, t in enumerate(TRAIT_NAMES)},
                shape_mae=round(float((shp_te - test["face_shape"]).abs().mean()), 4),
                self_agreement_train={t: round(float(a), 4) for t, a in zip(TRAIT_NAMES, agree)},
                trait_accuracy_train={t: round(float(a), 4) for t, a in zip(TRAIT_NAMES, acc_tr)},
                traits_used=used, shape_tolerance=round(tolerance, 4),
                same_pairs_kept=round(float(kept(same_te).float().mean()), 4),
                different_pairs_rejected=round(float((~kept(diff_te)).float().mean()), 4))


# ----------------------------------------------------------------------------------------------------
# realism

@torch.no_grad()
def embed(classifier, images, batch=256, device="cpu"):
    """uint8 images -> the classifier's pooled features [N, D] (what KID reads)."""
    return torch.cat([classifier.embed(x.to(device)).float().cpu() for x in _batches(images, batch)])


BLOB_COLOURS = torch.tensor([[-0.85, -0.88, -0.88], [0.8, -0.14, -0.76], [0.6, -0.44, -0.76], [0.07, -0.55, 0.43],
                             [0.79, 0.52, -0.09], [-0.14, -0.47, -0.7], [0.43, 0.43, 0.46]])  # dark, orange, red,
# purple, blond, brown, grey: the colours failed hair and skin edits smear over a face


def _blob(x, g, size=(0.45, 0.75)):
    """Cover most of the face (an ellipse near the centre) with one flat colour, in place."""
    s = x.shape[-1]
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, s), torch.linspace(-1, 1, s), indexing="ij")
    for img in x:
        cx, cy = (torch.rand(2, generator=g) - 0.5) * 0.3
        rx, ry = size[0] + (size[1] - size[0]) * torch.rand(2, generator=g)
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
        colour = BLOB_COLOURS[int(torch.randint(len(BLOB_COLOURS), (), generator=g))]
        img[:, inside] = colour[:, None].to(img.dtype)
    return x


def break_faces(x, g):
    """Broken copies of [-1, 1] faces [B, 3, S, S] for training the realism judge: mostly blobs over the face,
    some heavy noise. Random draws from the CPU generator `g` (a resumed run draws the same)."""
    x = x.clone()
    noisy = torch.rand(len(x), generator=g) < 0.25
    a = 0.5 + 0.5 * torch.rand(int(noisy.sum()), 1, 1, 1, generator=g)
    x[noisy] = (1 - a) * x[noisy] + a * (2 * torch.rand(x[noisy].shape, generator=g) - 1)
    x[~noisy] = _blob(x[~noisy], g)
    return x


def broken(images, kind, seed=0):
    """Deliberately broken versions of uint8 faces, for the judges' tests and records: "noise" (uniform
    noise), "blob" (a flat ellipse of hair or skin colour over most of the face, as failed edits draw),
    "scramble" (the image's 8x8 tiles shuffled: a kind the realism judge never trains on)."""
    g = torch.Generator().manual_seed(seed)
    n, _, s, _ = images.shape
    if kind == "noise":
        return torch.randint(0, 256, images.shape, generator=g, dtype=torch.uint8)
    if kind == "blob":
        return to_uint8(_blob(images.float() / 127.5 - 1, g))
    if kind == "scramble":
        t = s // 8
        tiles = images.unfold(2, t, t).unfold(3, t, t).reshape(n, 3, 64, t, t)
        tiles = tiles[:, :, torch.randperm(64, generator=g)]
        return tiles.reshape(n, 3, 8, 8, t, t).permute(0, 1, 2, 4, 3, 5).reshape(n, 3, s, s)
    raise ValueError(f"kind must be 'noise', 'blob' or 'scramble', got {kind!r}")


def generated_uint8(G, n, seed, device="cpu"):
    return torch.cat([to_uint8(img) for img in generated_faces(G, n, seed=seed, device=device)])


@torch.no_grad()
def scores(judge, images, device="cpu"):
    return torch.cat([judge.score(x.to(device)).cpu() for x in _batches(images, 256)])


def calibrate_realism(judge, G, n=2000, seed=1000, quantile=0.05, device="cpu"):
    """The threshold that 95% of n unedited generated faces (psi = 1, a seed training never used) pass."""
    return float(scores(judge, generated_uint8(G, n, seed, device), device).quantile(quantile))


def kid(feats_a, feats_b, subsets=20, subset_size=500, seed=0):
    """Kernel Inception Distance (Binkowski et al. 2018) on any features: the unbiased MMD^2 with the kernel
    (x.y / d + 1)^3, averaged over random subsets. 0 for two samples of one distribution."""
    g = torch.Generator().manual_seed(seed)
    d = feats_a.shape[1]
    m = min(subset_size, len(feats_a), len(feats_b))
    vals = []
    for _ in range(subsets):
        x = feats_a[torch.randperm(len(feats_a), generator=g)[:m]].double()
        y = feats_b[torch.randperm(len(feats_b), generator=g)[:m]].double()
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        vals.append(((kxx.sum() - kxx.diagonal().sum()) + (kyy.sum() - kyy.diagonal().sum())) / (m * (m - 1))
                    - 2 * kxy.mean())
    return float(torch.stack(vals).mean())


def judge_kid(classifier, images_a, images_b, reference, device="cpu"):
    """KID between two sets of uint8 images on the attribute classifier's features, standardised by the
    `reference` set's mean and std (the features' raw scale would swamp the cubic kernel)."""
    ref = embed(classifier, reference, device=device)
    mu, sd = ref.mean(0), ref.std(0) + 1e-6
    return kid((embed(classifier, images_a, device=device) - mu) / sd, (embed(classifier, images_b, device=device) - mu) / sd)


def realism_judge_quality(judge, real_test, G, n=1000, seed=2000, device="cpu"):
    """The realism judge on labelled sets it never trained on: pass rates of real test renders (held-out
    people) and of unedited generated faces (another seed than training and calibration), rejection rates of
    broken generated faces (noise, blobs, and tile scrambles, a kind training never drew)."""
    fake = generated_uint8(G, n, seed, device)

    def rate(images):
        return round(float((scores(judge, images, device) >= judge.threshold).float().mean()), 4)

    out = dict(threshold=judge.threshold, real_test_pass=rate(real_test), generated_pass=rate(fake))
    for kind in ("noise", "blob", "scramble"):
        out[f"{kind}_rejected"] = round(1 - rate(broken(fake, kind, seed)), 4)
    return out


@torch.no_grad()
def read_measures(judge, images, device="cpu", batch=256):
    """A MeasureJudge over uint8 images -> (measures in their units [N, M], probability of the toon domain [N])."""
    out = [judge.predict(x.to(device)) for x in _batches(images, batch)]
    return torch.cat([m.cpu() for m, _ in out]), torch.cat([p.cpu() for _, p in out])


def measure_judge_quality(judge, test, device="cpu"):
    """The measure judge on held-out people's renders: R² and mean absolute error (in the measure's own unit) per
    measure, and the domain accuracy."""
    pred, p_toon = read_measures(judge, test["images"], device)
    lo, hi = (torch.tensor([v[k] for v in judge.measures.values()]) for k in (0, 1))
    truth = lo + test["measures"] * (hi - lo)
    r2 = 1 - (pred - truth).pow(2).mean(0) / truth.var(0, unbiased=False).clamp_min(1e-12)
    mae = (pred - truth).abs().mean(0)
    names = list(judge.measures)
    return dict(r2={k: round(float(v), 4) for k, v in zip(names, r2)},
                mae={k: float(f"{float(v):.4g}") for k, v in zip(names, mae)},
                domain_accuracy=round(float(((p_toon > 0.5).long() == test["domains"]).float().mean()), 4),
                n_images=len(truth))
