"""torch.distributed on CPU (gloo, 2 processes launched by torchrun): the same training as one process, a
killed run that resumes, a checkpoint that moves between world sizes, the sharded relevance precompute, and
`torchrun -m styleclip_utils.train RECIPE`. The runs are tests/dist_worker.py's (tiny models, seconds each)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_CLASSIFIER_RECIPE, write_recipe
from styleclip_utils import dist

HERE = Path(__file__).parent
ENV = dict(os.environ, OMP_NUM_THREADS="1")
# measured on 2 CPU cores: the GAN's weights after 4 steps differ from one process's by <= 9e-6 relative, the
# mapper's by <= 8e-7 (the gradients' sums go in another order); these bounds leave an order of magnitude
GAN_TOL, MAPPER_TOL = 1e-4, 1e-5


def launch(args, nproc, check=True):
    cmd = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
                              if nproc > 1 else []) + args
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600, cwd=HERE.parent)
    if check:
        assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def worker(what, out, nproc, *extra, check=True):
    return launch([str(HERE / "dist_worker.py"), what, str(out), *extra], nproc, check)


def checkpoint(out):
    return torch.load(Path(out) / "checkpoint.pt", map_location="cpu", weights_only=True)


def max_rel_diff(a, b):
    """The largest |a - b| of any float tensor of the two checkpoints' modules, relative to that tensor's size."""
    worst = 0.0
    for m, sd in a["modules"].items():
        assert sd.keys() == b["modules"][m].keys()
        for k, v in sd.items():
            if v.is_floating_point():
                worst = max(worst, float((v - b["modules"][m][k]).abs().max() / (v.abs().max() + 1e-12)))
    return worst


def log(out):
    return [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    for what in ("gan", "mapper"):
        for n in (1, 2):
            worker(what, root / f"{what}{n}", n)
    return root


@pytest.mark.parametrize("what, tol", [("gan", GAN_TOL), ("mapper", MAPPER_TOL)])
def test_two_processes_train_as_one(runs, what, tol):
    one, two = checkpoint(runs / f"{what}1"), checkpoint(runs / f"{what}2")
    assert one["step"] == two["step"] == 4 and two["world_size"] == 2 and one["world_size"] == 1
    diff = max_rel_diff(one, two)
    print(f"\n{what}: 2 processes vs 1 after 4 steps: max relative weight difference {diff:.2e}")
    assert diff < tol
    assert torch.equal(one["rng_cpu"], two["rng_cpu"])  # the RNG went through the same draws
    for a, b in zip(log(runs / f"{what}1"), log(runs / f"{what}2")):  # the logged losses are the global batch's
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-3 for k in a if k != "seconds")


def test_a_killed_two_process_run_resumes_as_if_never_stopped(runs, tmp_path):
    r = worker("gan", tmp_path, 2, "--die-at", "3", check=False)  # rank 1 dies in step 4; the checkpoint is step 2's
    assert r.returncode != 0 and checkpoint(tmp_path)["step"] == 2
    worker("gan", tmp_path, 2)
    assert max_rel_diff(checkpoint(runs / "gan2"), checkpoint(tmp_path)) < 1e-6
    assert [row["step"] for row in log(tmp_path)] == [1, 2, 3, 4]  # the redone step 3 logged once


def test_a_checkpoint_moves_to_another_number_of_processes(runs, tmp_path):
    worker("gan", tmp_path, 2, "--steps", "2")
    r = worker("gan", tmp_path, 1)   # steps 3 and 4 on one process
    assert "written by 2 process(es); resuming on 1" in r.stdout
    assert max_rel_diff(checkpoint(runs / "gan1"), checkpoint(tmp_path)) < GAN_TOL


def test_the_sharded_relevance_equals_one_process(tmp_path):
    worker("relevance", tmp_path / "one", 1)
    worker("relevance", tmp_path / "two", 2)
    one, two = torch.load(tmp_path / "one" / "fs.pt"), torch.load(tmp_path / "two" / "fs.pt")
    assert one.shape == (24, 32) and torch.allclose(one, two, atol=1e-6)
    c1, c2 = (torch.load(tmp_path / d / "cache.pt", weights_only=True) for d in ("one", "two"))
    assert c1["key"] == c2["key"] and c1["done"] == c2["done"] == 24  # the same cache file as one process's
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["cache.pt", "fs.pt"]  # chunk caches merged


def test_a_batch_that_does_not_split_is_refused(monkeypatch):
    monkeypatch.setattr(dist, "world_size", lambda: 3)
    with pytest.raises(ValueError, match=r"the global batch 16 does not split over 3 processes: run on a number "
                                         r"of processes that divides it \(\[1, 2, 4, 8, 16\]\)"):
        dist.check_batch(16)


def test_torchrun_trains_a_recipe(tmp_path):
    """The command users run: torchrun -m styleclip_utils.train RECIPE, evaluated and exported by rank 0."""
    recipe = write_recipe(tmp_path / "tiny.toml", TINY_CLASSIFIER_RECIPE)
    r = launch(["-m", "styleclip_utils.train", str(recipe), "--out", str(tmp_path / "runs"), "--no-progress"], 2)
    assert "2 processes, 8 of the global batch of 16 each" in r.stdout
    run = tmp_path / "runs" / "tiny"
    assert checkpoint(run)["step"] == 3 and checkpoint(run)["world_size"] == 2
    assert (run / "metrics.json").is_file() and (run / "classifier.safetensors").is_file()
    assert log(run)[-1]["step"] == 3
