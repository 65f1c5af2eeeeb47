"""torch.distributed for the trainers and the relevance precompute: one process per device, launched by torchrun.

    torchrun --nproc-per-node 2 -m styleclip_utils.train mapper      # 2 processes (CPU: gloo; GPUs: nccl)

The rule that makes N processes train exactly as one: every step's global batch is the one a single process
would draw, and each rank takes its slice (`shard`: every N-th item).
- Data order is a pure function of (seed, step) (train.loop.batch_indices): every rank computes the global
  indices and keeps its slice.
- Every random draw is made at the global batch size from the global torch RNG, the same on every rank
  (seeded alike), and sliced (`rand`, `randn`, `randint`): each rank's RNG stays in the state a single
  process would have, so a checkpoint written by rank 0 resumes on any world size that divides the batch.
- Losses are means over the rank's slice; gradients are averaged over ranks before each optimiser step
  (`sync_grads`, hooked on every optimiser by train.loop.Trainer): the mean of equal slices' means is the
  global mean. Statistics kept across steps (path-length mean, CLIP feature mean) are averaged too (`mean`).

With one process (no torchrun) every function here is the identity: the trainers run as before.
"""
import contextlib
import os

import torch
import torch.distributed as torch_dist


def world_size():
    return torch_dist.get_world_size() if torch_dist.is_available() and torch_dist.is_initialized() else 1


def rank():
    return torch_dist.get_rank() if torch_dist.is_available() and torch_dist.is_initialized() else 0


def is_main():
    return rank() == 0


def init(device="auto"):
    """Join the process group torchrun describes (WORLD_SIZE, RANK, MASTER_ADDR, ... in the environment) ->
    world size. nccl on GPUs (each rank on cuda:LOCAL_RANK), gloo on CPU. Without torchrun: 1, nothing done."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch_dist.is_initialized():
        return world_size()
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch_dist.init_process_group("nccl" if use_cuda else "gloo")
    return world_size()


def close():
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def barrier():
    if world_size() > 1:
        torch_dist.barrier()


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (renders a dataset, downloads a file), then the others (which find it done)."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def check_batch(batch, what="batch"):
    """A global batch must split evenly over the ranks: equal slices make the mean of means the global mean."""
    w = world_size()
    if batch % w:
        ok = [k for k in range(1, batch + 1) if batch % k == 0]
        raise ValueError(f"the global {what} {batch} does not split over {w} processes: run on a number of "
                         f"processes that divides it ({ok}), or change the batch")
    return batch // w


def shard(x, dim=0):
    """This rank's slice of a global batch (a tensor along `dim`, or a list): every world_size-th item from
    item `rank`. Strided, as StyleGAN2's minibatch-stddev groups are (D.reshape(group, -1, ...)): with 4 images
    a rank, each rank's group is one of a single process's groups."""
    w = world_size()
    if w == 1:
        return x
    check_batch(len(x) if isinstance(x, (list, tuple)) else x.shape[dim])
    r = rank()
    return x[r::w] if isinstance(x, (list, tuple)) else x[(slice(None),) * dim + (slice(r, None, w),)]


def rand(n, *shape, **kw):
    """torch.rand of the global batch (n local items x world size), sliced: the draw one process would make."""
    return shard(torch.rand(n * world_size(), *shape, **kw))


def randn(n, *shape, **kw):
    return shard(torch.randn(n * world_size(), *shape, **kw))


def randint(low, high, n, **kw):
    return shard(torch.randint(low, high, (n * world_size(),), **kw))


def _comm_device():
    """Where a collective's own small tensors live: nccl only moves CUDA tensors."""
    return torch.device("cuda", torch.cuda.current_device()) if torch_dist.get_backend() == "nccl" else torch.device("cpu")


def mean(x):
    """The mean of a tensor over ranks (a statistic every rank must agree on), differentiable-free."""
    if world_size() == 1:
        return x
    y = x.detach().clone()
    torch_dist.all_reduce(y)
    return y / world_size()


def mean_dict(values):
    """{name: float} averaged over ranks (the logged losses): one collective for all of them."""
    if world_size() == 1 or not values:
        return values
    t = torch.tensor([float(v) for v in values.values()], dtype=torch.float64, device=_comm_device())
    torch_dist.all_reduce(t)
    return dict(zip(values, (t / world_size()).tolist()))


def gather_cat(x):
    """The whole global batch from every rank's slice (`shard`'s order undone), with gradients flowing back
    to each slice (a contrastive loss needs the whole batch's features)."""
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather
    return torch.stack(all_gather(x), 1).flatten(0, 1)   # [b, world, ...] -> item m·world + r


def gather_objects(obj):
    """Every rank's `obj` (CPU tensors, numbers, ...), in rank order, on every rank."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    torch_dist.all_gather_object(out, obj)
    return out


def chunk(n):
    """This rank's contiguous part [lo, hi) of n items split over the ranks as evenly as possible."""
    w, r = world_size(), rank()
    return r * n // w, (r + 1) * n // w


def sync_grads(optimizer):
    """Average the gradients of `optimizer`'s parameters over ranks, in one flat all-reduce (as NVlabs'
    stylegan2-ada-pytorch does). Parameters without a gradient keep none: every rank ran the same code, so
    the same ones are None everywhere, and Adam skips them as a single process would."""
    if world_size() == 1:
        return
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch_dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def agree(flag):
    """Rank 0's boolean, on every rank (a wall-clock stop every rank must take at the same step)."""
    if world_size() == 1:
        return flag
    t = torch.tensor([int(bool(flag))], device=_comm_device())
    torch_dist.broadcast(t, 0)
    return bool(t.item())
