"""SynthFaces renderer: determinism, per-attribute locality and visibility, labels, frequencies,
landmarks, captions and the dataset writer."""
import json
import re

import numpy as np
import pytest

from styleclip_utils.data import attributes, captions, render, synthfaces

SIZE = 64
MALE_FIRST = {"Mustache", "Goatee", "Beard", "No_Beard", "5_o_Clock_Shadow", "Sideburns", "Wearing_Necktie"}
# attributes the project's text edits and prompts are about: each must be on >= 8% of images
PROMPT_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Red_Hair", "Purple_Hair",
                     "Straight_Hair", "Wavy_Hair", "Curly_Hair", "Afro", "Mohawk", "Bob_Cut", "Bangs", "Bald",
                     "Smiling", "Surprised", "Angry", "Mouth_Slightly_Open", "Eyeglasses", "Wearing_Hat",
                     "Wearing_Lipstick", "Heavy_Makeup", "Beard", "Mustache", "Goatee", "Freckles",
                     "Big_Lashes", "Wearing_Earrings", "Rosy_Cheeks", "Dark_Skin", "Pale_Skin", "Male", "Young")


# ----------------------------------------------------------------------------------------------------
# Regions in a face frame taken from the landmarks: origin between the eyes, unit = eye distance,
# u to the image's right along the eye line, v down. The eyes are at (+-0.5, 0), the mouth at v ~ 0.95,
# the chin at v ~ 1.5, the top of the head at v ~ -1.2.

def face_frame(landmarks, size=SIZE):
    left, right = landmarks[0], landmarks[1]
    mid, d = (left + right) / 2, np.linalg.norm(right - left)
    ax = (right - left) / d
    down = np.array([-ax[1], ax[0]])
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    p = np.stack([xs - mid[0], ys - mid[1]], -1)
    return p @ ax / d, p @ down / d


def box(u0, u1, v0, v1):
    """|u| in [u0, u1) and v in [v0, v1): regions are symmetric left/right."""
    return lambda u, v: (np.abs(u) >= u0) & (np.abs(u) < u1) & (v >= v0) & (v < v1)


def inner_face(u, v):   # eyes, nose, mouth, chin: where no hair may change
    return box(0, 0.72, -0.22, 0.2)(u, v) | box(0, 0.6, 0.2, 1.5)(u, v)


HAIR = lambda u, v: ~inner_face(u, v)
EXPRESSION = box(0, 1.0, -0.65, 1.45)
EYES = box(0, 0.95, -0.35, 0.3)
CHEEKS = box(0, 1.0, 0.0, 0.75)
MOUTH = box(0, 0.62, 0.7, 1.25)
LOWER_FACE = box(0, 1.3, 0.2, 1.8)
NOSE = box(0, 0.5, 0.0, 0.75)
BROWS = box(0, 0.85, -0.6, 0.05)
BODY = box(0, 3, 1.4, 3)
HEAD = box(0, 1.5, -2, 1.9)

# column -> (region where the change must lie, minimum number of clearly changed pixels at 64 px)
REGIONS = {
    **{c: (HAIR, 120) for c in attributes.COLOR_COLUMNS.values()},
    "Straight_Hair": (HAIR, 50), "Wavy_Hair": (HAIR, 50), "Curly_Hair": (HAIR, 120), "Afro": (HAIR, 500),
    "Mohawk": (HAIR, 120), "Bob_Cut": (HAIR, 200), "Bangs": (HAIR, 80), "Bald": (HAIR, 120),
    "Long_Hair": (HAIR, 250), "Receding_Hairline": (HAIR, 60),
    "Smiling": (EXPRESSION, 50), "Surprised": (EXPRESSION, 60), "Angry": (EXPRESSION, 35),
    "Mouth_Slightly_Open": (MOUTH, 10), "Eyeglasses": (box(0, 1.25, -0.5, 0.4), 80),
    "Wearing_Hat": (lambda u, v: v < -0.3, 150), "Wearing_Earrings": (box(0.8, 2, 0.1, 1.2), 12),
    "Wearing_Lipstick": (MOUTH, 12), "Heavy_Makeup": (box(0, 1.05, -0.4, 1.25), 40), "Big_Lashes": (EYES, 15),
    "Freckles": (CHEEKS, 20), "Rosy_Cheeks": (CHEEKS, 15), "Mustache": (box(0, 0.7, 0.45, 1.1), 35),
    "Goatee": (box(0, 0.5, 0.9, 1.7), 20), "Beard": (LOWER_FACE, 200), "No_Beard": (LOWER_FACE, 200),
    "5_o_Clock_Shadow": (LOWER_FACE, 150), "Sideburns": (box(0.65, 1.3, -0.4, 0.6), 20),
    "Bags_Under_Eyes": (box(0, 0.8, 0.0, 0.35), 6), "Wearing_Necklace": (BODY, 10), "Wearing_Necktie": (BODY, 35),
    "Pale_Skin": (HEAD, 400), "Dark_Skin": (HEAD, 400), "Male": (lambda u, v: (np.abs(u) < 1.6) | (v > 1.3), 150),
    "Young": (box(0, 1.0, -0.8, 1.5), 12), "Big_Nose": (NOSE, 10), "Pointy_Nose": (NOSE, 3), "Big_Lips": (MOUTH, 6),
    "Narrow_Eyes": (EYES, 15), "Arched_Eyebrows": (BROWS, 15), "Bushy_Eyebrows": (BROWS, 15),
    "Chubby": (HEAD, 100), "Oval_Face": (HEAD, 100), "High_Cheekbones": (box(0, 1.1, 0.0, 1.6), 10),
    "Double_Chin": (box(0, 0.6, 1.1, 1.8), 12),
}
TOGGLABLE = [c for c in attributes.ALL_ATTRIBUTES if c not in attributes.CONSTANT_COLUMNS]


def base_face(column):
    idn = render.Identity(male=column in MALE_FIRST, skin=0.3, hair_color="brown")
    return idn, render.Look(hair_color="brown", hair_style="straight", detail_seed=3)


def test_every_column_has_a_region():
    assert set(REGIONS) == set(TOGGLABLE)
    assert len(attributes.CELEBA_ATTRIBUTES) == 40 and attributes.CELEBA_ATTRIBUTES[0] == "5_o_Clock_Shadow"
    assert attributes.CELEBA_ATTRIBUTES[-1] == "Young" and not set(attributes.EXTRA_ATTRIBUTES) & set(attributes.CELEBA_ATTRIBUTES)


@pytest.mark.parametrize("column", TOGGLABLE)
def test_attribute_changes_its_region_only(column):
    idn, look = base_face(column)
    off_i, off_l = attributes.set_attribute(idn, look, column, False)
    on_i, on_l = attributes.set_attribute(idn, look, column, True)
    assert not attributes.labels(off_i, off_l)[column] and attributes.labels(on_i, on_l)[column]
    img_off, lm = render.render_face(off_i, off_l, size=SIZE)
    img_on, _ = render.render_face(on_i, on_l, size=SIZE)
    diff = np.abs(np.asarray(img_on, int) - np.asarray(img_off, int)).sum(2)
    region, min_pixels = REGIONS[column]
    inside = region(*face_frame(lm))
    changed = int((diff > 40).sum())
    assert changed >= min_pixels, f"{column} barely visible: {changed} pixels changed"
    frac = diff[inside].sum() / diff.sum()
    assert frac >= 0.9, f"{column}: only {frac:.0%} of the change is in its region"


def test_toggling_keeps_other_labels():
    idn, look = base_face("")
    before = attributes.labels(idn, look)
    for column in ("Eyeglasses", "Red_Hair", "Smiling", "Mustache", "Dark_Skin", "Afro"):
        after = attributes.labels(*attributes.set_attribute(idn, look, column, True))
        changed = {c for c in before if before[c] != after[c]}
        group = set(attributes.COLOR_COLUMNS.values()) | set(attributes.STYLE_COLUMNS.values()) | {"No_Beard"}
        assert column in changed and changed <= {column} | group, (column, changed)


def test_render_is_deterministic():
    a, lm_a, lab_a = render.sample_face(11)
    b, lm_b, lab_b = render.sample_face(11)
    c, _, _ = render.sample_face(12)
    assert a.tobytes() == b.tobytes() and np.array_equal(lm_a, lm_b) and lab_a == lab_b
    assert a.tobytes() != c.tobytes()
    assert a.size == (SIZE, SIZE) and a.mode == "RGB" and lm_a.shape == (5, 2) and lm_a.dtype == np.float32


@pytest.mark.parametrize("size", [32, 128, 256])
def test_sizes_scale_landmarks(size):
    img, lm, _ = render.sample_face(3, size=size)
    _, lm64, _ = render.sample_face(3, size=64)
    assert img.size == (size, size)
    np.testing.assert_allclose(lm / size, lm64 / 64, atol=1e-5)


def test_landmarks_follow_pose_and_sit_on_features():
    idn, look = base_face("")
    img0, lm0 = render.render_face(idn, look, render.Pose(), size=SIZE)
    pose = render.Pose(roll=8, scale=1.06, dx=0.03, dy=-0.02)
    _, lm1 = render.render_face(idn, look, pose, size=SIZE)
    th = np.deg2rad(8)
    R = 1.06 * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    c = SIZE / 2
    expected = (lm0 - c) @ R.T + c + np.array([0.03, -0.02]) * SIZE
    np.testing.assert_allclose(lm1, expected, atol=1e-3)
    # MTCNN order: image-left eye first, nose between, mouth corners below
    assert lm0[0, 0] < lm0[2, 0] < lm0[1, 0] and lm0[3, 0] < lm0[4, 0]
    assert lm0[0, 1] < lm0[2, 1] < lm0[3, 1]
    gray = np.asarray(img0.convert("L"), float)
    for x, y in lm0[:2]:   # the eye centre (iris) is darker than the cheek below it
        assert gray[int(y), int(x)] + 40 < gray[int(y + 5), int(x)]
    eye_dist = lm0[1, 0] - lm0[0, 0]
    assert 0.2 * SIZE < eye_dist < 0.3 * SIZE and 0.38 * SIZE < lm0[:2, 1].mean() < 0.5 * SIZE


def test_yaw_shifts_features_only():
    idn, look = base_face("")
    _, left = render.render_face(idn, look, render.Pose(yaw=-1), size=SIZE)
    _, right = render.render_face(idn, look, render.Pose(yaw=1), size=SIZE)
    shift = right[:, 0] - left[:, 0]
    assert (shift > 1).all() and shift[2] > shift[0]   # the nose moves most
    np.testing.assert_allclose(right[:, 1], left[:, 1], atol=1e-4)


def sampled_labels(n_people=300, per_person=5):
    rows = []
    for k in range(n_people):
        idn = render.sample_identity(np.random.default_rng([5, 1, k]))
        for j in range(per_person):
            rows.append(attributes.labels(idn, render.sample_look(np.random.default_rng([5, 2, k, j]), idn)))
    return rows


def test_label_groups_are_exclusive():
    for lab in sampled_labels(200, 2):
        colors = sum(lab[c] for c in attributes.COLOR_COLUMNS.values())
        assert sum(lab[c] for c in attributes.STYLE_COLUMNS.values()) == 1
        assert colors == (0 if lab["Bald"] else 1)
        assert sum(lab[c] for c in attributes.EXPRESSION_COLUMNS.values()) <= 1
        assert lab["No_Beard"] == (not (lab["Beard"] or lab["Goatee"] or lab["Mustache"]))
        assert not (lab["Pale_Skin"] and lab["Dark_Skin"]) and not (lab["Beard"] and lab["Goatee"])
        assert not any(lab[c] for c in attributes.CONSTANT_COLUMNS)


def test_attribute_frequencies():
    rows = sampled_labels()
    freq = {c: np.mean([r[c] for r in rows]) for c in attributes.ALL_ATTRIBUTES}
    for c in TOGGLABLE:
        low = 0.08 if c in PROMPT_ATTRIBUTES else 0.05
        assert low <= freq[c] <= 0.9, f"{c}: {freq[c]:.1%}"
    male = np.array([r["Male"] for r in rows])
    for c, more_on_men in (("Beard", True), ("Mustache", True), ("Wearing_Lipstick", False), ("Heavy_Makeup", False)):
        on = np.array([r[c] for r in rows])
        assert (on[male].mean() > 4 * on[~male].mean()) == more_on_men, c
    old = ~np.array([r["Young"] for r in rows])
    gray = np.array([r["Gray_Hair"] for r in rows])
    assert gray[old].mean() > 3 * gray[~old].mean()


def test_captions_name_only_present_attributes():
    words = {"Eyeglasses": r"\bglasses\b|\beyeglasses\b", "Wearing_Hat": r"\bhat\b", "Beard": r"\bbeard\b",
             "Freckles": r"freckle", "Red_Hair": r"\bred hair|\bginger|copper-red", "Smiling": r"smil",
             "Afro": r"\bafro\b", "Wearing_Lipstick": r"lipstick|red lips"}
    seen = {c: False for c in words}
    for k, lab in enumerate(sampled_labels(100, 2)):
        caps = captions.captions(lab, np.random.default_rng(k))
        assert len(caps) == 5 and len(set(caps)) >= 3 and all(len(c) > 10 for c in caps)
        text = " | ".join(caps)
        for c, pattern in words.items():
            found = re.search(pattern, text) is not None
            assert lab[c] or not found, (c, text)
            seen[c] |= found
    assert all(seen.values()), seen


def test_attribute_caption_states_one_present_attribute():
    words = {"Eyeglasses": r"\bglasses\b|\beyeglasses\b", "Wearing_Hat": r"\bhat\b", "Beard": r"\bbeard\b",
             "Freckles": r"freckle", "Red_Hair": r"\bred hair|\bginger|copper-red", "Smiling": r"smil",
             "Afro": r"\bafro\b", "Wearing_Lipstick": r"lipstick|red lips"}
    rng, said = np.random.default_rng(0), set()
    for lab in sampled_labels(100, 3):
        for _ in range(5):
            text, col = captions.attribute_caption({c for c, v in lab.items() if v}, rng)
            assert lab[col] and len(text) > 5
            found = {c for c, pattern in words.items() if re.search(pattern, text)}
            assert found <= {col}, (col, text)       # it names its column and nothing else
            assert col not in words or found == {col}, (col, text)
            said.add(col)
    assert set(words) <= said and len(said) > 30


def test_attribute_caption_says_bald_as_a_word_too():
    # the dataset captions only say "with a bald head"; the prompt "bald" needs the adjective as well
    rng = np.random.default_rng(0)
    texts = {captions.attribute_caption({"Bald"}, rng)[0] for _ in range(40)}
    assert any(re.search(r"\bbald (face|person)$", t) for t in texts), texts
    assert any(t.endswith("with a bald head") for t in texts), texts


def test_generate_is_the_same_with_one_or_two_workers(tmp_path):
    a = synthfaces.generate(tmp_path / "a", n=12, seed=4, workers=1, progress=False)
    b = synthfaces.generate(tmp_path / "b", n=12, seed=4, workers=2, progress=False)
    names = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert len(names) == 12 + 8 and names == sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    for name in names:
        if name != "config.json":
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    c = synthfaces.generate(tmp_path / "c", n=12, seed=5, workers=1, progress=False)
    assert (a / "CelebA-HQ-img/0.png").read_bytes() != (c / "CelebA-HQ-img/0.png").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]   # no temporary folders left


def test_written_files_match_the_renderer(tmp_path):
    root = synthfaces.generate(tmp_path / "d", n=10, seed=2, workers=1, progress=False)
    lines = (root / synthfaces.ATTR_FILE).read_text().splitlines()
    assert lines[0] == "10" and lines[1].split() == list(attributes.CELEBA_ATTRIBUTES)
    assert lines[2].startswith("0.png  ") and set(lines[2].split()[1:]) <= {"1", "-1"}
    cols = {c: i for i, c in enumerate(lines[1].split())}
    assert all(ln.split()[1 + cols["Attractive"]] == "-1" for ln in lines[2:])
    lm = (root / synthfaces.LANDMARK_FILE).read_text().splitlines()
    assert lm[1] == synthfaces.LANDMARK_HEADER and re.fullmatch(r"0\.png( -?\d+\.\d\d){10}", lm[2])
    caps = [json.loads(ln) for ln in (root / synthfaces.CAPTION_FILE).read_text().splitlines()]
    assert [c["file"] for c in caps] == [f"{i}.png" for i in range(10)] and all(len(c["captions"]) == 5 for c in caps)
    cfg = json.loads((root / "config.json").read_text())
    assert (cfg["n"], cfg["size"], cfg["seed"], cfg["renderer_version"]) == (10, 64, 2, render.RENDERER_VERSION)


def test_ensure_synthfaces_caches(tmp_path):
    root = synthfaces.ensure_synthfaces(tmp_path / "s", n=8, size=32, seed=1, progress=False)
    stamp = (root / "config.json").read_text()
    assert synthfaces.ensure_synthfaces(tmp_path / "s", n=8, size=32, seed=1, progress=False) == root
    assert (root / "config.json").read_text() == stamp   # reused, not regenerated
    synthfaces.ensure_synthfaces(tmp_path / "s", n=8, size=64, seed=1, progress=False)   # settings changed
    assert json.loads((root / "config.json").read_text())["size"] == 64
    (root / "config.json").unlink()   # a folder without a config is regenerated too
    synthfaces.ensure_synthfaces(tmp_path / "s", n=8, size=64, seed=1, progress=False)
    assert (root / "config.json").exists()


@pytest.mark.parametrize("args, message", [(["--n", "0"], "n must be a positive"),
                                           (["--size", "1000"], "size must be an integer number of px"),
                                           (["--workers", "0"], "workers must be a positive")])
def test_cli_rejects_bad_arguments(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        synthfaces.main(["--out", str(tmp_path / "x"), "--no-progress"] + args)
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
