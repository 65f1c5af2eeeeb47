"""Timing helpers the benchmark scripts share (run them as `python benchmarks/<script>.py`: this folder is on
their path)."""
import time

import torch


def sync(device):
    """Wait for the device's queued work (a CUDA timing without it measures only the launch)."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats=1):
    """Seconds per call of fn(), after one warm-up call."""
    fn()  # warm-up
    sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - t) / repeats
