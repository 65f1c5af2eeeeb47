"""Face datasets in CelebAMask-HQ's layout: real CelebA-HQ or SynthFaces, one code path.

Layout of a dataset folder (SynthFaces writes all of it; real CelebAMask-HQ ships the first two):
  CelebA-HQ-img/0.jpg|png ...             the images (any size, square)
  CelebAMask-HQ-attribute-anno.txt        line 1: count, line 2: column names, then `0.jpg  1 -1 ...`
  SynthFaces-extra-attribute-anno.txt     optional, same format (Red_Hair, Afro, ...)
  landmarks.txt                           optional, CelebA list_landmarks format (5 points, pixels)
  identities.txt                          optional, `0.jpg 17` (CelebA identity file format)
  split.txt                               optional, `0.jpg 0` (0 train, 1 val, 2 test: list_eval_partition)
  captions.jsonl                          optional, {"file": "0.jpg", "captions": [...]} per line
Real CelebAMask-HQ also ships CelebA-HQ-to-CelebA-mapping.txt; if CelebA's list_eval_partition.txt
(and identity_CelebA.txt) are put next to it, split (and identities) are derived from them, which is
how e4e/StyleCLIP split CelebA-HQ. With no split at all, every image is train (a warning says so).
"""
import json
import os
import shutil
import warnings
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..files import read_json
from .synthfaces import (ATTR_FILE, CAPTION_FILE, EXTRA_FILE, IDENTITY_FILE, IMG_DIR, LANDMARK_FILE,
                         LANDMARK_HEADER, SPLIT_FILE)

IMAGE_EXTS = (".jpg", ".png", ".jpeg")
SPLITS = {"train": 0, "val": 1, "test": 2}
MAPPING_FILE = "CelebA-HQ-to-CelebA-mapping.txt"
CELEBA_PARTITION_FILE = "list_eval_partition.txt"
CELEBA_IDENTITY_FILE = "identity_CelebA.txt"


class DatasetLayoutError(ValueError):
    """The folder is not in CelebAMask-HQ layout; the message says which file and line is wrong."""


def _lines(path):
    """(line number, text) of the non-blank lines of a file."""
    with open(path, encoding="utf-8") as f:
        return [(k, ln.rstrip("\n")) for k, ln in enumerate(f, 1) if ln.strip()]


def _count(path, lines):
    if not lines or not lines[0][1].strip().isdigit():
        got = lines[0][1].strip() if lines else "an empty file"
        raise DatasetLayoutError(f"{path.name} line 1: expected the image count (an integer), got {got!r}")
    return int(lines[0][1])


def _parse_attributes(path):
    """(column names, file names, int8 [N, C] of +1/-1) from a CelebAMask-HQ attribute file."""
    lines = _lines(path)
    count = _count(path, lines)
    if len(lines) < 2:
        raise DatasetLayoutError(f"{path.name} line 2: expected the attribute names, got nothing")
    names = lines[1][1].split()
    if len(set(names)) != len(names):
        raise DatasetLayoutError(f"{path.name} line 2: duplicate attribute names")
    files, rows = [], []
    for k, text in lines[2:]:
        parts = text.split()
        if len(parts) != len(names) + 1:
            raise DatasetLayoutError(f"{path.name} line {k}: expected a file name and {len(names)} values "
                                     f"(1 or -1), got {len(parts) - 1} values")
        for name, v in zip(names, parts[1:]):
            if v not in ("1", "-1"):
                raise DatasetLayoutError(f"{path.name} line {k}: value {v!r} in column {name!r} is not 1 or -1")
        files.append(parts[0])
        rows.append([int(v) for v in parts[1:]])
    if count != len(files):
        raise DatasetLayoutError(f"{path.name}: line 1 says {count} images but the file has {len(files)} rows")
    return names, files, np.array(rows, dtype=np.int8).reshape(len(files), len(names))


def _parse_pairs(path, kind, allowed=None):
    """{file: int} from a `name value` file (identities, split)."""
    out = {}
    for k, text in _lines(path):
        parts = text.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DatasetLayoutError(f"{path.name} line {k}: expected a file name and an integer {kind}, "
                                     f"got {text!r}")
        if allowed is not None and int(parts[1]) not in allowed:
            raise DatasetLayoutError(f"{path.name} line {k}: {kind} {parts[1]} is not one of {sorted(allowed)}")
        out[parts[0]] = int(parts[1])
    return out


def _parse_landmarks(path):
    lines = _lines(path)
    count = _count(path, lines)
    out = {}
    for k, text in lines[2:]:
        parts = text.split()
        try:
            if len(parts) != 11:
                raise ValueError
            out[parts[0]] = np.array([float(v) for v in parts[1:]], np.float32).reshape(5, 2)
        except ValueError:
            raise DatasetLayoutError(f"{path.name} line {k}: expected a file name and 10 numbers "
                                     f"({LANDMARK_HEADER}), got {text!r}") from None
    if count != len(out):
        raise DatasetLayoutError(f"{path.name}: line 1 says {count} images but the file has {len(out)} rows")
    return out


def _parse_captions(path):
    out = {}
    for k, text in _lines(path):
        try:
            row = json.loads(text)
            out[row["file"]] = [str(c) for c in row["captions"]]
        except (ValueError, KeyError, TypeError):
            raise DatasetLayoutError(f"{path.name} line {k}: expected a JSON object with 'file' and "
                                     f"'captions', got {text[:80]!r}") from None
    return out


def _align(name, table, files):
    """Values of `table` in the order of `files`; every image must have exactly one entry."""
    missing = [f for f in files if f not in table]
    extra = set(table) - set(files)
    if missing or extra:
        bad = missing or sorted(extra)
        what = "has no row for" if missing else "lists files not in " + ATTR_FILE + ":"
        raise DatasetLayoutError(f"{name} {what} {len(bad)} image(s), e.g. {', '.join(bad[:3])}")
    return [table[f] for f in files]


def _from_celeba_mapping(root, files):
    """Split and identities of CelebA-HQ images via CelebA's own files, when they are present."""
    split = ids = None
    if (root / MAPPING_FILE).exists():
        orig = {}
        for k, text in _lines(root / MAPPING_FILE)[1:]:   # header: idx orig_idx orig_file
            parts = text.split()
            if len(parts) != 3:
                raise DatasetLayoutError(f"{MAPPING_FILE} line {k}: expected idx orig_idx orig_file, got {text!r}")
            orig[parts[0]] = parts[2]
        stems = [os.path.splitext(f)[0] for f in files]
        if all(s in orig for s in stems):
            if (root / CELEBA_PARTITION_FILE).exists():
                part = _parse_pairs(root / CELEBA_PARTITION_FILE, "split", set(SPLITS.values()))
                split = [part[orig[s]] for s in stems]
            if (root / CELEBA_IDENTITY_FILE).exists():
                who = _parse_pairs(root / CELEBA_IDENTITY_FILE, "identity")
                ids = [who[orig[s]] for s in stems]
    return split, ids


def _resolve_images(img_dir, files):
    """Path of each listed image; a listed `0.jpg` may be stored as `0.png` and vice versa."""
    present = set(os.listdir(img_dir))
    paths, missing = [], []
    for f in files:
        stem = os.path.splitext(f)[0]
        name = f if f in present else next((stem + e for e in IMAGE_EXTS if stem + e in present), None)
        if name is None:
            missing.append(f)
        paths.append(img_dir / (name or f))
    if missing:
        raise DatasetLayoutError(f"{len(missing)} image(s) listed in {ATTR_FILE} are missing from "
                                 f"{IMG_DIR}/, e.g. {', '.join(missing[:3])}")
    return paths


def _load_layout(root):
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{root} is not a folder")
    if not (root / IMG_DIR).is_dir():
        raise DatasetLayoutError(f"missing image folder {IMG_DIR}/ in {root}")
    if not (root / ATTR_FILE).is_file():
        raise DatasetLayoutError(f"missing attribute file {ATTR_FILE} in {root}")
    names, files, values = _parse_attributes(root / ATTR_FILE)
    if len(set(files)) != len(files):
        raise DatasetLayoutError(f"{ATTR_FILE}: duplicate file names")
    L = dict(root=root, files=files, paths=_resolve_images(root / IMG_DIR, files), attribute_names=names,
             extra_names=[], values=values, landmarks=None, identities=None, split=None, captions=None)
    if (root / EXTRA_FILE).is_file():
        extra_names, extra_files, extra = _parse_attributes(root / EXTRA_FILE)
        if set(extra_names) & set(names):
            raise DatasetLayoutError(f"{EXTRA_FILE}: columns also in {ATTR_FILE}: {set(extra_names) & set(names)}")
        L["extra_names"] = extra_names
        L["values"] = np.concatenate([values, np.array(_align(EXTRA_FILE, dict(zip(extra_files, extra)), files))
                                      .reshape(len(files), len(extra_names))], 1)
    if (root / LANDMARK_FILE).is_file():
        landmarks = _align(LANDMARK_FILE, _parse_landmarks(root / LANDMARK_FILE), files)
        L["landmarks"] = np.stack(landmarks) if files else None
    if (root / IDENTITY_FILE).is_file():
        L["identities"] = _align(IDENTITY_FILE, _parse_pairs(root / IDENTITY_FILE, "identity"), files)
    if (root / SPLIT_FILE).is_file():
        L["split"] = _align(SPLIT_FILE, _parse_pairs(root / SPLIT_FILE, "split", set(SPLITS.values())), files)
    if (root / CAPTION_FILE).is_file():
        L["captions"] = _align(CAPTION_FILE, _parse_captions(root / CAPTION_FILE), files)
    if L["split"] is None or L["identities"] is None:
        split, ids = _from_celeba_mapping(root, files)
        L["split"] = L["split"] if L["split"] is not None else split
        L["identities"] = L["identities"] if L["identities"] is not None else ids
    return L


def validate_layout(root):
    """Check a dataset folder and summarise it; raises DatasetLayoutError naming what is wrong."""
    L = _load_layout(root)
    cfg_path = L["root"] / "config.json"
    config = read_json(cfg_path, error=DatasetLayoutError, fix="It only records how the folder was made: delete "
                       "it, or make the folder again.") if cfg_path.is_file() else {}
    split = L["split"]
    image_size = None
    if L["paths"]:
        with Image.open(L["paths"][0]) as im:
            image_size = im.size
    return dict(
        root=str(L["root"]), kind="synthfaces" if "renderer_version" in config else "celeba_hq",
        n_images=len(L["files"]), image_size=image_size, attribute_names=L["attribute_names"],
        extra_attribute_names=L["extra_names"], has_landmarks=L["landmarks"] is not None,
        has_identities=L["identities"] is not None, has_split=split is not None,
        has_captions=L["captions"] is not None,
        split_counts={k: int(sum(s == v for s in split)) for k, v in SPLITS.items()} if split else None,
        n_identities=len(set(L["identities"])) if L["identities"] is not None else None, config=config)


class FaceDataset(torch.utils.data.Dataset):
    """Images and labels of a CelebAMask-HQ-layout folder (real CelebA-HQ or SynthFaces).

    Items: img float [3, size, size] in [-1, 1] (antialiased resize), attrs float 0/1 over
    `attribute_names` (the 40 CelebA columns, then extra columns when present; constant -1 columns
    read as 0), landmarks [5, 2] in pixels of the `size` image (NaN when absent), identity (-1 when
    absent), index (row in the annotation file), filename, caption (one of the image's captions at
    random, "" when absent). split: "train" | "val" | "test" | "all". hflip mirrors half the items
    (landmarks follow, left/right points swapped). in_memory keeps decoded images as uint8.
    """

    def __init__(self, root, split="train", size=64, hflip=False, in_memory=False):
        L = _load_layout(root)
        self.root, self.size, self.hflip = L["root"], size, hflip
        n = len(L["files"])
        if split == "all":
            rows = np.arange(n)
        elif split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS) + ['all']}, got {split!r}")
        elif L["split"] is None:
            warnings.warn(f"{self.root} has no {SPLIT_FILE}: every image counts as train "
                          f"(split={split!r} gets {n if split == 'train' else 0} images)")
            rows = np.arange(n) if split == "train" else np.arange(0)
        else:
            rows = np.flatnonzero(np.array(L["split"]) == SPLITS[split])
        self.rows = rows
        self.attribute_names = L["attribute_names"] + L["extra_names"]
        self.filenames = [L["files"][r] for r in rows]
        self.paths = [L["paths"][r] for r in rows]
        self.attributes = torch.from_numpy((L["values"][rows] == 1).astype(np.float32))
        self.constant_attributes = [a for a, col in zip(self.attribute_names, L["values"].T)
                                    if len(col) and (col == col[0]).all()]   # e.g. SynthFaces' Attractive
        self.identities = torch.tensor([L["identities"][r] for r in rows] if L["identities"] is not None
                                       else [-1] * len(rows), dtype=torch.long)
        self.landmarks = None if L["landmarks"] is None else torch.from_numpy(L["landmarks"][rows])
        self.captions = None if L["captions"] is None else [L["captions"][r] for r in rows]
        self._cache = [self._load(i) for i in range(len(rows))] if in_memory else None

    def __len__(self):
        return len(self.rows)

    def _load(self, i):
        """uint8 [3, size, size] and the scale from stored pixels to `size` pixels."""
        with Image.open(self.paths[i]) as im:
            im = im.convert("RGB")
            scale = self.size / im.width
            if im.size != (self.size, self.size):
                im = im.resize((self.size, self.size), Image.Resampling.LANCZOS)
            return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1), scale

    def __getitem__(self, i):
        img, scale = self._cache[i] if self._cache is not None else self._load(i)
        img = img.float() / 127.5 - 1
        lm = self.landmarks[i] * scale if self.landmarks is not None else torch.full((5, 2), float("nan"))
        if self.hflip and torch.rand(()) < 0.5:
            img = img.flip(-1)
            lm = lm[[1, 0, 2, 4, 3]] * torch.tensor([-1.0, 1.0]) + torch.tensor([float(self.size), 0.0])
        caption = ""
        if self.captions is not None and self.captions[i]:
            caption = self.captions[i][int(torch.randint(len(self.captions[i]), ()))]
        return dict(img=img, attrs=self.attributes[i], landmarks=lm, identity=int(self.identities[i]),
                    index=int(self.rows[i]), filename=self.filenames[i], caption=caption)


def _resize_one(job):
    src, dst, size = job
    with Image.open(src) as im:
        w = im.width
        im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS).save(dst)
    return w


def resize_dataset(src, dst, size=256, workers=2, progress=True):
    """Write a copy of a CelebAMask-HQ-layout folder at `size` px (PNG, lossless), same layout.

    Used to bring real CelebA-HQ (1024 px JPEGs) to the working resolution once. Landmarks are
    scaled; a split/identities derived from CelebA's mapping files are written out explicitly.
    Reuses `dst` when its config.json says it was made from `src` at `size`.
    """
    from tqdm.auto import tqdm
    src, dst = Path(src), Path(dst)
    config = dict(resized_from=str(src.resolve()), size=size)
    try:  # reuse dst only when its config.json says so; a missing or damaged one means copy again
        if json.loads((dst / "config.json").read_text()) == config:
            return dst
    except (OSError, ValueError):
        pass
    L = _load_layout(src)
    tmp = dst.parent / f".{dst.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / IMG_DIR).mkdir(parents=True)
    try:
        new = [os.path.splitext(f)[0] + ".png" for f in L["files"]]
        jobs = [(p, tmp / IMG_DIR / f, size) for p, f in zip(L["paths"], new)]
        if workers > 1:
            with Pool(workers) as pool:
                it = pool.imap(_resize_one, jobs, chunksize=8)
                widths = list(tqdm(it, total=len(jobs), disable=not progress))
        else:
            widths = [_resize_one(j) for j in tqdm(jobs, disable=not progress)]
        k = len(L["attribute_names"])
        for name, cols, vals in ((ATTR_FILE, L["attribute_names"], L["values"][:, :k]),
                                 (EXTRA_FILE, L["extra_names"], L["values"][:, k:])):
            if cols:
                rows = [f"{f}  " + " ".join(str(int(v)) for v in row) for f, row in zip(new, vals)]
                (tmp / name).write_text("\n".join([str(len(new)), " ".join(cols)] + rows) + "\n")
        if L["landmarks"] is not None:
            rows = [f"{f} " + " ".join(f"{v * size / w:.2f}" for v in lm.ravel())
                    for f, lm, w in zip(new, L["landmarks"], widths)]
            (tmp / LANDMARK_FILE).write_text("\n".join([str(len(new)), LANDMARK_HEADER] + rows) + "\n")
        for name, table in ((IDENTITY_FILE, L["identities"]), (SPLIT_FILE, L["split"])):
            if table is not None:
                (tmp / name).write_text("".join(f"{f} {v}\n" for f, v in zip(new, table)))
        if L["captions"] is not None:
            (tmp / CAPTION_FILE).write_text("".join(json.dumps({"file": f, "captions": c}) + "\n"
                                                    for f, c in zip(new, L["captions"])))
        (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n")
        shutil.rmtree(dst, ignore_errors=True)
        tmp.rename(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


def load_tensors(root, split="train", size=64):
    """A whole split in memory: uint8 images [N, 3, size, size], 0/1 attrs, identities, captions, names.
    Training the small SynthFaces models reads every image many times; decoding once is much faster."""
    ds = FaceDataset(root, split, size, in_memory=True)
    images = torch.stack([img for img, _ in ds._cache]) if len(ds) else torch.zeros(0, 3, size, size, dtype=torch.uint8)
    out = dict(images=images, attrs=ds.attributes, identities=ds.identities, captions=ds.captions,
               attribute_names=ds.attribute_names)
    if (Path(root) / "config.json").is_file():  # SynthFaces: each person's identity traits, from the renderer
        from .synthfaces import identity_traits_of
        traits = identity_traits_of(root)
        rows = [traits[f] for f in ds.filenames]
        out["trait_classes"] = torch.tensor([c for c, _ in rows], dtype=torch.long).view(len(rows), -1)
        out["face_shape"] = torch.tensor([s for _, s in rows], dtype=torch.float32).view(len(rows), -1)
        from .render import DOMAINS, MEASURES
        from .synthfaces import domains_of, face_measures_of
        measures, domains = face_measures_of(root), domains_of(root)
        out["measures"] = torch.tensor([measures[f] for f in ds.filenames], dtype=torch.float32).view(-1, len(MEASURES))
        out["domains"] = torch.tensor([DOMAINS.index(domains[f]) for f in ds.filenames], dtype=torch.long)
    return out
