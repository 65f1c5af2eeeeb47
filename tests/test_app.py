"""The upload-and-edit app as its users meet it: a server process on localhost (the shipped SynthFaces models)
driven by a real HTTP client, the page in headless Chromium, a bounded load, and the Dockerfile's own steps."""
import contextlib
import io
import json
import os
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from styleclip_utils.app.service import AppConfig, AppError, BoundedCache, parse_params, DEFAULTS
from styleclip_utils.data.render import paste_face, photo_background, photo_scene, sample_face

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 120  # s: loading the models takes ~5 s; a loaded CI machine may take much longer


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(cmd, cwd, env=None, port=None):
    """Start `cmd` (a server listening on `port`), wait until /api/info answers -> its base URL; stop it after."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    t0 = time.time()
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the server exited ({proc.returncode}):\n{proc.stdout.read()}")
            try:
                if httpx.get(url + "/api/info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() - t0 > START_TIMEOUT:
                raise AssertionError(f"the server did not answer within {START_TIMEOUT} s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """The server's working directory and TMPDIR: nothing may be written there."""
    d = tmp_path_factory.mktemp("app")
    (d / "cwd").mkdir()
    (d / "tmp").mkdir()
    return d


@pytest.fixture(scope="module")
def server(scratch):
    port = free_port()
    env = dict(os.environ, TMPDIR=str(scratch / "tmp"), OMP_NUM_THREADS="2")
    cmd = [sys.executable, "-m", "styleclip_utils.app", "--port", str(port), "--device", "cpu"]
    with served(cmd, scratch / "cwd", env, port) as url:
        with httpx.Client(base_url=url, timeout=120) as client:
            yield client


def jpeg(img, quality=92):
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo():
    return jpeg(photo_scene(1, 256)[0])


def png_image(client, url):
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(np.float64)


# ----------------------------------------------------------------------------------------------------
# The API

def test_info_says_what_the_server_runs(server):
    info = server.get("/api/info").json()
    assert info["preset"] == "synthfaces" and info["methods"] == ["global", "mapper", "optimization"]
    assert info["defaults"] == DEFAULTS["synthfaces"] and "red hair" in info["mapper_prompts"]


@pytest.mark.parametrize("method, target", [("global", "face with red hair"), ("mapper", "face with red hair"),
                                            ("mapper", "a person with a clown nose")])
def test_an_instant_edit_of_a_generated_face(server, method, target):
    r = server.post("/api/edit", json=dict(seed=5, method=method, target=target))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["method"] == method and out["face"] == dict(source="seed", seed=5)
    before, after = png_image(server, out["images"]["before"]), png_image(server, out["images"]["after"])
    assert before.shape == after.shape == (256, 256, 3)
    assert np.abs(after - before).mean() > 1.0, "the edit did not change the face"
    s = out["scores"]
    assert s["judged"] is (out["target_attribute"] is not None) and 0 <= s["preserved"] <= 1 and s["realistic"] in (0, 1)
    assert out["timings_ms"]["total"] >= out["timings_ms"]["edit"] > 0
    if method == "mapper":  # the shipped per-prompt mapper when there is one, else the text-conditioned one
        assert out["mapper"] == ("per-prompt mapper 'red hair'" if "red" in target else "text-conditioned mapper")
    assert server.get(f"/api/results/{out['id']}").json() == out


def test_strength_zero_is_no_edit_and_the_sign_goes_both_ways(server):
    def after(strength):
        out = server.post("/api/edit", json=dict(seed=2, strength=strength)).json()
        return png_image(server, out["images"]["before"]), png_image(server, out["images"]["after"])

    before, same = after(0)
    np.testing.assert_array_equal(before, same)
    _, plus = after(3)
    _, minus = after(-3)
    assert np.abs(plus - minus).mean() > np.abs(plus - before).mean() * 0.5


def test_upload_a_photo_then_edit_it(server, photo):
    r = server.post("/api/faces", content=photo, headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text
    face = r.json()
    assert face["source"] == "upload" and face["size"] == [1000, 800] and not face["cached"]
    assert face["timings_ms"]["align"] > 0 and face["timings_ms"]["invert"] > 0
    aligned = png_image(server, face["images"]["photo"])
    assert aligned.std() > 10  # a face, not a blank
    assert server.post("/api/faces", content=photo).json()["cached"]  # the same bytes: aligned once
    out = server.post("/api/edit", json=dict(face=face["id"], target="face with blond hair", strength=3)).json()
    assert out["face"] == dict(source="upload", id=face["id"]) and out["images"]["photo"]
    np.testing.assert_array_equal(png_image(server, out["images"]["photo"]), aligned)
    assert np.abs(png_image(server, out["images"]["after"]) - png_image(server, out["images"]["before"])).mean() > 1


def wait_job(client, job_id, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["done"]:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def test_optimization_runs_as_a_job(server):
    r = server.post("/api/edit", json=dict(seed=3, method="optimization", steps=6, target="bald"))
    assert r.status_code == 202 and r.headers["location"] == f"/api/jobs/{r.json()['id']}"
    job = wait_job(server, r.json()["id"])
    assert job["state"] == "done" and job["step"] == job["steps"] == 6 and job["progress"] == 1.0
    out = job["result"]
    assert out["method"] == "optimization" and out["steps"] == 6 and out["target_attribute"] == "Bald"
    first, last = out["clip_loss"]
    assert last < first, "6 steps of optimisation did not lower the CLIP loss"
    assert np.abs(png_image(server, out["images"]["after"]) - png_image(server, out["images"]["before"])).mean() > 0.5


def test_an_optimization_job_can_be_cancelled(server):
    job = server.post("/api/edit", json=dict(seed=3, method="optimization", steps=300)).json()
    while server.get(f"/api/jobs/{job['id']}").json()["step"] < 1:
        time.sleep(0.05)
    assert server.delete(f"/api/jobs/{job['id']}").status_code == 200
    job = wait_job(server, job["id"])
    assert job["state"] == "cancelled" and job["step"] < 300 and job["result"] is None
    assert server.get("/api/jobs/j999999").status_code == 404


def two_faces():
    bg = photo_background(1000, 700, seed=2)
    bg, _ = paste_face(bg, sample_face(1, 256)[0], 1.5, 0, (280, 350))
    bg, _ = paste_face(bg, sample_face(2, 256)[0], 1.5, 0, (720, 350))
    return jpeg(bg)


BAD_UPLOADS = {  # name: (body, status, words the message must contain)
    "not an image": (b"%PDF-1.4 not a photo", 415, "not an image"),
    "corrupt": (None, 415, "truncated or corrupt"),
    "too large": (b"\0" * (11 * 2 ** 20), 413, "limit of 10 MB"),
    "empty": (b"", 422, "empty"),
    "no face": (jpeg(photo_background(640, 480, seed=3)), 422, "no face found"),
    "several faces": (None, 422, "2 faces found"),
    "decompression bomb": (None, 413, "declares too many pixels"),
}


def bomb():
    """A 12000 x 12000 PNG (144 Mpx) of 20 KB: small on the wire, 430 MB once decoded."""
    buf = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("name", BAD_UPLOADS)
def test_a_bad_upload_is_a_4xx_that_says_why(server, photo, name):
    body, status, words = BAD_UPLOADS[name]
    body = {"corrupt": lambda: photo[:len(photo) // 2], "several faces": two_faces,
            "decompression bomb": bomb}.get(name, lambda: body)()
    r = server.post("/api/faces", content=body)
    assert r.status_code == status and words in r.json()["error"], r.text


BAD_EDITS = {  # name: (request, status, words)
    "empty text": (dict(seed=0, target="  "), 422, "target: a prompt is empty"),
    "unknown method": (dict(seed=0, method="diffusion"), 422, "unknown method 'diffusion'"),
    "strength out of range": (dict(seed=0, strength=50), 422, "strength 50 is out of range"),
    "strength not a number": (dict(seed=0, strength="lots"), 422, "strength must be a number"),
    "disentanglement out of range": (dict(seed=0, disentanglement=1.5), 422, "out of range [0, 1)"),
    "disentanglement too high": (dict(seed=0, disentanglement=0.95), 422, "removes every channel"),
    "steps out of range": (dict(seed=0, method="optimization", steps=5000), 422, "steps 5000 is out of range"),
    "same texts": (dict(seed=0, neutral="a face", target="face"), 422, "say the same thing"),
    "no face or seed": (dict(target="bald"), 422, "either face"),
    "unknown face": (dict(face="p0000"), 404, "upload the photo again"),
    "unknown parameter": (dict(seed=0, alpha=2), 422, "unknown parameters ['alpha']"),
    "not an object": ([1, 2], 422, "must be a JSON object"),
}


@pytest.mark.parametrize("name", BAD_EDITS)
def test_a_bad_edit_is_a_4xx_that_says_why(server, name):
    body, status, words = BAD_EDITS[name]
    r = server.post("/api/edit", json=body)
    assert r.status_code == status and words in r.json()["error"], r.text


def test_a_chunked_upload_is_cut_at_the_limit(server):
    """No Content-Length (chunked transfer): the body is counted as it streams and refused past the limit."""
    r = server.post("/api/faces", content=iter([b"\0" * 2 ** 20] * 11))
    assert r.status_code == 413 and "limit of 10 MB" in r.json()["error"]


def test_bad_json_and_unknown_images(server):
    r = server.post("/api/edit", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON object" in r.json()["error"]
    assert server.get("/api/results/r999999/after.png").status_code == 404
    assert server.get("/api/secrets/x/after.png").status_code == 404


def test_the_server_writes_nothing_to_disk(server, scratch, photo):
    server.post("/api/faces", content=photo)
    server.post("/api/faces", content=photo[: len(photo) // 3])
    written = [p for d in ("cwd", "tmp") for p in (scratch / d).rglob("*") if p.is_file()]
    assert not written  # (torch makes an empty torchinductor_<user> folder in TMPDIR at import: no file)


def test_concurrent_requests_get_the_answers_of_serial_ones(server):
    """Eight at once, of two methods, through one server: each equals the same request made alone."""
    reqs = [dict(seed=10 + i % 4, method=("global", "mapper")[i % 2], target="face with gray hair") for i in range(16)]
    alone = [server.post("/api/edit", json=r).json() for r in reqs[:4]]

    def post(r):
        with httpx.Client(base_url=str(server.base_url), timeout=120) as c:
            return c.post("/api/edit", json=r).json()

    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(post, reqs))
    for i, out in enumerate(together):
        ref = alone[i % 4]
        assert out["scores"] == {**ref["scores"], "seconds": out["scores"]["seconds"]}
        np.testing.assert_array_equal(png_image(server, out["images"]["after"]), png_image(server, ref["images"]["after"]))


def load_test(base_url, n=50, concurrency=8, methods=("global", "mapper")):
    """n edit requests, `concurrency` at a time, over loopback -> (latencies in s, failures, wall s)."""
    def one(i):
        with httpx.Client(base_url=base_url, timeout=120) as c:
            t = time.perf_counter()
            r = c.post("/api/edit", json=dict(seed=i, method=methods[i % len(methods)], target="face with red hair"))
            return time.perf_counter() - t, r.status_code

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        done = list(pool.map(one, range(n)))
    return [d for d, _ in done], sum(s != 200 for _, s in done), time.perf_counter() - t0


def test_a_bounded_load_has_no_failures(server):
    lat, failures, wall = load_test(str(server.base_url))
    p50, p95 = statistics.median(lat), float(np.percentile(lat, 95))
    print(f"\nload: 50 requests, 8 concurrent: p50 {1000 * p50:.0f} ms, p95 {1000 * p95:.0f} ms, "
          f"{50 / wall:.1f} req/s, {failures} failures")
    assert failures == 0 and len(lat) == 50


# ----------------------------------------------------------------------------------------------------
# The service's pieces, in process

def test_parse_params_fills_the_defaults_and_refuses_bad_values():
    p = parse_params(dict(seed=7), DEFAULTS["synthfaces"])
    assert (p.method, p.strength, p.disentanglement, p.steps, p.seed) == ("global", 1.5, 0.25, 40, 7)
    assert parse_params(dict(seed=7, method="mapper"), DEFAULTS["synthfaces"]).strength == 1.0
    for bad in (dict(seed=-1), dict(seed=1.5), dict(seed=0, steps=True), dict(seed=0, strength=float("nan")),
                dict(seed=0, target="x" * 500), dict(seed=0, face="p1")):
        with pytest.raises(AppError) as e:
            parse_params(bad, DEFAULTS["synthfaces"])
        assert e.value.status == 422


def test_a_tiny_second_detection_is_not_a_second_face():
    from styleclip_utils.app.service import _faces
    big, small = [0, 0, 100, 100], [300, 300, 309, 309]   # 81 px^2: 0.8% of the face
    assert _faces(dict(boxes=[big, small])) == 1 and _faces(dict(boxes=[big, [200, 0, 290, 90]])) == 2


def test_bounded_cache_keeps_the_latest():
    c = BoundedCache(2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # a is now the newest
    c.put("c", 3)
    assert (c.get("a"), c.get("b"), c.get("c"), len(c)) == (1, None, 3, 2)


def test_a_full_job_queue_refuses_with_429_and_a_queued_job_cancels_without_starting():
    import threading
    from styleclip_utils.app.jobs import JobQueue

    class BlockingService:  # the queue's only contract with the service: check() then edit(params, job=)
        def __init__(self):
            self.release, self.started = threading.Event(), []

        def check(self, params):
            return type("P", (), dict(steps=3, name=params))()

        def edit(self, p, job):
            self.started.append(p.name)
            assert self.release.wait(10)
            return dict(name=p.name)

    service = BlockingService()
    jobs = JobQueue(service, max_queued=2)
    try:
        first, second = jobs.submit("a"), jobs.submit("b")
        with pytest.raises(AppError) as e:
            jobs.submit("c")
        assert e.value.status == 429 and "at most 2" in e.value.message
        assert jobs.cancel(second.id).state == "cancelled"
        third = jobs.submit("d")  # the cancelled job freed its place
        service.release.set()
        for _ in range(200):
            if jobs.get(third.id).state == "done":
                break
            time.sleep(0.05)
        assert [jobs.get(j.id).state for j in (first, second, third)] == ["done", "cancelled", "done"]
        assert service.started == ["a", "d"] and jobs.get(third.id).result == dict(name="d")
        with pytest.raises(AppError) as e:
            jobs.get("j999999")
        assert e.value.status == 404
    finally:
        service.release.set()
        jobs.shutdown()


def test_app_config_refuses_bad_values():
    for bad in (dict(preset="celeba"), dict(workers=0), dict(max_upload_mb=0), dict(max_results=0)):
        with pytest.raises(ValueError):
            AppConfig(**bad)


def test_the_cli_refuses_a_bad_mapper_argument():
    r = subprocess.run([sys.executable, "-m", "styleclip_utils.app", "--mapper", "no-path"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "--mapper takes PROMPT=PATH" in r.stderr


# ----------------------------------------------------------------------------------------------------
# The page, in a real browser

def chromium():
    for binary in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(binary) and shutil.which("chromedriver"):
            return shutil.which(binary), shutil.which("chromedriver")
    return None


def test_the_page_edits_an_uploaded_photo(server, photo, tmp_path):
    found = chromium()
    if found is None:
        pytest.skip("no browser: install Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver; .ci/run does) to run the page's test")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,800"):
        options.add_argument(a)
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    try:
        by_id = lambda i: driver.find_element(By.ID, i)  # noqa: E731
        wait = WebDriverWait(driver, 60)
        driver.get(str(server.base_url) + "/")
        wait.until(lambda d: "preset synthfaces" in by_id("about").text and by_id("after").get_attribute("src"))
        (tmp_path / "me.jpg").write_bytes(photo)
        by_id("photo").send_keys(str(tmp_path / "me.jpg"))
        wait.until(lambda d: "photo inverted" in by_id("before-caption").text)
        loaded = "return [arguments[0].complete, arguments[0].naturalWidth]"
        wait.until(lambda d: d.execute_script(loaded, by_id("after")) == [True, 256])
        assert not by_id("photo-figure").get_attribute("hidden")
        assert "same person" in by_id("scores").text and "global" in by_id("status").text
        first = by_id("after").get_attribute("src")
        target = by_id("target")
        target.clear()
        target.send_keys("face with blond hair")
        by_id("edit").click()
        wait.until(lambda d: by_id("after").get_attribute("src") != first)
        assert '"face with blond hair"' in by_id("status").text
        target.clear()
        by_id("edit").click()
        wait.until(lambda d: "prompt is empty" in by_id("error").text)
        driver.save_screenshot(str(tmp_path / "page.png"))
    finally:
        driver.quit()


# ----------------------------------------------------------------------------------------------------
# The container: the Dockerfile's own steps, in a fresh environment (no docker daemon here)

def dockerfile_steps(path):
    """The Dockerfile's instructions -> [(INSTRUCTION, argument)], continuation lines joined."""
    text = re.sub(r"\\\n", " ", Path(path).read_text())
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, arg = line.partition(" ")
            steps.append((word.upper(), arg.strip()))
    return steps


def test_the_dockerfile_installs_and_starts_the_app(tmp_path):
    """COPY, RUN and CMD as docker would run them, in a fresh venv. The venv sees the test environment's
    packages through a .pth file (no download of torch), so pip installs what the Dockerfile itself asks."""
    steps = dockerfile_steps(ROOT / "Dockerfile")
    kinds = [k for k, _ in steps]
    assert kinds[0] == "FROM" and "CMD" in kinds and kinds.count("WORKDIR") == 1
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    vpy = venv / "bin" / "python"
    site = subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "parent_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    workdir, env, cmd = None, dict(os.environ, PATH=f"{venv / 'bin'}:{os.environ['PATH']}"), None
    env.pop("PYTHONPATH", None)
    for kind, arg in steps:
        if kind == "WORKDIR":
            workdir = tmp_path / arg.lstrip("/")
            workdir.mkdir(parents=True)
        elif kind == "ENV":
            env.update(dict(kv.split("=", 1) for kv in shlex.split(arg)))
        elif kind == "COPY":
            *sources, dest = shlex.split(arg)
            for src in sources:
                target = workdir / dest / Path(src).name if dest.endswith("/") else workdir / dest
                (shutil.copytree if (ROOT / src).is_dir() else shutil.copy2)(ROOT / src, target)
        elif kind == "RUN":
            r = subprocess.run(arg, shell=True, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
            assert r.returncode == 0, f"RUN {arg} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        elif kind == "CMD":
            cmd = json.loads(arg)
    port = free_port()
    cmd = [c.replace("0.0.0.0", "127.0.0.1").replace("8000", str(port)) for c in cmd]
    with served(cmd, workdir, env, port) as url:
        info = httpx.get(url + "/api/info").json()
        assert Path(info["package_root"]) == workdir, "the server did not run the copy the Dockerfile installed"
        r = httpx.post(url + "/api/edit", json=dict(seed=1, target="face with red hair"), timeout=60)
        assert r.status_code == 200 and r.json()["scores"]["judged"]


# ----------------------------------------------------------------------------------------------------
# preset "ffhq": the real pipeline's file formats (random weights of the official layouts)

@pytest.mark.slow
def test_the_ffhq_preset_serves_the_official_files(official_files, tmp_path, photo):
    """The server on a 256 px config-f, ViT-B/32, IR-SE50, an e4e file, an official mapper and a relevance
    computed for them: every method answers, scored by the open measures (FFHQ has no judges)."""
    import torch

    from styleclip_utils.edit import global_directions as gd
    from styleclip_utils.weights.official import load_stylegan2, load_vit_b32

    G, clip_model = load_stylegan2(str(official_files["generator"])), load_vit_b32(str(official_files["clip"]))
    torch.manual_seed(0)
    rel = gd.compute_relevance(G, clip_model, method="exact", n_images=1, stats_images=64, n_channels=6, batch=16,
                               progress=False)  # notebook 05's test: 6 channels, exact (the Jacobian needs GBs here)
    rel.save(tmp_path / "relevance.safetensors")
    port = free_port()
    cmd = [sys.executable, "-m", "styleclip_utils.app", "--port", str(port), "--device", "cpu", "--preset", "ffhq",
           "--generator", str(official_files["generator"]), "--clip", str(official_files["clip"]),
           "--arcface", str(official_files["arcface"]), "--encoder", str(official_files["e4e"]),
           "--relevance", str(tmp_path / "relevance.safetensors"), "--mapper", f"afro={official_files['mapper']}"]
    with served(cmd, tmp_path, None, port) as url, httpx.Client(base_url=url, timeout=300) as c:
        info = c.get("/api/info").json()
        assert info["preset"] == "ffhq" and info["size"] == 256 and info["mapper_prompts"] == ["afro"]
        assert info["methods"] == ["global", "mapper", "optimization"] and not info["conditioned_mapper"]
        face = c.post("/api/faces", content=photo).json()
        for req in (dict(face=face["id"], target="a face with a beard", disentanglement=0.0),
                    dict(seed=1, method="mapper", target="afro"), dict(seed=1, method="optimization", steps=2)):
            r = c.post("/api/edit", json=req)
            out = wait_job(c, r.json()["id"])["result"] if r.status_code == 202 else r.json()
            assert r.status_code in (200, 202) and out["scored_by"] == "open measures", r.text
            assert out["target_attribute"] is None and out["scores"]["judged"] is False
            assert -1 <= out["scores"]["clip_score"] <= 1 and -1 <= out["scores"]["id_similarity"] <= 1.001
            assert png_image(c, out["images"]["after"]).shape == (256, 256, 3)
        r = c.post("/api/edit", json=dict(seed=1, method="mapper", target="a bald face"))
        assert r.status_code == 422 and "mappers for ['afro']" in r.json()["error"]
