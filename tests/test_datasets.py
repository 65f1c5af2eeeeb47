"""FaceDataset / validate_layout / resize_dataset on SynthFaces and on a small CelebA-HQ-style folder."""
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from styleclip_utils.data import attributes, synthfaces
from styleclip_utils.data.layout import DatasetLayoutError, FaceDataset, resize_dataset, validate_layout


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synthfaces.generate(tmp_path_factory.mktemp("synth") / "faces", n=40, size=64, seed=3, workers=1, progress=False)


def make_celeba(root, n=5, size=128, seed=0):
    """A CelebAMask-HQ-style folder: JPEGs and the 40-column attribute file, nothing else."""
    rng = np.random.default_rng(seed)
    (root / "CelebA-HQ-img").mkdir(parents=True)
    for i in range(n):
        arr = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / "CelebA-HQ-img" / f"{i}.jpg", quality=90)
    values = rng.choice([-1, 1], (n, 40))
    rows = [f"{i}.jpg  " + " ".join(str(v) for v in row) for i, row in enumerate(values)]
    (root / synthfaces.ATTR_FILE).write_text("\n".join([str(n), " ".join(attributes.CELEBA_ATTRIBUTES)] + rows) + "\n")
    return root, values


def test_synthfaces_round_trip(synth):
    summary = validate_layout(synth)
    assert summary["kind"] == "synthfaces" and summary["n_images"] == 40 and summary["image_size"] == (64, 64)
    assert summary["has_landmarks"] and summary["has_identities"] and summary["has_split"] and summary["has_captions"]
    counts = summary["split_counts"]
    assert counts["train"] + counts["test"] == 40 and counts["test"] > 0 and counts["val"] == 0

    train, test, full = (FaceDataset(synth, split) for split in ("train", "test", "all"))
    assert len(train) == counts["train"] and len(test) == counts["test"] and len(full) == 40
    assert train.attribute_names == list(attributes.CELEBA_ATTRIBUTES) + list(attributes.EXTRA_ATTRIBUTES)
    assert not set(train.identities.tolist()) & set(test.identities.tolist())   # split by identity
    assert set(train.filenames) | set(test.filenames) == set(full.filenames)
    assert set(full.constant_attributes) >= set(attributes.CONSTANT_COLUMNS)

    item = full[7]
    assert item["img"].shape == (3, 64, 64) and item["img"].dtype == torch.float32
    assert -1 <= item["img"].min() < 0 < item["img"].max() <= 1
    assert item["attrs"].shape == (53,) and set(item["attrs"].tolist()) <= {0.0, 1.0}
    assert item["index"] == 7 and item["filename"] == "7.png" and item["identity"] >= 0
    assert isinstance(item["caption"], str) and len(item["caption"]) > 10
    # labels and landmarks are the ones written by the generator
    line = (synth / synthfaces.ATTR_FILE).read_text().splitlines()[2 + 7].split()
    assert item["attrs"][:40].tolist() == [float(v == "1") for v in line[1:]]
    lm_line = (synth / synthfaces.LANDMARK_FILE).read_text().splitlines()[2 + 7].split()
    np.testing.assert_allclose(item["landmarks"].numpy().ravel(), np.array(lm_line[1:], float), atol=1e-4)

    small = FaceDataset(synth, "all", size=32)[7]
    assert small["img"].shape == (3, 32, 32)
    np.testing.assert_allclose(small["landmarks"], item["landmarks"] / 2, atol=1e-4)
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=4)))
    assert batch["img"].shape == (4, 3, 64, 64) and batch["landmarks"].shape == (4, 5, 2)


def test_hflip_mirrors_image_and_landmarks(synth):
    plain = FaceDataset(synth, "all")
    flipped = FaceDataset(synth, "all", hflip=True)
    torch.manual_seed(0)
    n_flipped = 0
    for i in range(10):
        a, b = plain[i], flipped[i]
        if torch.equal(a["img"], b["img"]):
            assert torch.equal(a["landmarks"], b["landmarks"])
            continue
        n_flipped += 1
        assert torch.equal(a["img"].flip(-1), b["img"])
        # the image-left eye of the mirror is the mirrored image-right eye
        np.testing.assert_allclose(b["landmarks"][0], [64 - a["landmarks"][1, 0], a["landmarks"][1, 1]], atol=1e-4)
        np.testing.assert_allclose(b["landmarks"][3], [64 - a["landmarks"][4, 0], a["landmarks"][4, 1]], atol=1e-4)
    assert 0 < n_flipped < 10


def test_in_memory_gives_the_same_items(synth):
    a, b = FaceDataset(synth, "test"), FaceDataset(synth, "test", in_memory=True)
    assert torch.equal(a[0]["img"], b[0]["img"]) and torch.equal(a[0]["attrs"], b[0]["attrs"])


def test_celeba_hq_folder(tmp_path):
    root, values = make_celeba(tmp_path / "celeba")
    summary = validate_layout(root)
    assert summary["kind"] == "celeba_hq" and summary["image_size"] == (128, 128)
    assert not summary["has_landmarks"] and not summary["has_split"] and summary["extra_attribute_names"] == []
    with pytest.warns(UserWarning, match="no split.txt: every image counts as train"):
        ds = FaceDataset(root, "train", size=64)
    assert len(ds) == 5 and ds.attribute_names == list(attributes.CELEBA_ATTRIBUTES)
    item = ds[2]
    assert item["img"].shape == (3, 64, 64) and torch.isnan(item["landmarks"]).all()
    assert item["identity"] == -1 and item["caption"] == "" and item["filename"] == "2.jpg"
    assert item["attrs"].tolist() == [float(v == 1) for v in values[2]]
    with pytest.warns(UserWarning):
        assert len(FaceDataset(root, "test")) == 0


def test_celeba_split_and_identities_from_celeba_files(tmp_path):
    root, _ = make_celeba(tmp_path / "celeba")
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text(
        "idx orig_idx orig_file\n" + "".join(f"{i} {100 + i} {100 + i:06d}.jpg\n" for i in range(5)))
    partition = [0, 0, 1, 2, 2]
    (root / "list_eval_partition.txt").write_text("".join(f"{100 + i:06d}.jpg {partition[i]}\n" for i in range(5)))
    (root / "identity_CelebA.txt").write_text("".join(f"{100 + i:06d}.jpg {[7, 7, 8, 9, 9][i]}\n" for i in range(5)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        test = FaceDataset(root, "test")
    assert test.filenames == ["3.jpg", "4.jpg"] and test.identities.tolist() == [9, 9]
    assert validate_layout(root)["split_counts"] == {"train": 2, "val": 1, "test": 2}


def test_resize_dataset(tmp_path, synth):
    root, values = make_celeba(tmp_path / "celeba")
    out = resize_dataset(root, tmp_path / "celeba32", size=32, workers=1, progress=False)
    summary = validate_layout(out)
    assert summary["image_size"] == (32, 32) and summary["n_images"] == 5
    lines = (out / synthfaces.ATTR_FILE).read_text().splitlines()
    assert lines[2].split()[0] == "0.png" and [int(v) for v in lines[2].split()[1:]] == values[0].tolist()
    stamp = (out / "config.json").stat().st_mtime_ns
    assert resize_dataset(root, out, size=32, workers=1, progress=False) == out
    assert (out / "config.json").stat().st_mtime_ns == stamp   # reused
    # everything else travels along, landmarks scaled
    half = resize_dataset(synth, tmp_path / "synth32", size=32, workers=2, progress=False)
    a, b = FaceDataset(synth, "test"), FaceDataset(half, "test")
    assert b.filenames == a.filenames and torch.equal(a.identities, b.identities)
    np.testing.assert_allclose(b.landmarks, a.landmarks / 2, atol=0.01)
    assert b.captions == a.captions and torch.equal(a.attributes, b.attributes)


def rewrite(path, k, new_line):
    lines = path.read_text().splitlines()
    lines[k - 1] = new_line
    path.write_text("\n".join(lines) + "\n")


def break_missing_attributes(root):
    (root / synthfaces.ATTR_FILE).unlink()


def break_too_few_values(root):
    rewrite(root / synthfaces.ATTR_FILE, 5, "2.jpg  " + " ".join(["1"] * 39))


def break_bad_value(root):
    rewrite(root / synthfaces.ATTR_FILE, 4, "1.jpg  " + " ".join(["1"] * 4 + ["0"] + ["-1"] * 35))


def break_count(root):
    rewrite(root / synthfaces.ATTR_FILE, 1, "6")


def break_count_not_a_number(root):
    rewrite(root / synthfaces.ATTR_FILE, 1, "five")


def break_missing_image(root):
    (root / "CelebA-HQ-img" / "3.jpg").unlink()


def break_missing_folder(root):
    for p in (root / "CelebA-HQ-img").iterdir():
        p.unlink()
    (root / "CelebA-HQ-img").rmdir()


def break_landmarks(root):
    (root / synthfaces.LANDMARK_FILE).write_text("5\n" + synthfaces.LANDMARK_HEADER + "\n" + "".join(
        f"{i}.jpg " + " ".join(["10.0"] * (10 if i != 1 else 9)) + "\n" for i in range(5)))


def break_split_value(root):
    (root / synthfaces.SPLIT_FILE).write_text("".join(f"{i}.jpg {5 if i == 2 else 0}\n" for i in range(5)))


def break_identity_rows(root):
    (root / synthfaces.IDENTITY_FILE).write_text("".join(f"{i}.jpg 1\n" for i in range(4)))


def break_extra_rows(root):
    (root / synthfaces.EXTRA_FILE).write_text("5\nRed_Hair Afro\n" + "".join(f"{i}.jpg 1 -1 1\n" for i in range(5)))


@pytest.mark.parametrize("breaker, message", [
    (break_missing_attributes, r"missing attribute file CelebAMask-HQ-attribute-anno\.txt"),
    (break_too_few_values, r"attribute-anno\.txt line 5: expected a file name and 40 values \(1 or -1\), got 39 values"),
    (break_bad_value, r"attribute-anno\.txt line 4: value '0' in column 'Bald' is not 1 or -1"),
    (break_count, r"line 1 says 6 images but the file has 5 rows"),
    (break_count_not_a_number, r"line 1: expected the image count \(an integer\), got 'five'"),
    (break_missing_image,
     r"1 image\(s\) listed in CelebAMask-HQ-attribute-anno\.txt are missing from CelebA-HQ-img/, e\.g\. 3\.jpg"),
    (break_missing_folder, r"missing image folder CelebA-HQ-img/"),
    (break_landmarks, r"landmarks\.txt line 4: expected a file name and 10 numbers"),
    (break_split_value, r"split\.txt line 3: split 5 is not one of \[0, 1, 2\]"),
    (break_identity_rows, r"identities\.txt has no row for 1 image\(s\), e\.g\. 4\.jpg"),
    (break_extra_rows, r"SynthFaces-extra-attribute-anno\.txt line 3: expected a file name and 2 values"),
])
def test_layout_errors(tmp_path, breaker, message):
    root, _ = make_celeba(tmp_path / "celeba")
    validate_layout(root)   # fine before
    breaker(root)
    with pytest.raises(DatasetLayoutError, match=message):
        validate_layout(root)
    with pytest.raises(ValueError, match=message):   # the dataset refuses it the same way
        FaceDataset(root, "all")
