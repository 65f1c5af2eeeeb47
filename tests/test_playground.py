"""Notebook 06's pieces on tiny models: the toon domain, the face measures and their judge, the playground
(truncation, interpolation, GIFs, style mixing), the attribute directions and the style transfer."""
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import dummy_generator, dummy_identity_net, dummy_measure_judge

from styleclip_utils.data import render, synthfaces
from styleclip_utils.data.attributes import labels
from styleclip_utils.edit import directions as dirs
from styleclip_utils.edit import playground as pg
from styleclip_utils.edit import style_transfer as st


# -- the second domain ---------------------------------------------------------------------------------------------

def _face(seed):
    rng = np.random.default_rng(seed)
    idn = render.sample_identity(rng)
    look = render.sample_look(rng, idn)
    return idn, look, render.sample_pose(rng), render.sample_background(rng)


def test_toon_domain_draws_the_same_face_in_another_look():
    idn, look, pose, bg = _face(3)
    nat, lm_nat = render.render_face(idn, look, pose, 64, bg)
    toon, lm_toon = render.render_face(idn, look, pose, 64, bg, domain="toon")
    np.testing.assert_array_equal(lm_nat, lm_toon)   # same geometry, same labels
    a, b = np.asarray(nat, float), np.asarray(toon, float)
    assert np.abs(a - b).mean() > 8                  # a visibly different look
    ink = lambda x: (np.abs(x - render.TOON_INK).max(-1) < 30).mean()
    assert ink(b) > ink(a) + 0.03                    # ink outlines
    with pytest.raises(ValueError, match="unknown domain 'anime'"):
        render.render_face(idn, look, pose, 64, bg, domain="anime")


def test_both_domains_dataset_records_each_images_domain(tmp_path):
    root = synthfaces.generate(tmp_path / "both", n=24, size=32, seed=1, workers=1, progress=False, domain="both")
    doms = synthfaces.domains_of(root)
    assert set(doms.values()) == {"natural", "toon"} and len(doms) == 24
    for f, d in doms.items():
        assert d == synthfaces.image_domain("both", 1, int(f.split(".")[0]))
    # a natural set of the same seed and n is another folder's content: ensure_synthfaces re-renders on a domain change
    again = synthfaces.ensure_synthfaces(root, n=24, size=32, seed=1, workers=1, progress=False, domain="natural")
    assert set(synthfaces.domains_of(again).values()) == {"natural"}
    with pytest.raises(ValueError, match="domain must be one of"):
        synthfaces.generate(tmp_path / "x", n=4, size=32, domain="cartoon", progress=False)


def test_face_measures_of_a_set_are_the_renderers_values(tmp_path):
    root = synthfaces.generate(tmp_path / "m", n=12, size=32, seed=2, workers=1, progress=False)
    got = synthfaces.face_measures_of(root)
    persons = synthfaces.people(2, 8)
    who = dict(line.split() for line in (root / synthfaces.IDENTITY_FILE).read_text().splitlines())
    f = "5.png"
    rng = np.random.default_rng([2, 2, 5])
    idn = persons[int(who[f])]
    m = render.face_measures(idn, render.sample_look(rng, idn), render.sample_pose(rng))
    for k, (name, (lo, hi, _)) in enumerate(render.MEASURES.items()):
        assert got[f][k] == pytest.approx((m[name] - lo) / (hi - lo))
    values = np.array(list(got.values()))
    assert values.min() >= -0.01 and values.max() <= 1.01   # the ranges cover what the renderer samples


def test_measure_judge_trains_on_measures_and_domain(tmp_path):
    from styleclip_utils.train.nets import train_measure_judge
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (32, 3, 32, 32), dtype=torch.uint8, generator=g)
    measures = torch.rand(32, len(render.MEASURES), generator=g)
    domains = torch.randint(0, 2, (32,), generator=g)
    model, run = train_measure_judge(images, measures, domains, tmp_path, steps=3, batch=8, progress=False,
                                     cfg=dummy_measure_judge().cfg)
    assert run.step == 3 and (tmp_path / "checkpoint.pt").exists()
    m, p = model.predict(images[:4].float() / 127.5 - 1)
    assert m.shape == (4, len(render.MEASURES)) and p.shape == (4,) and ((p >= 0) & (p <= 1)).all()


def test_measure_judge_quality_reads_a_perfect_judge_as_r2_one():
    from styleclip_utils.metrics.judges import measure_judge_quality
    truth = torch.rand(16, len(render.MEASURES))
    dom = torch.randint(0, 2, (16,))

    class Perfect:   # reads the answer out of the "image"
        measures = render.MEASURES

        def predict(self, x):
            x = (x + 1) * 127.5   # the images come in as uint8 would, scaled to [-1, 1]
            lo, hi = (torch.tensor([v[k] for v in render.MEASURES.values()]) for k in (0, 1))
            return lo + x[:, 0, 0, :len(lo)] * (hi - lo), x[:, 0, 1, 0]

    img = torch.zeros(16, 3, 2, 16)
    img[:, 0, 0, :len(render.MEASURES)] = truth
    img[:, 0, 1, 0] = dom.float()
    q = measure_judge_quality(Perfect(), dict(images=img, measures=truth, domains=dom))
    assert min(q["r2"].values()) > 0.999 and q["domain_accuracy"] == 1.0


# -- the playground ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def G():
    return dummy_generator()


def test_layer_groups_split_the_rows_by_resolution(G):
    res = pg.row_resolutions(G)   # 32 px: 8 rows
    assert len(res) == G.n_latent == 8 and res[0] == 4 and res[-1] == 32
    groups = pg.layer_groups(G)
    assert sum(groups.values(), []) == list(range(8)) and set(groups) == {"coarse", "medium"}


def test_truncation_zero_is_the_average_face_for_every_seed(G):
    imgs = pg.truncation_grid(G, seeds=[1, 2, 3], psis=[0.0, 1.0])
    assert imgs.shape == (6, 3, 32, 32)
    torch.testing.assert_close(imgs[0], imgs[2])   # psi 0 of faces 1 and 2
    assert not torch.allclose(imgs[1], imgs[3])    # psi 1: two faces
    with pytest.raises(ValueError, match="truncation psi must be in"):
        pg.truncation_grid(G, [1], psis=[1.5])


@pytest.mark.parametrize("space, mode", [("w", "lerp"), ("z", "slerp"), ("z", "lerp"), ("w", "slerp")])
def test_interpolation_starts_and_ends_at_the_two_faces(G, space, mode):
    imgs = pg.interpolation(G, 1, 2, steps=5, space=space, mode=mode)
    ends = G.synthesis(pg.ws_of_seeds(G, [1, 2]))
    torch.testing.assert_close(imgs[[0, -1]], ends, atol=1e-4, rtol=0)
    assert not torch.allclose(imgs[2], ends[0])


def test_interpolation_rejects_bad_parameters(G):
    for kw, msg in ((dict(space="s"), "space must be"), (dict(mode="cubic"), "mode must be"), (dict(steps=1), "steps")):
        with pytest.raises(ValueError, match=msg):
            pg.interpolation(G, 1, 2, **kw)


def test_gif_is_written_whole_and_bounces(G, tmp_path):
    frames = pg.interpolation(G, 1, 2, steps=4)
    path = pg.save_gif(frames, tmp_path / "sub" / "a.gif", scale=1)
    got = pg.gif_frames(path)
    assert len(got) == 4 + 2 and got[0].shape == (32, 32, 3)   # forth and back without repeating the ends
    assert os.listdir(tmp_path / "sub") == ["a.gif"]


def test_mixing_takes_exactly_the_named_rows(G):
    ws = pg.ws_of_seeds(G, [1, 2])
    a, b = ws[:1], ws[1:]
    torch.testing.assert_close(pg.mix_rows(G, a, b, range(G.n_latent)), G.synthesis(b))
    mixed = pg.mix_rows(G, a, b, [0, 1])
    assert not torch.allclose(mixed, G.synthesis(a)) and not torch.allclose(mixed, G.synthesis(b))
    with pytest.raises(ValueError, match="rows must be"):
        pg.mix_rows(G, a, b, [G.n_latent])
    strip = pg.crossover_strip(G, a, b)
    assert len(strip) == G.n_latent + 1
    torch.testing.assert_close(strip[[0, -1]], torch.cat([G.synthesis(a), G.synthesis(b)]))


def test_mixing_matrix_has_the_sources_on_its_edges(G):
    rows, cols = pg.ws_of_seeds(G, [1, 2]), pg.ws_of_seeds(G, [3, 4, 5])
    m = pg.mixing_matrix(G, rows, cols, rows=[0, 1, 2])
    assert m.shape == (3 * 4, 3, 32, 32)
    assert (m[0] == -1).all()
    torch.testing.assert_close(m[1:4], G.synthesis(cols))
    torch.testing.assert_close(m[[4, 8]], G.synthesis(rows))
    torch.testing.assert_close(m[5], pg.mix_rows(G, rows[:1], cols[:1], [0, 1, 2])[0])


def test_domain_seeds_keeps_the_faces_the_judge_reads_most_surely_as_the_domain(G):
    class ByBrightness:   # "toon" = a bright face
        def predict(self, img):
            return None, torch.sigmoid(img.mean((1, 2, 3)) * 5)   # unsaturated: no ties

    toon, p_toon = pg.domain_seeds(G, ByBrightness(), "toon", 3, pool=16, batch=8)
    natural, p_nat = pg.domain_seeds(G, ByBrightness(), "natural", 3, pool=16, batch=8)
    assert len(toon) == 3 and not set(toon) & set(natural)
    assert (p_toon[:-1] >= p_toon[1:]).all() and p_toon.min() >= 1 - p_nat.min()
    bright = ByBrightness().predict(G.synthesis(pg.ws_of_seeds(G, range(16))))[1]
    assert toon[0] == int(bright.argmax()) and natural[0] == int(bright.argmin())
    with pytest.raises(ValueError, match="n must be in"):
        pg.domain_seeds(G, ByBrightness(), "toon", 20, pool=16)


# -- attribute directions ------------------------------------------------------------------------------------------

class LinearWorld:
    """A generator whose 'image' is its w, and judges that read linear functions of it: the directions are known."""
    style_dim, n_latent = 12, 3

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.M = torch.randn(12, 12, generator=g)
        self.input = SimpleNamespace(input=torch.zeros(1))
        self.V = torch.randn(12, len(render.MEASURES), generator=g)     # measure k = w . V[:, k]
        self.u = torch.randn(12, generator=g)                           # Male logit = 0.05 w . u
        world = self

        class Classifier:
            def __call__(self, img):
                logits = torch.zeros(len(img), 3)
                logits[:, 1] = 0.05 * img @ world.u   # mostly unsaturated
                logits[:, 0] = 0.05 * img @ (world.V[:, 0] + world.u)   # "Young": tied to yaw and gender
                return logits

            def index(self, name):
                return {"Young": 0, "Male": 1, "Pointy_Nose": 2}[name]

        class Measures:
            measures = render.MEASURES

            def predict(self, img):
                return img @ world.V, torch.sigmoid(img[:, 0])

        self.classifier, self.measure_judge = Classifier(), Measures()

    def mapping(self, z, truncation_psi=1.0):
        return z @ self.M

    def broadcast(self, w):
        return w[:, None].repeat(1, self.n_latent, 1)

    def synthesis(self, ws, noise_mode="const"):
        return ws[:, 0]


def test_fit_directions_recovers_the_judges_linear_directions():
    W = LinearWorld()
    D = dirs.fit_directions(W, W.classifier, W.measure_judge, n=400, ridge=1e-8)   # no shrinkage: exact recovery
    assert "pitch" not in D.names and len(D.names) == len(dirs.available())
    names = list(render.MEASURES)
    for slider in ("yaw", "eye distance", "smile"):
        truth = W.V[:, names.index(dirs.FEATURES[slider][1])]
        assert torch.dot(D.direction(slider), truth / truth.norm()) > 0.999
        assert D.r2[slider] > 0.99
    assert torch.dot(D.direction("gender"), W.u / W.u.norm()) > 0.95   # a logistic reading, fitted linearly
    with pytest.raises(KeyError, match="SynthFaces draws no pitch"):
        D.direction("pitch")


def test_conditional_direction_leaves_the_conditions_unchanged():
    W = LinearWorld()
    D = dirs.fit_directions(W, W.classifier, W.measure_judge, n=400)
    n = D.direction("smile", condition_on=["yaw", "mouth open"])
    assert n.norm() == pytest.approx(1, abs=1e-5)
    for c in ("yaw", "mouth open"):
        assert abs(float(torch.dot(n, D.direction(c)))) < 1e-4
    ws = W.broadcast(W.mapping(torch.randn(5, 12)))
    moved = D.edit(ws, "yaw", 2.0)
    step = (moved - ws)[:, 0] @ D.direction("yaw")
    torch.testing.assert_close(step, torch.full((5,), 2 * float(D.sigma[D.index("yaw")])), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="conditioned on itself"):
        D.direction("yaw", ["yaw"])


def test_measure_directions_reads_the_target_and_the_others():
    W = LinearWorld()
    D = dirs.fit_directions(W, W.classifier, W.measure_judge, n=400)
    table = dirs.measure_directions(W, D, W.classifier, W.measure_judge, n=50)
    yaw = table["yaw"]
    assert yaw["target_sd_per_unit"] > 0.3                       # the slider moves its feature
    assert set(yaw["others_sd_per_unit"]) == set(D.names) - {"yaw"}
    cond = dirs.measure_directions(W, D, W.classifier, W.measure_judge, n=50, condition={"yaw": [yaw["worst_other"]]})
    assert abs(cond["yaw"]["others_sd_per_unit"][yaw["worst_other"]]) < abs(yaw["worst_other_sd"])


def test_boundaries_from_files(tmp_path, G):
    b = np.random.default_rng(0).normal(size=(1, G.style_dim)).astype(np.float32)
    np.save(tmp_path / "age.npy", b)
    D = dirs.from_boundaries([tmp_path / "age.npy"], G, n=64)
    assert D.names == ["age"] and torch.allclose(D.normals[0], torch.from_numpy(b[0] / np.linalg.norm(b)))
    np.save(tmp_path / "bad.npy", np.zeros(7, np.float32))
    with pytest.raises(ValueError, match="expected a finite non-zero normal"):
        dirs.from_boundaries([tmp_path / "bad.npy"], G)
    with pytest.raises(FileNotFoundError):
        dirs.from_boundaries([tmp_path / "none.npy"], G)


# -- style transfer ------------------------------------------------------------------------------------------------

def test_gram_matrix():
    f = torch.arange(8.0).view(1, 2, 2, 2)
    g = st.gram(f)
    assert g.shape == (1, 2, 2)
    assert g[0, 0, 1] == pytest.approx(float((f[0, 0] * f[0, 1]).sum()) / 4)


def test_style_transfer_moves_towards_the_style_and_keeps_the_content():
    net = st.feature_net(identity_net=dummy_identity_net(), vgg_path=None) if st.find_vgg19() is None else None
    if net is None:
        pytest.skip("a VGG19 file is on this machine; this test checks the identity-net fallback")
    face = torch.rand(1, 3, 32, 32) * 2 - 1
    r = st.style_transfer(face, st.style_image("waves", 32), net, steps=30, size=32, progress=False)
    assert r.image.shape == (1, 3, 32, 32) and r.image.abs().max() <= 1
    assert r.style_loss < 0.9                   # the style loss fell from its start
    same = st.style_transfer(face, st.style_image("waves", 32), net, steps=5, size=32, style_weight=0.0, progress=False)
    assert (same.image - face).abs().mean() < 0.05   # no style: the content back


def test_style_images_and_their_errors(tmp_path):
    a, b = st.style_image("mosaic", 48), st.style_image("mosaic", 48)
    assert a.size == (48, 48) and np.array_equal(np.asarray(a), np.asarray(b))
    assert st.style_image("toon", 32).size == (32, 32)
    with pytest.raises(FileNotFoundError, match="neither a file nor one of"):
        st.style_image(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="not an image PIL can read"):
        st.style_image(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="steps must be"):
        st.style_transfer(torch.zeros(1, 3, 8, 8), a, st.convnet_features(dummy_identity_net()), steps=0)


def test_feature_net_says_what_to_give_without_vgg19(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLECLIP_CACHE", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert st.find_vgg19() is None
    with pytest.raises(FileNotFoundError, match="no VGG19 file"):
        st.feature_net()
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "vgg.pth")
    with pytest.raises(ValueError, match="not a torchvision VGG19 state dict"):
        st.feature_net(vgg_path=tmp_path / "vgg.pth")


def test_slider_editor_moves_the_face_as_a_user_would(G):
    from conftest import dummy_classifier
    from styleclip_utils.edit.editor import SliderEditor

    D = dirs.fit_directions(G, dummy_classifier(), dummy_measure_judge(), n=60)
    editor = SliderEditor(G, D, seed=3)
    first = editor.image.value
    assert editor.before.value == first                        # nothing moved yet: the face itself
    editor.sliders["smile"].value = 3.0
    moved = editor.image.value
    assert moved != first and "smile +3.0" in editor.status.value
    editor.keep.value = ("yaw", "smile")                       # a slider is never conditioned on itself
    assert "keeping yaw, smile" in editor.status.value and editor.image.value != moved
    editor.seed.value = 4                                      # another face, the sliders kept
    assert editor.before.value != first and "smile +3.0" in editor.status.value
