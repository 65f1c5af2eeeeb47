"""An interactive global-directions editor (ipywidgets): type a target and a neutral text, move α and β, pick
a face by seed or upload a photo, and the edited image follows.

    editor = GlobalEditor(G, clip_model, relevance, encoder=E)
    editor.widget          # display it in JupyterLab

Each update is one text embedding (cached per text), one dot product fs3·Δt and one render: a fraction of a
second on a CPU for SynthFaces. Errors of the user's input (β too high, a photo without a face, an empty
text) are shown in the status line, never raised into the notebook. The widgets are attributes
(`editor.target`, `editor.alpha`, ...), so tests drive them as a user would.
"""
import html
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..viz import to_uint8
from . import global_directions as gd

FACE_PICKER_MAX = 2 ** 31 - 1


def png_bytes(img, size=256):
    """One [-1, 1] image [3, H, W] -> PNG bytes, upscaled (nearest) to `size` px for the screen."""
    from PIL import Image

    im = Image.fromarray(to_uint8(img))
    if size and im.width < size:
        im = im.resize((size, size), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


class GlobalEditor:
    """Widgets over a Relevance (global_directions.Relevance). `encoder`: an e4e model (image -> W+) for
    uploaded photos (None: no upload button). `templates`: as text_direction's."""

    def __init__(self, G, clip_model, relevance, encoder=None, neutral="face", target="face with red hair",
                 alpha=4.0, beta=0.12, seed=0, truncation=0.7, templates=None, display_size=256):
        import ipywidgets as W

        self.G, self.clip_model, self.rel, self.encoder = G, clip_model, relevance, encoder
        self.templates, self.truncation, self.display_size = templates, truncation, display_size
        self._texts = {}          # text -> embedding: typing back and forth costs nothing
        self._ws = None           # the current face's W+ code
        self.last_ms = float("nan")
        self.target = W.Text(value=target, description="target", continuous_update=False)
        self.neutral = W.Text(value=neutral, description="neutral", continuous_update=False)
        self.alpha = W.FloatSlider(value=alpha, min=-10, max=10, step=0.1, description="α (strength)")
        self.beta = W.FloatSlider(value=beta, min=0.0, max=0.5, step=0.01, description="β (threshold)")
        self.seed = W.BoundedIntText(value=seed, min=0, max=FACE_PICKER_MAX, description="face seed")
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="photo") if encoder is not None else None
        self.status = W.HTML()
        self.image = W.Image(format="png", width=display_size, height=display_size)
        self.before = W.Image(format="png", width=display_size, height=display_size)
        for w in (self.target, self.neutral, self.alpha, self.beta):
            w.observe(lambda _: self.update(), names="value")
        self.seed.observe(lambda _: self.pick_seed(), names="value")
        if self.upload is not None:
            self.upload.observe(lambda _: self.pick_upload(), names="value")
        controls = [self.target, self.neutral, self.alpha, self.beta, self.seed] + ([self.upload] if self.upload else [])
        self.widget = W.VBox([W.HBox([W.VBox(controls), W.VBox([W.HBox([self.before, self.image]), self.status])])])
        self.pick_seed()

    # -- the face ------------------------------------------------------------------------------------
    @torch.no_grad()
    def pick_seed(self):
        z = torch.randn(1, self.G.style_dim, generator=torch.Generator().manual_seed(int(self.seed.value)))
        self.set_face(self.G.broadcast(self.G.mapping(z.to(self.G.w_avg.device), self.truncation)))

    @torch.no_grad()
    def set_face(self, ws):
        """Start from W+ codes [1, n_latent, dim] (an inverted photo, a latents file's row)."""
        self._ws = ws
        self.before.value = png_bytes(self.G.synthesis(ws)[0], self.display_size)
        self.update()

    def pick_upload(self):
        from ..data.align import FaceAlignmentError, align_face

        files = self.upload.value
        if not files:
            return
        f = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
        name = str(f.get("name", "photo"))
        # through a file, so that the photo gets align_face's checks of files (corrupt, unsupported, too small)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / ("upload" + Path(name).suffix.lower())
            path.write_bytes(bytes(f["content"]))
            try:
                aligned = align_face(str(path), size=256)
            except FaceAlignmentError as e:
                self.status.value = f"<b>photo {html.escape(name)}:</b> {html.escape(str(e))}"
                return
        x = torch.from_numpy(np.array(aligned)).permute(2, 0, 1)[None].float().div(127.5).sub(1)
        with torch.no_grad():
            self.set_face(self.encoder(x.to(self.G.w_avg.device)))

    # -- the edit ------------------------------------------------------------------------------------
    def _text(self, text):
        if text not in self._texts:
            self._texts[text] = gd.text_embedding(self.clip_model, text, self.templates)
        return self._texts[text]

    @torch.no_grad()
    def update(self):
        t = time.perf_counter()
        target, neutral = self.target.value.strip(), self.neutral.value.strip()
        if not target or not neutral:
            self.status.value = "type a target and a neutral text"
            return
        dt = self._text(target) - self._text(neutral)
        if float(dt.norm()) < 1e-6:
            self.status.value = "target and neutral text are the same: nothing to edit towards"
            return
        try:
            d = self.rel.direction(torch.nn.functional.normalize(dt, dim=0), self.beta.value)
        except gd.BetaTooHighError as e:
            self.status.value = f"<b>{e}</b>"
            return
        self.image.value = png_bytes(gd.manipulate(self.G, self._ws, d, self.alpha.value)[0], self.display_size)
        self.last_ms = 1000 * (time.perf_counter() - t)
        layers = ", ".join(f"{k} {v}" for k, v in d.per_layer(self.G).items())
        self.status.value = (f"{d.n_channels} channels survive β={self.beta.value:.2f} (β ≥ {d.max_relevance:.3f} "
                             f"removes all) · {layers} · {self.last_ms:.0f} ms")


class SliderEditor:
    """Attribute sliders over fitted directions (directions.Directions): one slider per feature in its units
    (1 = one std of the faces' w along it), a "keep fixed" list that conditions every slider on the features it
    names, a face seed, and a photo upload (aligned and inverted with `encoder`). The widgets are attributes
    (`editor.sliders[name]`, `editor.keep`, ...) so tests drive them as a user would."""

    def __init__(self, G, directions, encoder=None, seed=0, truncation=0.7, display_size=256, limit=5.0):
        import ipywidgets as W

        self.G, self.D, self.encoder = G, directions, encoder
        self.truncation, self.display_size = truncation, display_size
        self._ws = None
        self.last_ms = float("nan")
        self.sliders = {n: W.FloatSlider(value=0.0, min=-limit, max=limit, step=0.1, description=n,
                                         continuous_update=False) for n in directions.names}
        self.keep = W.SelectMultiple(options=directions.names, description="keep fixed", rows=5)
        self.seed = W.BoundedIntText(value=seed, min=0, max=FACE_PICKER_MAX, description="face seed")
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="photo") if encoder is not None else None
        self.status = W.HTML()
        self.image = W.Image(format="png", width=display_size, height=display_size)
        self.before = W.Image(format="png", width=display_size, height=display_size)
        for w in (*self.sliders.values(), self.keep):
            w.observe(lambda _: self.update(), names="value")
        self.seed.observe(lambda _: self.pick_seed(), names="value")
        if self.upload is not None:
            self.upload.observe(lambda _: GlobalEditor.pick_upload(self), names="value")
        controls = list(self.sliders.values()) + [self.keep, self.seed] + ([self.upload] if self.upload else [])
        self.widget = W.HBox([W.VBox(controls), W.VBox([W.HBox([self.before, self.image]), self.status])])
        self.pick_seed()

    pick_seed = GlobalEditor.pick_seed

    @torch.no_grad()
    def set_face(self, ws):
        self._ws = ws
        self.before.value = png_bytes(self.G.synthesis(ws)[0], self.display_size)
        self.update()

    @torch.no_grad()
    def update(self):
        t = time.perf_counter()
        amounts = {n: s.value for n, s in self.sliders.items() if s.value}
        keep = list(self.keep.value)
        try:
            ws = self.D.edit_many(self._ws, amounts, condition_on=keep)
        except ValueError as e:
            self.status.value = f"<b>{html.escape(str(e))}</b>"
            return
        self.image.value = png_bytes(self.G.synthesis(ws)[0], self.display_size)
        self.last_ms = 1000 * (time.perf_counter() - t)
        moved = ", ".join(f"{n} {a:+.1f}" for n, a in amounts.items()) or "nothing moved"
        self.status.value = f"{moved}{' · keeping ' + ', '.join(keep) if keep else ''} · {self.last_ms:.0f} ms"
