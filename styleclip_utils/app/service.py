"""The edit service without the web framework: the models, loaded once, and one call per user action.

    service = EditService(AppConfig(preset="synthfaces"))
    face = service.add_photo(open("me.jpg", "rb").read())         # align (MTCNN) -> invert (e4e) -> W+
    result = service.edit(dict(face=face["id"], target="face with red hair", method="global"))
    result["scores"], service.image(result["images"]["after"])

A face is an uploaded photo (aligned and inverted once, then kept in a bounded cache under its content
hash) or a generated one (`seed`). The methods are StyleCLIP's three: "global" (global directions in
StyleSpace: strength α, disentanglement β), "mapper" (the prompt's own latent mapper when one was trained,
else the text-conditioned mapper; strength α) and "optimization" (the latent optimisation of notebook 03's
recipe, run by app.jobs as a job; strength scales the optimised move). Every edit is scored by the
notebooks' scorecard: the SynthFaces judges, or the open measures under "ffhq".

Every problem with a request raises `AppError(status, message)`: the message says what to do; the HTTP
layer (app.server) only forwards it. Nothing is written to disk: photos are decoded in memory, and faces,
text embeddings and results live in bounded in-memory caches.
"""
import contextlib
import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data import align
from ..data.prompts import check_prompt, normalize
from ..device import resolve_device
from ..edit import global_directions as gd
from ..edit.editor import png_bytes
from ..edit.mapper import apply_mapper
from ..edit.optimize import EditConfig, EditDivergedError, edit as optimize_edit
from ..edit.presets import load_models
from ..edit.scorecard import score_edits, summarize
from ..losses.clip_loss import CLIPLoss, text_features
from ..weights import zoo
from ..weights.official import load_e4e, load_mapper

METHODS = ("global", "mapper", "optimization")
MAX_STRENGTH = 10.0      # |strength| above this only saturates an image (the official GUI's α slider: -10..10)
MAX_STEPS = 300          # the official optimisation's own step count: a longer job only holds the queue
MAX_TEXT = 200           # characters of a text box; CLIP reads 77 tokens at most anyway
MAX_SEED = 2 ** 31 - 1
DISPLAY = 256            # px of the returned PNGs (SynthFaces' 64 px faces are scaled up, nearest)

# Per preset, what an edit uses when the request leaves a knob out: notebook 05's chosen α, β on SynthFaces
# (its α × β search), the official GUI's defaults on FFHQ; notebook 03's optimisation recipe.
DEFAULTS = {
    "synthfaces": dict(neutral="face", target="face with red hair", alpha=1.5, beta=0.25, steps=40),
    "ffhq": dict(neutral="face", target="face with red hair", alpha=4.1, beta=0.15, steps=40),
}
RECIPE = dict(space="s", lr=0.1, l2_lambda=0.008, id_lambda=0.005)  # docs/edit-recipe-search.md (4 CLIP views)
RECIPE_VIEWS = 4


class AppError(Exception):
    """A request the service refuses: `status` is the HTTP code (4xx: the user's input; 503: the server
    lacks a model), the message says what to do."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


class JobCancelled(Exception):
    """Raised inside an optimisation's step callback when its job was cancelled."""


@dataclass
class AppConfig:
    preset: str = "synthfaces"
    device: str = "auto"
    weights_dir: str = ""          # synthfaces: a folder of SynthFaces models (default data/weights/synthfaces)
    generator: str = ""            # ffhq: the files (empty: the registry's cache), as load_models takes them
    clip: str = ""
    arcface: str = ""
    encoder: str = ""              # ffhq: an e4e file (empty: e4e_ffhq_encode.pt from the cache)
    relevance: str = ""            # a Relevance file (notebook 05); synthfaces: the shipped one
    mappers: dict = field(default_factory=dict)  # ffhq: {prompt: official mapper file}
    max_upload_mb: float = 10.0    # the request-size limit
    max_faces: int = 32            # inverted photos kept (each a W+ code and two small PNGs)
    max_results: int = 64          # edit results kept for their images
    workers: int = 2               # instant edits computed at once, more wait (CPU: more only thrash); optimisation
                                   # jobs run one at a time beside them (app.jobs)

    def __post_init__(self):
        if self.preset not in DEFAULTS:
            raise ValueError(f"preset must be one of {list(DEFAULTS)}, got {self.preset!r}")
        for name in ("max_faces", "max_results", "workers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.max_upload_mb > 0:
            raise ValueError(f"max_upload_mb must be > 0, got {self.max_upload_mb!r}")


class BoundedCache:
    """A thread-safe LRU dict of at most `size` items: the service's only storage."""

    def __init__(self, size):
        self.size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key, value):
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self):
        return len(self._items)


@dataclass
class EditParams:
    method: str
    neutral: str
    target: str
    strength: float
    disentanglement: float
    steps: int
    face: str = ""     # an uploaded face's id
    seed: int = -1     # or a generated face's seed


def _number(params, key, default, kind=float):
    value = params.get(key, default)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise AppError(422, f"{key} must be a number, got {value!r}")
    try:
        out = kind(value)
    except (TypeError, ValueError):
        raise AppError(422, f"{key} must be a number, got {value!r}") from None
    if kind is int and out != float(value):
        raise AppError(422, f"{key} must be a whole number, got {value!r}")
    if not np.isfinite(out):
        raise AppError(422, f"{key} must be a finite number, got {value!r}")
    return out


def _text(params, key, default):
    value = params.get(key, default)
    if not isinstance(value, str):
        raise AppError(422, f"{key} must be text, got {value!r}")
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise AppError(422, f"{key} is {len(value)} characters; keep it under {MAX_TEXT} (CLIP reads 77 tokens)")
    try:
        return check_prompt(value)
    except ValueError as e:
        raise AppError(422, f"{key}: {e}") from None


def parse_params(params, defaults):
    """A request's edit parameters (a dict, as sent) -> EditParams, or AppError(422) naming the bad one."""
    if not isinstance(params, dict):
        raise AppError(422, f"the edit request must be a JSON object, got {type(params).__name__}")
    unknown = set(params) - {"method", "neutral", "target", "strength", "disentanglement", "steps", "face", "seed"}
    if unknown:
        raise AppError(422, f"unknown parameters {sorted(unknown)}; the edit takes face or seed, neutral, target, "
                            f"method, strength, disentanglement and steps")
    method = params.get("method", "global")
    if method not in METHODS:
        raise AppError(422, f"unknown method {method!r}; choose one of {list(METHODS)}")
    strength = _number(params, "strength", defaults["alpha"] if method == "global" else 1.0)
    if abs(strength) > MAX_STRENGTH:
        raise AppError(422, f"strength {strength:g} is out of range [-{MAX_STRENGTH:g}, {MAX_STRENGTH:g}]; "
                            f"edits beyond it only saturate the image")
    beta = _number(params, "disentanglement", defaults["beta"])
    if not 0 <= beta < 1:
        raise AppError(422, f"disentanglement (β) {beta:g} is out of range [0, 1): 0 moves every channel the text "
                            f"touches, higher keeps only the most relevant ones (official 0.08-0.3)")
    steps = _number(params, "steps", defaults["steps"], int)
    if not 1 <= steps <= MAX_STEPS:
        raise AppError(422, f"steps {steps} is out of range [1, {MAX_STEPS}] (the official optimisation runs 300)")
    face, seed = params.get("face") or "", params.get("seed")
    if bool(face) == (seed is not None and seed != ""):
        raise AppError(422, "give either face (the id an upload returned) or seed (a generated face), not both "
                            "and not neither")
    if not face:
        seed = _number(params, "seed", 0, int)
        if not 0 <= seed <= MAX_SEED:
            raise AppError(422, f"seed must be in [0, {MAX_SEED}], got {seed}")
    elif not isinstance(face, str):
        raise AppError(422, f"face must be the id string an upload returned, got {face!r}")
    neutral, target = _text(params, "neutral", defaults["neutral"]), _text(params, "target", defaults["target"])
    if normalize(neutral) == normalize(target) and method == "global":
        raise AppError(422, f"neutral {neutral!r} and target {target!r} say the same thing: nothing to edit towards")
    return EditParams(method, neutral, target, strength, beta, steps, face, -1 if face else seed)


SECOND_FACE = 0.1   # a detection counts as another face from 10% of the largest face's box area (MTCNN also
                    # finds tiny "faces" in a background's clutter, which are no reason to refuse a photo)


def _faces(info):
    boxes = np.asarray(info["boxes"], np.float64).reshape(-1, 4)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return int((area >= SECOND_FACE * area.max()).sum())


def _ms(t0):
    return round(1000 * (time.perf_counter() - t0), 1)


def _jsonable(v):
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


class EditService:
    """The loaded models and the three edits (module docstring). Thread-safe: requests may call it at once;
    at most `cfg.workers` compute together."""

    def __init__(self, cfg=AppConfig(), progress=False):
        t0 = time.perf_counter()
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.defaults = DEFAULTS[cfg.preset]
        m = load_models(cfg.preset, self.device, cfg.weights_dir, cfg.generator, cfg.clip, cfg.arcface)
        self.models, self.G, self.clip_model = m, m.G.eval(), m.clip_model.eval()
        root = cfg.weights_dir or None
        if cfg.preset == "synthfaces":
            self.E = zoo.load_encoder(self.device, root)
            rel_path = cfg.relevance or Path(root or zoo.SYNTHFACES_DIR) / "relevance_exact.safetensors"
            self.mappers = {p: zoo.load_mapper(p, self.device, root) for p in zoo.mapper_prompts(root)}
            self.conditioned = zoo.load_conditioned_mapper(self.device, root)
            self.templates = None   # notebook 05: the 79 ImageNet templates
        else:
            self.E = load_e4e(cfg.encoder or "e4e-ffhq-encode", device=self.device, note=False)
            rel_path = cfg.relevance
            self.mappers = {p: load_mapper(path, device=self.device) for p, path in cfg.mappers.items()}
            self.conditioned = None
            self.templates = None
        self.E.eval()
        self.relevance = gd.Relevance.load(rel_path, self.G, self.clip_model).to(self.device) if rel_path else None
        self.faces = BoundedCache(cfg.max_faces)
        self.results = BoundedCache(cfg.max_results)
        self._texts = BoundedCache(256)
        self._compute = threading.BoundedSemaphore(cfg.workers)
        self._counter = 0
        self._counter_lock = threading.Lock()
        align._mtcnn(self.device)  # built now: its lazy cache is not safe against two first requests at once
        self.load_seconds = round(time.perf_counter() - t0, 2)

    # -- what the page needs to know -----------------------------------------------------------------
    def info(self):
        return dict(preset=self.cfg.preset, about=self.models.about, device=str(self.device), size=self.G.size,
                    methods=[m for m in METHODS if self._unavailable(m) is None],
                    unavailable={m: self._unavailable(m) for m in METHODS if self._unavailable(m)},
                    defaults=self.defaults, limits=dict(strength=MAX_STRENGTH, steps=MAX_STEPS, text=MAX_TEXT,
                                                        upload_mb=self.cfg.max_upload_mb, seed=MAX_SEED),
                    mapper_prompts=sorted(self.mappers), conditioned_mapper=self.conditioned is not None,
                    load_seconds=self.load_seconds, package_root=str(Path(__file__).resolve().parents[2]))

    def _unavailable(self, method):
        if method == "global" and self.relevance is None:
            return ("this server has no relevance file for global directions: compute one (notebook 05 or "
                    "scripts/precompute_relevance.py) and start the server with --relevance PATH")
        if method == "mapper" and not self.mappers and self.conditioned is None:
            return "this server has no mapper: start it with --mapper 'PROMPT=PATH' (an official mapper file)"
        return None

    def _next_id(self, kind):
        with self._counter_lock:
            self._counter += 1
            return f"{kind}{self._counter:06d}"

    # -- faces -------------------------------------------------------------------------------------------
    def add_photo(self, data):
        """The bytes of an uploaded image -> {id, ...}: aligned, inverted and cached under its hash."""
        if not data:
            raise AppError(422, "the upload is empty: send the bytes of a JPEG or PNG photo")
        face_id = "p" + hashlib.sha256(data).hexdigest()[:16]
        cached = self.faces.get(face_id)
        if cached is not None:
            return dict(cached["about"], cached=True)
        timings = {}
        with self._compute:
            t0 = time.perf_counter()
            try:
                aligned, info = align.align_face(bytes(data), size=256, device=self.device, return_info=True)
            except align.ImageTooLargeError as e:
                raise AppError(413, str(e)) from None
            except (align.NotAnImageError, align.CorruptImageError, align.UnsupportedImageError) as e:
                raise AppError(415, str(e)) from None
            except align.NoFaceError:
                raise AppError(422, "no face found in the upload: use a frontal, well-lit photo in which the face "
                                    "is at least ~100 px wide") from None
            except align.FaceAlignmentError as e:
                raise AppError(422, str(e)) from None
            faces = _faces(info)
            if faces > 1:
                raise AppError(422, f"{faces} faces found in the upload; crop the photo to the one face "
                                    f"to edit and upload it again")
            timings["align"] = _ms(t0)
            t0 = time.perf_counter()
            x = torch.from_numpy(np.array(aligned)).permute(2, 0, 1)[None].float().div(127.5).sub(1)
            with torch.no_grad():
                ws = self.E(x.to(self.device))
                recon = self.G.synthesis(ws, noise_mode="const")
            timings["invert"] = _ms(t0)
        photo_png = png_bytes(x[0], DISPLAY)
        about = dict(id=face_id, source="upload", size=list(info["image_size"]), timings_ms=timings,
                     notes=list(info["warnings"]), images=dict(photo=f"/api/faces/{face_id}/photo.png",
                                                               before=f"/api/faces/{face_id}/before.png"))
        self.faces.put(face_id, dict(ws=ws, photo=photo_png, before=png_bytes(recon[0], DISPLAY), about=about))
        return dict(about, cached=False)

    @torch.no_grad()
    def _start(self, p):
        """-> (ws [1, n_latent, dim], photo PNG or None, the face's description)."""
        if p.face:
            face = self.faces.get(p.face)
            if face is None:
                raise AppError(404, f"no face {p.face!r} on this server (faces are kept for the last "
                                    f"{self.cfg.max_faces} uploads): upload the photo again")
            return face["ws"], face["photo"], dict(source="upload", id=p.face)
        z = torch.randn(1, self.G.style_dim, generator=torch.Generator().manual_seed(p.seed))
        ws = self.G.broadcast(self.G.mapping(z.to(self.device), 0.7))  # truncation 0.7 as the notebooks' faces
        return ws, None, dict(source="seed", seed=p.seed)

    def image(self, key):
        """A PNG by its address ("/api/faces/<id>/photo.png", "/api/results/<id>/after.png") -> bytes, or
        AppError(404)."""
        parts = key.removeprefix("/api/").split("/")
        store = {"faces": self.faces, "results": self.results}.get(parts[0])
        item = store.get(parts[1]) if store is not None and len(parts) == 3 else None
        name = parts[2].removesuffix(".png") if item is not None else ""
        if item is None or not isinstance(item.get(name), bytes):
            raise AppError(404, f"no image {key!r}: results and faces are kept for a while only; edit again")
        return item[name]

    def result(self, result_id):
        item = self.results.get(result_id)
        if item is None:
            raise AppError(404, f"no result {result_id!r} (results are kept for the last {self.cfg.max_results} "
                                f"edits): edit again")
        return item["json"]

    # -- the edits -----------------------------------------------------------------------------------
    def check(self, params):
        """Parse and check a request -> EditParams, before any work (so a job is refused, not failed)."""
        p = parse_params(params, self.defaults)
        why = self._unavailable(p.method)
        if why:
            raise AppError(503 if p.method in ("global", "mapper") else 422, why)
        if p.face and self.faces.get(p.face) is None:
            self._start(p)  # raises the 404
        return p

    def edit(self, params, job=None):
        """One edit -> its JSON (scores, timings, image keys). `job` (app.jobs.Job): progress and
        cancellation of an optimisation."""
        p = params if isinstance(params, EditParams) else self.check(params)
        timings, notes = {}, []
        t_all = time.perf_counter()
        # an optimisation runs on the job queue's own thread (one at a time): it does not take an edit's slot
        with self._compute if p.method != "optimization" else contextlib.nullcontext():
            timings["wait"] = _ms(t_all)
            ws, photo, face = self._start(p)
            t0 = time.perf_counter()
            with torch.no_grad():
                img0 = self.G.synthesis(ws, noise_mode="const")
            timings["render_start"] = _ms(t0)
            t0 = time.perf_counter()
            img1, prompt, extra = {"global": self._global, "mapper": self._mapper,
                                   "optimization": self._optimize}[p.method](p, ws, img0, notes, job)
            timings["edit"] = _ms(t0)
            if not torch.isfinite(img1).all():
                raise AppError(422, "the edit produced NaN or infinite pixels: lower the strength")
            t0 = time.perf_counter()
            card = score_edits(self.models.judges, img0, img1, [prompt], seconds=timings["edit"] / 1000)
            timings["score"] = _ms(t0)
        scores = {k: _jsonable(v) for k, v in summarize(card).items() if k not in ("n",)}
        timings["total"] = _ms(t_all)
        rid = self._next_id("r")
        out = dict(id=rid, method=p.method, face=face, neutral=p.neutral, target=p.target, prompt=prompt,
                   strength=p.strength, disentanglement=p.disentanglement if p.method == "global" else None,
                   steps=p.steps if p.method == "optimization" else None, target_attribute=card["target"][0],
                   scores=scores, scored_by="judges" if self.cfg.preset == "synthfaces" else "open measures",
                   timings_ms=timings, notes=notes, **extra,
                   images=dict(before=f"/api/results/{rid}/before.png", after=f"/api/results/{rid}/after.png",
                               photo=f"/api/results/{rid}/photo.png" if photo is not None else None))
        self.results.put(rid, dict(before=png_bytes(img0[0], DISPLAY), after=png_bytes(img1[0], DISPLAY),
                                   photo=photo, json=out))
        return out

    def _embedding(self, text):
        e = self._texts.get(text)
        if e is None:
            e = gd.text_embedding(self.clip_model, text, self.templates)
            self._texts.put(text, e)
        return e

    @torch.no_grad()
    def _global(self, p, ws, img0, notes, job):
        dt = self._embedding(p.target) - self._embedding(p.neutral)
        if float(dt.norm()) < 1e-6:
            raise AppError(422, f"target {p.target!r} and neutral {p.neutral!r} embed to the same point in CLIP: "
                                f"nothing to edit towards; change one of them")
        try:
            d = self.relevance.direction(torch.nn.functional.normalize(dt, dim=0), p.disentanglement)
        except gd.BetaTooHighError as e:
            raise AppError(422, f"disentanglement too high: {e}") from None
        return gd.manipulate(self.G, ws, d, p.strength), p.target, dict(
            channels=d.n_channels, max_relevance=round(d.max_relevance, 4))

    @torch.no_grad()
    def _mapper(self, p, ws, img0, notes, job):
        key = normalize(p.target)
        own = next((prompt for prompt in self.mappers if normalize(prompt) == key), None)
        notes.append("a mapper edits towards its own prompt: the neutral text and disentanglement are not used")
        if own is not None:
            ws1, mapper = apply_mapper(self.mappers[own], ws, p.strength), f"per-prompt mapper {own!r}"
        elif self.conditioned is not None:
            t = text_features(self.clip_model, [p.target])[0]
            ws1, mapper = apply_mapper(self.conditioned, ws, p.strength, t), "text-conditioned mapper"
        else:
            raise AppError(422, f"no mapper for {p.target!r}; this server has mappers for {sorted(self.mappers)}")
        return self.G.synthesis(ws1, noise_mode="const"), own or p.target, dict(mapper=mapper)

    def _optimize(self, p, ws, img0, notes, job):
        notes.append(f"latent optimisation in {RECIPE['space']!r} (notebook 03's recipe); strength scales the "
                     f"optimised move; the neutral text and disentanglement are not used")
        cfg = EditConfig(steps=p.steps, **RECIPE)
        loss = CLIPLoss(self.clip_model, [p.target], views=RECIPE_VIEWS)
        if job is not None:
            job.steps = p.steps

        def callback(step, img):
            if job is not None:
                job.step = step + 1
                if job.cancel_requested.is_set():
                    raise JobCancelled()

        try:
            res = optimize_edit(self.G, loss, torch.zeros(1, dtype=torch.long), ws, cfg, id_loss=self.models.id_loss,
                                img_start=img0, callback=callback, progress=False)
        except EditDivergedError as e:
            raise AppError(422, str(e)) from None
        with torch.no_grad():
            s0 = self.G.w_to_s(ws)
            s = [a + p.strength * (b - a) for a, b in zip(s0, res.styles)]
            img1 = self.G.synthesis_from_s(s, noise_mode="const")
        return img1, p.target, dict(clip_loss=[round(float(res.history["clip"][0, 0]), 4),
                                               round(float(res.history["clip"][-1, 0]), 4)])
