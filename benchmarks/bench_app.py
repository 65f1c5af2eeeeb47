"""The upload-and-edit app's latencies, through HTTP on loopback against a served process (SynthFaces preset):
one request at a time per method (global, mapper, photo upload = align + invert, an optimisation job of the
default 40 steps, submit to done), then a bounded load (50 edit requests, 8 concurrent, global and mapper
alternating) for each number of compute workers.

    python benchmarks/bench_app.py [--workers 1 2] [--requests 50] [--concurrency 8]
"""
import argparse
import io
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from styleclip_utils.data.render import photo_scene


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(workers):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "styleclip_utils.app", "--port", str(port), "--device", "cpu",
                             "--workers", str(workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/api/info", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def ms(values):
    return f"{1000 * statistics.median(values):.0f}", f"{1000 * float(np.percentile(values, 95)):.0f}"


def serial(url, reps):
    c = httpx.Client(base_url=url, timeout=600)
    rows = []
    for method in ("global", "mapper"):
        c.post("/api/edit", json=dict(seed=0, method=method))  # warm-up: the text embedding is cached after it
        lat = []
        for i in range(reps):
            t = time.perf_counter()
            assert c.post("/api/edit", json=dict(seed=i, method=method)).status_code == 200
            lat.append(time.perf_counter() - t)
        rows.append((f"edit, {method}", *ms(lat)))
    photo = photo_scene(1, 256)[0]
    lat = []
    for i in range(reps):  # a new JPEG quality each time: new bytes, so never the cached inversion
        buf = io.BytesIO()
        photo.save(buf, format="JPEG", quality=70 + i)
        t = time.perf_counter()
        assert c.post("/api/faces", content=buf.getvalue()).status_code == 200
        lat.append(time.perf_counter() - t)
    rows.append(("upload (align + invert), 1000x800 JPEG", *ms(lat)))
    lat = []
    for i in range(3):
        t = time.perf_counter()
        job = c.post("/api/edit", json=dict(seed=i, method="optimization")).json()
        while not c.get(f"/api/jobs/{job['id']}").json()["done"]:
            time.sleep(0.05)
        lat.append(time.perf_counter() - t)
    rows.append(("optimisation job, 40 steps (submit to done)", *ms(lat)))
    return rows


def load(url, n, concurrency):
    def one(i):
        with httpx.Client(base_url=url, timeout=600) as c:
            t = time.perf_counter()
            r = c.post("/api/edit", json=dict(seed=i, method=("global", "mapper")[i % 2]))
            return time.perf_counter() - t, r.status_code == 200

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        done = list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    lat = [d for d, _ in done]
    return (*ms(lat), f"{n / wall:.1f}", str(sum(not ok for _, ok in done)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    proc, url = start(args.workers[0])
    try:
        print("| one request at a time | p50 ms | p95 ms |\n|---|---|---|")
        for row in serial(url, args.reps):
            print("| " + " | ".join(row) + " |")
    finally:
        proc.terminate()
    print(f"\n| load: {args.requests} requests, {args.concurrency} concurrent | p50 ms | p95 ms | req/s | failures |")
    print("|---|---|---|---|---|")
    for w in args.workers:
        proc, url = start(w)
        try:
            load(url, 16, args.concurrency)  # warm-up
            print(f"| {w} compute worker{'s' if w > 1 else ''} | " + " | ".join(load(url, args.requests, args.concurrency))
                  + " |")
        finally:
            proc.terminate()


if __name__ == "__main__":
    main()
