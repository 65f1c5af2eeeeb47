"""The training loop every SynthFaces trainer shares: progress bar, losses logged to a file, a checkpoint
every N steps written atomically, and exact resume.

Exact resume means a run killed at any point and restarted continues with the very numbers an
uninterrupted run would have produced. Three things make that hold:
- the checkpoint holds every module, every optimiser, the step and the global torch RNG states;
- data order is a pure function of (seed, step) (`batch_indices`), so there is no loader state to save;
- all other randomness (z, noise, augmentation) draws from the global torch RNG, which is restored.
"""
import contextlib
import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import dist
from ..files import BadJSONError, atomic_write, write_json
from ..weights.checkpoints import load_checkpoint


def atomic_save(obj, path):
    """torch.save through a temp file + rename: a crash or a full disk mid-write never leaves a broken checkpoint,
    and the previous one stays; a failed write raises an OSError that names the path and says what to do."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(obj, f))  # a file object: torch.save(path) hides ENOSPC


def batch_indices(n, batch, step, seed):
    """Indices of the batch at `step`: epochs are permutations seeded by (seed, epoch)."""
    per_epoch = n // batch
    if per_epoch == 0:
        raise ValueError(f"batch {batch} is larger than the dataset ({n} items)")
    epoch, k = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return perm[k * batch:(k + 1) * batch]


def batch_at(images, batch, step, seed, device):
    """The step's batch of uint8 images [N, 3, S, S] -> (indices, float images in [-1, 1] on device),
    channels_last, the layout oneDNN and cuDNN convolve fastest (convs keep their input's layout). Under
    torchrun: this rank's slice of the global batch (styleclip_utils.dist)."""
    idx = dist.shard(batch_indices(len(images), batch, step, seed))
    x = images[idx].to(device).float() / 127.5 - 1
    return idx, x.contiguous(memory_format=torch.channels_last)


class Trainer:
    """Owns modules + optimisers + step; `run(step_fn, steps)` calls `step_fn(step) -> {loss: float}`.

    Files in out_dir: `checkpoint.pt` (latest, atomic), `log.jsonl` (one line per logged step),
    `config.json` (what the run was asked to do).

    Under torchrun (styleclip_utils.dist) every rank runs the same loop on its slice of each batch; the
    gradients are averaged over ranks before every optimiser step, the logged losses are the ranks' mean, and
    only rank 0 writes files. A checkpoint resumes on any number of processes that divides the batch: every
    rank's RNG holds what one process's would (dist's rule), so the run goes on as it would have."""

    def __init__(self, out_dir, modules, optimizers, config, seed=0, device="cpu", ckpt_every=500,
                 log_every=10, progress=True):
        self.out_dir = Path(out_dir)
        self.modules, self.optimizers = modules, optimizers
        # JSON-normalised (dict keys become strings) so it compares equal after a save/load round trip
        self.config = json.loads(json.dumps(config, default=str))
        self.seed, self.device = seed, torch.device(device)
        self.ckpt_every, self.log_every, self.progress = ckpt_every, log_every, progress
        self.step, self.elapsed = 0, 0.0
        self.ckpt_path = self.out_dir / "checkpoint.pt"
        self.main = dist.is_main()   # only rank 0 writes
        self.out_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(seed)
        if dist.world_size() > 1 and self.device.type == "cuda":  # BatchNorm over the global batch (GPUs only:
            for m in modules.values():                              # on CPU each rank normalises its slice)
                torch.nn.SyncBatchNorm.convert_sync_batchnorm(m)
        for opt in optimizers.values():  # gradients averaged over ranks right before each step (no-op alone)
            if isinstance(opt, torch.optim.Optimizer):
                opt.register_step_pre_hook(lambda o, args, kwargs: dist.sync_grads(o))
        if self.ckpt_path.exists():
            self._resume()
        elif self.main:
            write_json(self.out_dir / "config.json", self.config)

    def state(self):
        return dict(step=self.step, elapsed=self.elapsed, config=self.config,
                    modules={k: m.state_dict() for k, m in self.modules.items()},
                    optimizers={k: o.state_dict() for k, o in self.optimizers.items()},
                    rng_cpu=torch.get_rng_state(),
                    rng_cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                    # the trainer's own GPU's state: under torchrun each rank draws on its own GPU, in step with
                    # rank 0's, so rank 0's is every rank's on resume (rng_cuda holds only rank 0's view)
                    **({"rng_device": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {}))

    def save(self):
        if self.main:
            atomic_save(dict(self.state(), world_size=dist.world_size()), self.ckpt_path)

    def _resume(self):
        ckpt = load_checkpoint(self.ckpt_path)
        if ckpt["config"] != self.config:
            raise ValueError(f"{self.ckpt_path} was written by a run with another config; use a new out_dir "
                             f"or delete the checkpoint.\n  checkpoint: {ckpt['config']}\n  now: {self.config}")
        for k, m in self.modules.items():
            m.load_state_dict(ckpt["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(ckpt["optimizers"][k])
        self.step, self.elapsed = ckpt["step"], ckpt["elapsed"]
        torch.set_rng_state(ckpt["rng_cpu"])
        if ckpt["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng_cuda"])
        if "rng_device" in ckpt and self.device.type == "cuda":
            torch.cuda.set_rng_state(ckpt["rng_device"], self.device)
        if ckpt.get("world_size", 1) != dist.world_size() and self.main:
            print(f"note: {self.ckpt_path} was written by {ckpt.get('world_size', 1)} process(es); resuming on "
                  f"{dist.world_size()}: the same run, to floating-point tolerance (the sums of gradients go in "
                  f"another order)")
        if not self.main:
            return
        # Steps logged after the checkpoint are redone by this run: drop them so the log stays one history.
        log = [r for r in read_log(self.out_dir) if r["step"] <= self.step]
        # atomically: a full disk here must not cost the history up to the checkpoint
        atomic_write(self.out_dir / "log.jsonl", lambda f: f.write("".join(json.dumps(r) + "\n" for r in log).encode()))

    def run(self, step_fn, steps, stop_at=None, stop_by=None):
        """Train until `steps` (total, counting resumed ones); `stop_at` (a step) or `stop_by` (a wall-clock
        time, `time.time()`) ends this call earlier with a checkpoint (a time-boxed session: a GPU lease, a
        night), and a later call resumes. Returns the last logged losses."""
        if self.step > steps:  # the returned weights would not be what the caller asked for (and records)
            raise ValueError(f"{self.ckpt_path} is at step {self.step}, beyond the {steps} steps asked for; ask "
                             f"for >= {self.step} steps, or use a new out_dir")
        end = min(steps, stop_at) if stop_at is not None else steps
        logged, saved = {}, self.step
        # rank 0's clock decides a time-boxed stop for every rank (one would otherwise wait for the others)
        go_on = lambda: stop_by is None or dist.agree(time.time() < stop_by)  # noqa: E731
        with (open(self.out_dir / "log.jsonl", "a") if self.main else contextlib.nullcontext()) as log, \
                tqdm(total=steps, initial=self.step, disable=not (self.progress and self.main),
                     desc=self.out_dir.name) as bar:
            while self.step < end and go_on():
                t = time.perf_counter()
                losses = step_fn(self.step)
                self.elapsed += time.perf_counter() - t
                self.step += 1
                bar.update(1)
                if self.step % self.log_every == 0 or self.step == end:
                    logged = {k: round(float(v), 5) for k, v in dist.mean_dict(losses).items()}
                    if self.main:
                        log.write(json.dumps(dict(step=self.step, seconds=round(self.elapsed, 2), **logged)) + "\n")
                        log.flush()
                    bar.set_postfix(logged)
                if self.step % self.ckpt_every == 0 or self.step == end:
                    self.save()
                    saved = self.step
        if saved != self.step:  # stopped by the clock between checkpoints: keep every step done
            self.save()
        dist.barrier()  # the checkpoint is on disk before any rank goes on to read it
        return logged


def read_log(out_dir):
    """The run's logged steps. A cut last line (the run killed mid-write) is dropped: its step is after the
    checkpoint, so a resumed run logs it again; a damaged line elsewhere raises BadJSONError naming it."""
    path = Path(out_dir) / "log.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    log = []
    for k, line in enumerate(lines, 1):
        try:
            log.append(json.loads(line))
        except ValueError as e:
            if k == len(lines):
                break
            raise BadJSONError(f"{path} line {k} is not valid JSON ({e}): the log is damaged. Delete the line "
                               f"(the run and its checkpoint do not need it), or the file") from e
    return log
