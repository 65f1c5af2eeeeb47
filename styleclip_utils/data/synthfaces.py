"""SynthFaces datasets on disk: render N faces (`render.py`), label them (`attributes.py`), caption them
(`captions.py`) and write everything in CelebAMask-HQ's layout (`layout.py`), so one loader reads both.

    python -m styleclip_utils.data.synthfaces --out DIR --n N --size S --seed K [--domain natural|toon|both]

`--domain both` draws each image in one of the two looks (render.DOMAINS, a fair coin per image) and domains.txt
says which: the data of notebook 06's two-domain generator.
"""
import argparse
import glob
import json
import os
import shutil
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from ..files import pid_alive, read_json
from .attributes import ALL_ATTRIBUTES, CELEBA_ATTRIBUTES, EXTRA_ATTRIBUTES, identity_traits, labels
from .captions import captions
from .render import DOMAINS, MEASURES, RENDERER_VERSION, face_measures, render_face, sample_background, sample_identity, sample_look, sample_pose
# ----------------------------------------------------------------------------------------------------
# Dataset writer (CelebAMask-HQ layout)

IMG_DIR = "CelebA-HQ-img"
ATTR_FILE = "CelebAMask-HQ-attribute-anno.txt"
EXTRA_FILE = "SynthFaces-extra-attribute-anno.txt"
LANDMARK_FILE = "landmarks.txt"
IDENTITY_FILE = "identities.txt"
SPLIT_FILE = "split.txt"
CAPTION_FILE = "captions.jsonl"
DOMAIN_FILE = "domains.txt"
DOMAIN_CHOICES = DOMAINS + ("both",)
LANDMARK_HEADER = ("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
                   "leftmouth_x leftmouth_y rightmouth_x rightmouth_y")
TEST_FRACTION = 0.1


def image_domain(domain, seed, i):
    """The look image i of a set rendered with (`domain`, `seed`) is drawn in."""
    if domain != "both":
        return domain
    return DOMAINS[int(np.random.default_rng([seed, 5, i]).random() < 0.5)]


def _render_item(job):
    i, seed, size, idn, img_dir, domain = job
    rng = np.random.default_rng([seed, 2, i])
    look = sample_look(rng, idn)
    img, lm = render_face(idn, look, sample_pose(rng), size, sample_background(rng), image_domain(domain, seed, i))
    img.save(os.path.join(img_dir, f"{i}.png"))
    lab = labels(idn, look)
    return i, lm, [lab[c] for c in ALL_ATTRIBUTES], captions(lab, np.random.default_rng([seed, 4, i]))


def _attr_table(names, files, rows):
    lines = [str(len(files)), " ".join(names)]
    lines += [f"{f}  " + " ".join("1" if v else "-1" for v in row) for f, row in zip(files, rows)]
    return "\n".join(lines) + "\n"


def generate(out_dir, n=10000, size=64, seed=0, workers=2, progress=True, domain="natural"):
    """Render `n` faces into `out_dir` in CelebAMask-HQ layout and return its Path. `domain`: the look of every
    image (render.DOMAINS), or "both" (a fair coin per image; domains.txt records it).

    Identities: max(n // 10, min(n, 8)) people, each on ~10 images. Split (split.txt, CelebA's
    list_eval_partition convention: 0 train, 2 test) is BY IDENTITY: ~10% of the people and all
    their images are test, so identity verification on test uses people never seen in training.
    Written into a temporary sibling folder, renamed into place at the end: an error or Ctrl-C leaves nothing,
    and the folder of a killed run is removed by the next call (`_remove_stale`).
    """
    from tqdm.auto import tqdm
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n must be a positive number of images, got {n!r}")
    if not (isinstance(size, int) and 16 <= size <= 256):
        raise ValueError(f"size must be an integer number of px in [16, 256] (64 is the default), got {size!r}")
    if domain not in DOMAIN_CHOICES:
        raise ValueError(f"domain must be one of {', '.join(DOMAIN_CHOICES)}, got {domain!r}")
    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    out_dir = Path(out_dir)
    _remove_stale(out_dir)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.time()
    n_ids = max(n // 10, min(n, 8))
    persons = people(seed, n_ids)
    person = np.random.default_rng([seed, 0]).permutation(np.arange(n) % n_ids)
    n_test = max(1, round(TEST_FRACTION * n_ids)) if n_ids > 1 else 0
    test_ids = set(np.random.default_rng([seed, 3]).choice(n_ids, n_test, replace=False).tolist())
    jobs = [(i, seed, size, persons[person[i]], str(tmp / IMG_DIR), domain) for i in range(n)]
    results = [None] * n
    try:
        (tmp / IMG_DIR).mkdir(parents=True)
        if workers > 1:
            with Pool(workers) as pool:
                it = pool.imap_unordered(_render_item, jobs, chunksize=16)
                for r in tqdm(it, total=n, disable=not progress, desc="SynthFaces"):
                    results[r[0]] = r
        else:
            for job in tqdm(jobs, disable=not progress, desc="SynthFaces"):
                r = _render_item(job)
                results[r[0]] = r
        files = [f"{i}.png" for i in range(n)]
        rows = [r[2] for r in results]
        k = len(CELEBA_ATTRIBUTES)
        (tmp / ATTR_FILE).write_text(_attr_table(CELEBA_ATTRIBUTES, files, [row[:k] for row in rows]))
        (tmp / EXTRA_FILE).write_text(_attr_table(EXTRA_ATTRIBUTES, files, [row[k:] for row in rows]))
        (tmp / LANDMARK_FILE).write_text("\n".join(
            [str(n), LANDMARK_HEADER] + [f"{f} " + " ".join(f"{v:.2f}" for v in r[1].ravel())
                                         for f, r in zip(files, results)]) + "\n")
        (tmp / IDENTITY_FILE).write_text("".join(f"{f} {person[i]}\n" for i, f in enumerate(files)))
        (tmp / SPLIT_FILE).write_text("".join(
            f"{f} {2 if person[i] in test_ids else 0}\n" for i, f in enumerate(files)))
        (tmp / DOMAIN_FILE).write_text("".join(f"{f} {image_domain(domain, seed, i)}\n" for i, f in enumerate(files)))
        with open(tmp / CAPTION_FILE, "w") as fh:
            for f, r in zip(files, results):
                fh.write(json.dumps({"file": f, "captions": r[3]}) + "\n")
        seconds = time.time() - t0
        config = dict(n=n, size=size, seed=seed, domain=domain, renderer_version=RENDERER_VERSION, n_identities=n_ids,
                      workers=workers, seconds=round(seconds, 2), images_per_s=round(n / seconds, 1),
                      created=time.strftime("%Y-%m-%dT%H:%M:%S"))
        (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n")
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _remove_stale(out_dir):
    """Remove the `.<name>.tmp-<pid>` / `.<name>.old-<pid>` folders that a killed `generate` (its pid no longer
    running) left beside out_dir: a kill -9 or a lost session runs no `finally`. A live pid's folder is another
    `generate` at work and is left alone. (A pid is only known dead on this machine: do not render into one
    folder from several machines at once.)"""
    for p in out_dir.parent.glob(f".{glob.escape(out_dir.name)}.*-*"):
        kind, _, pid = p.name[len(out_dir.name) + 2:].partition("-")
        if kind in ("tmp", "old") and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def people(seed, n_ids):
    """The identities of a SynthFaces set rendered with `seed` (person k of identities.txt is people[k])."""
    return [sample_identity(np.random.default_rng([seed, 1, k])) for k in range(n_ids)]


def identity_traits_of(root):
    """{file: (trait classes, face shape)} of a SynthFaces folder, from its seed and identities.txt: the identity
    judge's ground truth (the renderer draws each person from (seed, person), so nothing more is stored)."""
    root = Path(root)
    cfg = read_json(root / "config.json", required=("seed", "n_identities"),
                    fix="Render the set again (ensure_synthfaces, or python -m styleclip_utils.data.synthfaces).")
    if cfg.get("renderer_version") != RENDERER_VERSION:
        raise ValueError(f"{root} was rendered by renderer version {cfg.get('renderer_version')}, this code is "
                         f"{RENDERER_VERSION}: render it again (ensure_synthfaces)")
    who = dict(line.split() for line in (root / IDENTITY_FILE).read_text().splitlines() if line.strip())
    persons = people(cfg["seed"], cfg["n_identities"])
    return {f: identity_traits(persons[int(k)]) for f, k in who.items()}


def ensure_synthfaces(out_dir, n=10000, size=64, seed=0, workers=2, progress=True, domain="natural"):
    """Reuse `out_dir` if its config.json matches (n, size, seed, domain, renderer version), else generate."""
    out_dir = Path(out_dir)
    try:
        cfg = json.loads((out_dir / "config.json").read_text())
        if (cfg["n"], cfg["size"], cfg["seed"], cfg.get("domain", "natural"), cfg["renderer_version"]) == (
                n, size, seed, domain, RENDERER_VERSION):
            return out_dir
    except (OSError, ValueError, KeyError):
        pass
    return generate(out_dir, n, size, seed, workers, progress, domain)


def face_measures_of(root):
    """{file: [MEASURES scaled to [0, 1], in MEASURES' order]} of a SynthFaces folder: the measure judge's ground
    truth, drawn again from the set's seed (look and pose come from the image's own random stream)."""
    root = Path(root)
    cfg = read_json(root / "config.json", required=("seed", "n_identities"),
                    fix="Render the set again (ensure_synthfaces, or python -m styleclip_utils.data.synthfaces).")
    who = dict(line.split() for line in (root / IDENTITY_FILE).read_text().splitlines() if line.strip())
    persons = people(cfg["seed"], cfg["n_identities"])
    out = {}
    for f, k in who.items():
        rng = np.random.default_rng([cfg["seed"], 2, int(Path(f).stem)])
        idn = persons[int(k)]
        look = sample_look(rng, idn)
        m = face_measures(idn, look, sample_pose(rng))
        out[f] = [(m[name] - lo) / (hi - lo) for name, (lo, hi, _) in MEASURES.items()]
    return out


def domains_of(root):
    """{file: domain} of a SynthFaces folder (every image "natural" in a set written before domains existed)."""
    path = Path(root) / DOMAIN_FILE
    if not path.is_file():
        return {f: "natural" for f in (line.split()[0] for line in (Path(root) / SPLIT_FILE).read_text().splitlines()
                                        if line.strip())}
    return dict(line.split() for line in path.read_text().splitlines() if line.strip())


def attribute_frequencies(root):
    """Fraction of images with each column set, read back from a written dataset."""
    freq = {}
    for name in (ATTR_FILE, EXTRA_FILE):
        lines = (Path(root) / name).read_text().split("\n")
        vals = np.array([ln.split()[1:] for ln in lines[2:] if ln.strip()], dtype=int)
        freq.update(zip(lines[1].split(), (vals == 1).mean(0)))
    return freq


def main(argv=None):
    ap = argparse.ArgumentParser(description="Render the SynthFaces dataset (CelebAMask-HQ layout).")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--domain", choices=DOMAIN_CHOICES, default="natural",
                    help="the look: natural, toon (cel-shaded, ink outlines), or both (a fair coin per image)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        out = generate(args.out, args.n, args.size, args.seed, args.workers, progress=not args.no_progress,
                       domain=args.domain)
    except ValueError as e:
        ap.error(str(e))  # usage message + exit status 2, no traceback
    cfg = json.loads((out / "config.json").read_text())
    print(f"{cfg['n']} images at {cfg['size']} px in {cfg['seconds']} s: {cfg['images_per_s']} images/s "
          f"with {cfg['workers']} worker(s)")
    freq = attribute_frequencies(out)
    print("attribute frequencies:")
    for k, name in enumerate(sorted(freq, key=freq.get)):
        print(f"  {name:20s} {freq[name]:6.1%}", end="\n" if k % 3 == 2 else "")
    print()


if __name__ == "__main__":
    main()
