"""Global directions: StyleSpace bookkeeping, the exact relevance (as the official definition, each channel
restored), its resumable cache, the Jacobian relevance against it, text -> edit, β, the saved relevance, and the
editor driven through its widgets."""
import datetime
import io

import pytest
import torch
import torch.nn.functional as F

from conftest import dummy_clip, dummy_generator
from styleclip_utils.edit import global_directions as gd


@pytest.fixture(scope="module")
def models():
    return dummy_generator(), dummy_clip()


def test_templates_are_the_official_79():
    t = gd.imagenet_templates()
    assert len(t) == 79 and all(x.count("{}") == 1 for x in t) and "a photo of many {}." not in t


def test_flat_styles_round_trip_and_channel_selection(models):
    G, _ = models
    s = G.w_to_s(G.broadcast(G.mapping(torch.randn(3, G.style_dim))))
    flat = gd.to_flat(G, s)
    assert all(torch.equal(a, b) for a, b in zip(gd.from_flat(G, flat), s))
    total = sum(l.channels for l in G.style_layers)
    no_rgb = gd.channel_index(G)
    assert len(no_rgb) == sum(l.channels for l in G.style_layers if not l.is_torgb) < total
    assert len(gd.channel_index(G, include_torgb=True)) == total
    low = gd.channel_index(G, max_resolution=8)
    assert 0 < len(low) < len(no_rgb) and set(low.tolist()) <= set(no_rgb.tolist())
    assert len(gd.channel_index(G, layers=["conv1"])) == G.style_layers[0].channels
    with pytest.raises(ValueError, match="unknown style layers"):
        gd.channel_index(G, layers=["convs.99"])


def reference_relevance(G, clip_model, styles, mean, std, channels, sigmas=5.0):
    """The official definition, one channel and one image at a time, written as plainly as possible."""
    rows = []
    for c in channels.tolist():
        diffs = []
        for s in styles:
            lo, hi = s.clone(), s.clone()  # a fresh copy per channel: every other channel at the image's value
            lo[c], hi[c] = mean[c] - sigmas * std[c], mean[c] + sigmas * std[c]
            f = gd.image_embedding(clip_model, G.synthesis_from_s(gd.from_flat(G, torch.stack([lo, hi]))))
            diffs.append(F.normalize(f[1] - f[0], dim=0))
        rows.append(F.normalize(torch.stack(diffs).mean(0), dim=0))
    return torch.stack(rows)


@torch.no_grad()
def test_exact_relevance_is_the_official_definition_with_channels_restored(models):
    G, C = models
    mean, std = gd.style_stats(G, 500)
    styles = gd.sample_styles(G, 2, seed=1)
    channels = gd.channel_index(G)[::15]
    want = reference_relevance(G, C, styles, mean, std, channels)
    got = gd.exact_relevance(G, C, styles, mean, std, channels, batch=10, progress=False)  # several channels per batch
    assert torch.allclose(got, want, atol=2e-3)  # batched vs one by one: float rounding, normalised
    assert torch.allclose(got.norm(dim=1), torch.ones(len(channels)))


@torch.no_grad()
def test_exact_relevance_resumes_from_its_cache(models, tmp_path):
    G, C = models
    mean, std = gd.style_stats(G, 500)
    styles = gd.sample_styles(G, 2, seed=1)
    channels = gd.channel_index(G)[:12]
    full = gd.exact_relevance(G, C, styles, mean, std, channels, batch=8, progress=False)
    cache = tmp_path / "fs3.pt"
    # an interrupted run: its cache holds the first 4 channels (and garbage after them, which a resume overwrites)
    part = full.clone()
    part[4:] = 7.0
    key_run = gd.exact_relevance(G, C, styles, mean, std, channels[:1], batch=8, cache=tmp_path / "k.pt", progress=False)
    assert key_run.shape == (1, full.shape[1])
    gd.exact_relevance(G, C, styles, mean, std, channels, batch=8, cache=cache, progress=False)
    state = torch.load(cache, weights_only=True)
    assert state["done"] == len(channels)
    state["done"], state["fs"] = 4, part
    torch.save(state, cache)
    resumed = gd.exact_relevance(G, C, styles, mean, std, channels, batch=8, cache=cache, progress=False)
    assert torch.allclose(resumed, full, atol=1e-6)
    # other settings (sigmas) do not reuse it; a torn file is set aside with a note, not a crash
    other = gd.exact_relevance(G, C, styles, mean, std, channels, sigmas=2.0, batch=8, cache=cache, progress=False)
    assert not torch.allclose(other, full)
    cache.write_bytes(b"torn")
    assert torch.allclose(gd.exact_relevance(G, C, styles, mean, std, channels, batch=8, cache=cache, progress=False),
                          full, atol=1e-6)


def test_fast_relevance_is_the_exact_one_linearised(models):
    """With a small perturbation (0.01σ instead of 5σ) the finite difference is the Jacobian: the two agree."""
    G, C = models
    mean, std = gd.style_stats(G, 500)
    styles = gd.sample_styles(G, 3, seed=1)
    channels = gd.channel_index(G)[::5]
    fast = gd.fast_relevance(G, C, styles, channels, batch=2, precision="fp32", rank=None, progress=False)
    # finite differences centred on each image's own value (the linearisation point)
    for c, row in zip(channels.tolist()[:6], fast[:6]):
        d = []
        for s in styles:
            lo, hi = s.clone(), s.clone()
            lo[c] -= 0.01 * std[c]
            hi[c] += 0.01 * std[c]
            with torch.no_grad():
                f = gd.image_embedding(C, G.synthesis_from_s(gd.from_flat(G, torch.stack([lo, hi]).double().float())))
            d.append(F.normalize(f[1] - f[0], dim=0))
        fd = F.normalize(torch.stack(d).mean(0), dim=0)
        assert float(fd @ row) > 0.99
    exact = gd.exact_relevance(G, C, styles, mean, std, channels, progress=False)
    assert float(F.cosine_similarity(fast, exact, dim=1).mean()) > 0.5  # the 5σ version: related, not equal
    # the low-rank estimate: rank D is the full Jacobian; a lower rank approximates it; bf16 stays close
    d = C.text_projection.shape[1]
    full_rank = gd.fast_relevance(G, C, styles, channels, batch=2, precision="fp32", rank=d - 1, basis_images=3,
                                  progress=False)
    assert float(F.cosine_similarity(full_rank, fast, dim=1).min()) > 0.99
    low = gd.fast_relevance(G, C, styles, channels, batch=2, precision="fp32", rank=d // 4, progress=False)
    assert 0.5 < float(F.cosine_similarity(low, fast, dim=1).mean()) < 0.999
    bf16 = gd.fast_relevance(G, C, styles, channels, batch=2, precision="bf16", rank=None, progress=False)
    assert float(F.cosine_similarity(bf16, fast, dim=1).mean()) > 0.9


def test_text_direction_and_beta(models):
    G, C = models
    dt = gd.text_direction(C, "face with red hair", "face")
    assert dt.shape == (C.text_projection.shape[1],) and abs(float(dt.norm()) - 1) < 1e-5
    assert not torch.allclose(dt, gd.text_direction(C, "face with red hair", "face", templates=[]))
    with pytest.raises(ValueError, match="embed to the same point"):
        gd.text_direction(C, "face", "face")
    rel = gd.compute_relevance(G, C, "fast", n_images=2, stats_images=200, progress=False)
    d = rel.direction(dt, beta=0.0)
    assert d.n_channels == len(rel.channels)                     # β 0 keeps every channel
    assert float((d.ds / rel.std).abs().max()) == pytest.approx(1.0)  # the largest move is 1σ before α
    moved = (d.ds != 0).nonzero()[:, 0]
    assert set(moved.tolist()) <= set(rel.channels.tolist())     # toRGB channels never move
    tighter = rel.direction(dt, beta=d.max_relevance * 0.9)
    assert 1 <= tighter.n_channels < d.n_channels and sum(tighter.per_layer(G).values()) == tighter.n_channels
    with pytest.raises(gd.BetaTooHighError, match=f"most relevant channel for this text scores {d.max_relevance:.3f}"):
        rel.direction(dt, beta=min(0.99, d.max_relevance + 0.01))
    with pytest.raises(ValueError, match="beta must be in"):
        rel.direction(dt, beta=1.5)
    layer = G.style_layers[0].name
    mask = torch.zeros(len(rel.std), dtype=torch.bool)
    mask[gd.channel_index(G, layers=[layer])] = True
    only = rel.direction(dt, beta=0.0, layers_mask=mask)
    assert list(only.per_layer(G)) == [layer]


@torch.no_grad()
def test_manipulate_any_start(models):
    G, C = models
    rel = gd.compute_relevance(G, C, "fast", n_images=2, stats_images=200, progress=False)
    d = rel.direction(gd.text_direction(C, "face with red hair", "face"), beta=0.0)
    ws = G.broadcast(G.mapping(torch.randn(2, G.style_dim)))
    img = G.synthesis(ws)
    assert torch.allclose(gd.manipulate(G, ws, d, 0.0), img, atol=1e-5)
    both = gd.manipulate(G, ws, d, [0.0, 3.0])                   # alpha-major: 2 alphas x 2 faces
    assert both.shape == (4, 3, G.size, G.size) and not torch.allclose(both[2:], img, atol=1e-3)
    flat = gd.to_flat(G, G.w_to_s(ws))
    assert torch.allclose(gd.manipulate(G, flat, d, 3.0), both[2:], atol=1e-5)


def test_relevance_saves_loads_and_refuses_other_models(models, tmp_path):
    G, C = models
    rel = gd.compute_relevance(G, C, "fast", n_images=2, stats_images=200, progress=False)
    path = tmp_path / "rel.safetensors"
    rel.save(path)
    back = gd.Relevance.load(path, G, C)
    assert torch.equal(back.fs3, rel.fs3) and torch.equal(back.channels, rel.channels) and back.about == rel.about
    with pytest.raises(ValueError, match="other weights of this generator or CLIP"):
        gd.Relevance.load(path, dummy_generator(seed=1), C)
    with pytest.raises(FileNotFoundError, match="no relevance file"):
        gd.Relevance.load(tmp_path / "nope.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="not a readable relevance file"):
        gd.Relevance.load(tmp_path / "bad.safetensors")
    assert not list(tmp_path.glob(".*.tmp"))


def test_relevance_agreement_of_a_relevance_with_itself(models):
    G, C = models
    rel = gd.compute_relevance(G, C, "fast", n_images=2, stats_images=200, progress=False)
    rows = gd.relevance_agreement(rel.fs3, rel.fs3, rel.channels, C, rel.std, ["red hair", "smiling"], beta=0.0,
                                  target_format="face with {}")
    assert [r["prompt"] for r in rows] == ["red hair", "smiling"]
    assert all(r["cos"] == pytest.approx(1.0, abs=1e-5) and r["iou"] == 1.0 for r in rows)
    noisy = rel.fs3 + 0.5 * torch.randn_like(rel.fs3)
    assert all(r["cos"] < 0.999 for r in gd.relevance_agreement(rel.fs3, noisy, rel.channels, C, rel.std, ["red hair"]))


def test_editor_follows_its_widgets(models):
    from PIL import Image

    from styleclip_utils.data.align import NoFaceError  # noqa: F401 (the error the upload reports)
    from styleclip_utils.edit.editor import GlobalEditor

    G, C = models
    rel = gd.compute_relevance(G, C, "fast", n_images=2, stats_images=200, progress=False)
    calls = []
    encoder = lambda x: calls.append(x.shape) or G.broadcast(G.mapping(torch.randn(1, G.style_dim)))  # noqa: E731
    ed = GlobalEditor(G, C, rel, encoder=encoder, beta=0.0, alpha=3.0, seed=0)
    first, start = ed.image.value, ed.before.value
    assert first[:4] == b"\x89PNG" and "channels survive" in ed.status.value
    ed.alpha.value = -3.0
    assert ed.image.value != first and ed.before.value == start   # the edit moved, the face did not
    ed.alpha.value = 0.0
    assert ed.image.value == start                                # α 0: the face itself
    ed.alpha.value = 3.0
    ed.target.value = "face with blond hair"
    assert "face with blond hair" in ed._texts and ed.image.value != first
    ed.seed.value = 5
    assert ed.before.value != start
    ed.beta.value = 0.5                                           # above every relevance: said, not raised
    assert "removes every channel" in ed.status.value
    ed.beta.value = 0.0
    ed.target.value = ""
    assert "type a target" in ed.status.value
    ed.target.value = ed.neutral.value
    assert "nothing to edit towards" in ed.status.value
    # a photo without a face: the status says so, nothing else changes
    buf = io.BytesIO()
    Image.new("RGB", (200, 200), (90, 120, 200)).save(buf, format="PNG")
    before = ed.before.value
    ed.upload.value = ({"name": "sky.png", "type": "image/png", "size": buf.tell(), "content": memoryview(buf.getvalue()),
                        "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)},)
    assert "sky.png" in ed.status.value and "no face" in ed.status.value.lower() and ed.before.value == before and not calls


@pytest.mark.slow
def test_editor_aligns_and_inverts_an_uploaded_photo(models):
    from styleclip_utils.data.render import photo_scene
    from styleclip_utils.edit.editor import GlobalEditor

    G, C = models
    rel = gd.compute_relevance(G, C, "fast", n_images=2, stats_images=200, progress=False)
    seen = []

    def encoder(x):
        seen.append(tuple(x.shape))
        return G.broadcast(G.mapping(torch.randn(1, G.style_dim)))

    ed = GlobalEditor(G, C, rel, encoder=encoder, beta=0.0)
    before = ed.before.value
    buf = io.BytesIO()
    photo_scene(seed=1, size=256)[0].save(buf, format="PNG")
    ed.upload.value = ({"name": "me.png", "type": "image/png", "size": buf.tell(), "content": memoryview(buf.getvalue()),
                        "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)},)
    assert seen == [(1, 3, 256, 256)] and ed.before.value != before and "channels survive" in ed.status.value
