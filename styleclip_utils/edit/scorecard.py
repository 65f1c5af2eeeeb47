"""The edit scorecard: one function (`score_edits`) that every method and notebook uses, measured by judges
that took no part in the edit (`Judges`): did the attribute appear, did the others stay, is it the same
person, is it still a face of the data's kind, how far did the image move; and the headline good-edit rate.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.attributes import COLOR_COLUMNS, EXPRESSION_COLUMNS, STYLE_COLUMNS
from ..data.prompts import check_prompts, target_column
from ..losses.clip_loss import to_clip_input
from ..losses.perceptual import feature_distance
from ..metrics.judges import same_person, traits_an_edit_may_change
from ..weights import zoo

# Attributes that exclude each other: turning hair red must turn it un-black; that is not a side effect.
EXCLUSIVE_GROUPS = [set(COLOR_COLUMNS.values()), set(STYLE_COLUMNS.values()) | {"Receding_Hairline"},
                    set(EXPRESSION_COLUMNS.values())]


def expected_changes(target, names):
    """Columns an edit towards `target` may legitimately change: the target and its exclusive group."""
    group = next((g for g in EXCLUSIVE_GROUPS if target in g), {target})
    return [i for i, n in enumerate(names) if n in group or n == target]


GOOD_PRESERVATION = 0.9   # a good edit keeps >= 90% of the other attributes


@dataclass
class Judges:
    """The models that score edits, none of which an editing method may use (models.nets.Judge): the attribute
    classifier (success, preservation), the identity judge and its calibrated rule (same person), the realism
    judge (still a face of the data's kind); LPIPS when its backbone is there, and the CLIP whose similarity
    is reported for prompts no judge reads (the editing CLIP: a weak, biased score, said so in the tables)."""
    attributes: torch.nn.Module
    identity: torch.nn.Module
    realism: torch.nn.Module
    traits_used: list
    shape_tolerance: float
    clip_model: torch.nn.Module = None
    lpips_fn: torch.nn.Module = None


@dataclass
class OpenMeasures:
    """What is measured where no judges exist (the FFHQ preset): CLIP score (the prompt's cosine with the
    edited image), ID similarity (ArcFace cosine between the face before and after), LPIPS and time, the
    measures StyleCLIP reports. CLIP and ArcFace are also the edit's losses, so these scores say how well the
    edit met its own objective, not whether an independent judge agrees: read them as the paper's numbers."""
    clip_model: torch.nn.Module
    id_loss: torch.nn.Module
    lpips_fn: torch.nn.Module = None


def load_judges(device="cpu", root=None, clip_model=None, lpips_fn=None):
    """The shipped SynthFaces judges (data/weights/synthfaces) with the identity rule from the judge's record."""
    rule = zoo.read_record("identity_judge", root)["metrics"]
    return Judges(zoo.load_classifier(device, root), zoo.load_identity_judge(device, root),
                  zoo.load_realism_judge(device, root), rule["traits_used"], rule["shape_tolerance"],
                  clip_model, lpips_fn)


@torch.no_grad()
def perceptual_distance(classifier, a, b):
    """An LPIPS-like distance on the attribute classifier's four stages (losses.perceptual.feature_distance):
    the perceptual distance available without LPIPS's backbone."""
    return feature_distance(classifier, a, b)


@torch.no_grad()
def clip_similarity(clip_model, img, prompts):
    """cos(CLIP(img_i), CLIP(prompt_i)) per item."""
    import clip
    res = clip_model.visual.input_resolution
    f_img = F.normalize(clip_model.encode_image(to_clip_input(img, res)).float(), dim=1)
    tokens = clip.tokenize(prompts, context_length=clip_model.context_length, truncate=True).to(img.device)
    f_txt = F.normalize(clip_model.encode_text(tokens).float(), dim=1)
    return (f_img * f_txt).sum(1)


@torch.no_grad()
def score_edits(judges, img_before, img_after, prompts, seconds=None):
    """The scorecard of N edits (item i: img_before[i] edited towards prompts[i]) -> dict of [N] tensors:

    - target: the attribute column the prompt names (a list; None for a prompt no judge reads)
    - success: the attribute judge sees the target after the edit (NaN where the prompt names none)
    - had_it: it saw it before
    - preserved: share of the other attributes unchanged (the target's exclusive group excepted)
    - identity_kept: the identity judge reads every trait the prompt does not target as before
    - realistic: the realism judge passes the edited image
    - distance: LPIPS when available, else the perceptual distance on the attribute judge's features
    - clip_gain: CLIP similarity to the prompt after minus before (every prompt; the editing CLIP's view)
    - good: success AND identity kept AND realistic AND >= 90% of the other attributes preserved
      (NaN where the prompt names no attribute: then there is no judged success)
    - seconds: per edit, when given"""
    prompts = check_prompts(prompts)
    if isinstance(judges, OpenMeasures):
        return score_open(judges, img_before, img_after, prompts, seconds)
    n, names = len(prompts), judges.attributes.attribute_names
    targets = [target_column(p) for p in prompts]
    before, after = judges.attributes.predict(img_before).cpu(), judges.attributes.predict(img_after).cpu()
    keep = torch.ones_like(before)
    for r, t in enumerate(targets):
        if t is not None:
            keep[r, expected_changes(t, names)] = False
    preserved = ((before == after) & keep).sum(1).float() / keep.sum(1).float()
    judged = torch.tensor([t is not None for t in targets])
    idx = torch.tensor([names.index(t) if t is not None else 0 for t in targets])
    rows = torch.arange(n)
    nan = torch.full((n,), float("nan"))
    success = torch.where(judged, after[rows, idx].float(), nan)
    had_it = torch.where(judged, before[rows, idx].float(), nan)
    identity_kept = same_person(judges.identity.predict(img_before), judges.identity.predict(img_after),
                                judges.traits_used, judges.shape_tolerance, traits_an_edit_may_change(targets)).cpu()
    realistic = judges.realism.predict(img_after).cpu()
    if judges.lpips_fn is not None:
        distance, distance_kind = judges.lpips_fn(img_before, img_after).flatten().cpu(), "lpips"
    else:
        distance, distance_kind = perceptual_distance(judges.attributes, img_before, img_after).cpu(), "judge_perceptual"
    clip_gain = (clip_similarity(judges.clip_model, img_after, prompts) - clip_similarity(judges.clip_model, img_before, prompts)
                 ).cpu() if judges.clip_model is not None else nan
    good = (success == 1) & identity_kept & realistic & (preserved >= GOOD_PRESERVATION)
    return dict(target=targets, success=success, had_it=had_it, preserved=preserved, identity_kept=identity_kept.float(),
                realistic=realistic.float(), distance=distance, distance_kind=distance_kind, clip_gain=clip_gain,
                good=torch.where(judged, good.float(), nan),
                seconds=torch.full((n,), float(seconds)) if seconds is not None else nan)


@torch.no_grad()
def score_open(measures, img_before, img_after, prompts, seconds=None):
    """The open measures of N edits (OpenMeasures) -> dict of [N] tensors: clip_score (after), clip_gain,
    id_similarity, distance (LPIPS; NaN when it is n/a), seconds; the judged keys are NaN."""
    n = len(prompts)
    nan = torch.full((n,), float("nan"))
    after = clip_similarity(measures.clip_model, img_after, prompts).cpu()
    before = clip_similarity(measures.clip_model, img_before, prompts).cpu()
    id_sim = 1 - measures.id_loss(img_after, img_before).float().cpu()
    if measures.lpips_fn is not None:
        distance, kind = measures.lpips_fn(img_before, img_after).flatten().float().cpu(), "lpips"
    else:
        distance, kind = nan, "n/a"
    return dict(target=[None] * n, success=nan, had_it=nan, preserved=nan, identity_kept=nan, realistic=nan,
                good=nan, clip_score=after, clip_gain=after - before, id_similarity=id_sim, distance=distance,
                distance_kind=kind, seconds=torch.full((n,), float(seconds)) if seconds is not None else nan)


SCORE_KEYS = ("good", "success", "identity_kept", "realistic", "preserved", "distance", "clip_gain", "seconds",
              "clip_score", "id_similarity")  # the last two: open measures only (score_open)


def summarize(card, select=None):
    """Means over the items `select` (a slice, index tensor or bool mask; all by default) -> {key: float or
    None}, the good-edit rate first. NaN items (no judged attribute) are left out of a mean; all NaN -> None."""
    out = {}
    for key in (k for k in SCORE_KEYS if k in card):
        v = card[key] if select is None else card[key][select]
        v = v[~torch.isnan(v)]
        out[key] = round(float(v.mean()), 4) if len(v) else None
    out["n"] = len(card["success"]) if select is None else len(card["success"][select])
    out["judged"] = bool(out["success"] is not None)
    return out


@torch.no_grad()
def start_codes(G, judge, column, n, truncation_psi=0.7, seed=0, max_draws=4096, batch=64):
    """n random faces (z, ws) on which the judge does NOT see `column`: an edit towards it can then only
    succeed by changing the face. Deterministic from seed."""
    g = torch.Generator().manual_seed(seed)
    dev = G.w_avg.device
    zs = []
    for _ in range(0, max_draws, batch):
        z = torch.randn(batch, G.style_dim, generator=g).to(dev)
        img = G.synthesis(G.broadcast(G.mapping(z, truncation_psi)))
        zs.append(z[~judge.predict(img)[:, judge.index(column)].to(dev)])
        if sum(len(x) for x in zs) >= n:
            z = torch.cat(zs)[:n]
            return z, G.broadcast(G.mapping(z, truncation_psi))
    raise ValueError(f"only {sum(len(x) for x in zs)} of {max_draws} generated faces lack {column}; "
                     f"need {n}")


class SuccessTracker:
    """A callback for `optimize.edit` that records, per item, the first step at which the judge sees the
    target attribute (checked every `every` steps; measurement only, it never feeds the optimisation)."""

    def __init__(self, judge, targets, every=5):
        self.judge, self.every = judge, every
        self.idx = torch.tensor([judge.index(t) for t in targets])
        self.first = torch.full((len(targets),), -1)

    def __call__(self, step, img):
        if step % self.every:
            return
        hit = self.judge.predict(img).cpu()[torch.arange(len(self.idx)), self.idx]
        self.first[(self.first < 0) & hit] = step + 1
