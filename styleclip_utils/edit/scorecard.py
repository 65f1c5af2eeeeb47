"""How good an edit is, measured by models that took no part in it: the attribute classifier says whether
the target attribute appeared (success) and whether the others stayed (preservation); the identity net
says whether it is still the same person; LPIPS (when its weights are available) how far the image moved.
"""

import torch

from ..data.attributes import COLOR_COLUMNS, EXPRESSION_COLUMNS, STYLE_COLUMNS

# Attributes that exclude each other: turning hair red must turn it un-black; that is not a side effect.
EXCLUSIVE_GROUPS = [set(COLOR_COLUMNS.values()), set(STYLE_COLUMNS.values()) | {"Receding_Hairline"},
                    set(EXPRESSION_COLUMNS.values())]


def expected_changes(target, names):
    """Columns an edit towards `target` may legitimately change: the target and its exclusive group."""
    group = next((g for g in EXCLUSIVE_GROUPS if target in g), {target})
    return [i for i, n in enumerate(names) if n in group or n == target]


@torch.no_grad()
def edit_metrics(judge, id_net, img_before, img_after, targets, id_threshold, lpips_fn=None):
    """Per-item metrics of N edits. targets: N column names. -> dict of [N] tensors: success (the judge sees
    the target after the edit), had_it (it already did before), preservation (share of the other columns
    unchanged), id_similarity (cosine), same_person (>= the identity net's calibrated threshold), lpips."""
    names = judge.attribute_names
    before, after = judge.predict(img_before).cpu(), judge.predict(img_after).cpu()
    idx = torch.tensor([judge.index(t) for t in targets])
    rows = torch.arange(len(targets))
    keep = torch.ones_like(before)
    for r, t in enumerate(targets):
        keep[r, expected_changes(t, names)] = False
    preserved = ((before == after) & keep).sum(1).float() / keep.sum(1).float()
    sim = (id_net(img_before) * id_net(img_after)).sum(1).cpu()
    lp = lpips_fn(img_before, img_after).flatten().cpu() if lpips_fn is not None \
        else torch.full((len(targets),), float("nan"))
    return dict(success=after[rows, idx], had_it=before[rows, idx], preservation=preserved,
                id_similarity=sim, same_person=sim >= id_threshold, lpips=lp)


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
