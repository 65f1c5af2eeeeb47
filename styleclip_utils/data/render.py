"""The SynthFaces renderer: a face drawn from its parameters, with exact landmarks. The dataset writer
(`synthfaces.py`) calls it; `attributes.py` says how a face is labelled, `captions.py` how it is described.

Why: real CelebA-HQ cannot be downloaded on the project's machines, yet every StyleCLIP stage (GAN,
CLIP, identity net, attribute judge) needs faces whose attributes are known. The faces are simple on
purpose: a small GAN must model them at 64 px and a small CLIP must learn every attribute from them.

A face = an `Identity` (geometry, skin, eye colour, natural hair, sex, age: fixed per person) + a
`Look` (per-image attributes: hair colour/style, expression, accessories, make-up, facial hair) + a
`Pose` + a `Background`. `labels(identity, look)` gives the CelebA/extra columns and
`set_attribute(identity, look, name, value)` toggles one column, so tests can flip exactly one.

Coordinates: geometry is built in face units, (x, y) in [0, 1] of the output image, y down, before the
pose. The pose (roll, scale, shift about the image centre) is an affine map applied to every point at
draw time, so landmarks are exact: the same map applied to the eye centres, nose tip and mouth
corners. Landmarks are continuous pixel coordinates of the output (pixel i spans [i, i + 1)). Yaw is
faked by shifting the inner features sideways. Drawing uses PIL on a canvas 4x the output size
(2x at 256 px) with alpha-blended fills, then a Lanczos downsample, which anti-aliases every edge.

CelebA columns that cannot be rendered (`CONSTANT_COLUMNS`: Attractive is subjective, Blurry would
only degrade the data) are written as -1 for every image.
"""
import colorsys
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from .attributes import (COLOR_COLUMNS, DARK_MIN, EXPRESSIONS, HAIR_STYLES, LONG_STYLES, PALE_MAX, RECEDING_STYLES,
                         STYLE_COLUMNS, labels)

RENDERER_VERSION = 1
# The looks a face can be drawn in: the same geometry, labels and landmarks, another style. "toon" is the second
# domain of notebook 06's two-domain generator: cel-shaded (saturated, posterised colours) with ink outlines.
DOMAINS = ("natural", "toon")
TOON_INK = (34, 22, 40)
TOON_LEVELS = 5        # colour levels per channel after posterising
TOON_EDGE = 9.0        # colour gradient (per supersampled pixel, after a blur) that gets an ink line

HAIR_COLORS = {"black": (30, 26, 26), "brown": (110, 68, 38), "blond": (228, 194, 116),
               "gray": (182, 182, 186), "red": (204, 72, 30), "purple": (136, 58, 182)}
# long styles -> (volume over the skull, bottom end, flare towards the bottom, wave amplitude)
LONG_HAIR = {"straight": (0.022, 0.95, 0.01, 0.0), "bangs": (0.022, 0.95, 0.01, 0.0),
             "wavy": (0.035, 0.93, 0.05, 0.016), "curly": (0.05, 0.87, 0.08, 0.0)}


# skin from palest to darkest; sampled in buckets with gaps so Pale/Dark labels are crisp
SKIN_RAMP = np.array([(255, 236, 228), (240, 200, 170), (222, 168, 128), (178, 122, 84),
                      (122, 80, 54), (80, 52, 38)], float)
SKIN_BUCKETS = ((0.16, 0.0, 0.08), (0.34, 0.18, 0.38), (0.28, 0.42, 0.6), (0.22, 0.76, 1.0))
EYE_COLORS = ((84, 52, 30), (50, 34, 24), (60, 115, 195), (70, 130, 75), (140, 105, 55), (115, 130, 150))
HAT_COLORS = ((190, 40, 40), (40, 52, 115), (40, 115, 60), (205, 160, 40), (230, 230, 228),
              (35, 35, 38), (215, 120, 165), (120, 80, 50))
FRAME_COLORS = ((18, 18, 20), (70, 38, 22), (28, 38, 95), (120, 20, 30))
SHADOW_COLORS = ((120, 55, 165), (55, 95, 200), (30, 140, 140), (205, 65, 150))
CLOTHES_COLORS = ((60, 70, 90), (150, 42, 42), (42, 92, 62), (205, 205, 200), (42, 42, 48),
                  (122, 92, 62), (72, 112, 165), (160, 130, 172), (212, 172, 82), (95, 95, 100))
GOLD, SILVER, LIPSTICK = (240, 192, 50), (228, 228, 238), (210, 18, 42)

B_UP = 0.34          # skull half-height above the face centre (face units)
YAW_SHIFT = 0.022    # sideways shift of the inner features at |yaw| = 1
# expression -> (mouth width scale, corner lift (+ = down), opening, lip scale, profile exponent, teeth)
MOUTHS = {"neutral": (1.0, 0.003, 0.0, 1.0, 0.8, 0.0), "smile": (1.22, -0.024, 0.03, 0.8, 0.75, 0.6),
          "surprised": (0.6, 0.0, 0.066, 0.85, 0.5, 0.0), "angry": (0.82, 0.013, 0.0, 0.55, 0.8, 0.0),
          "open": (0.95, 0.003, 0.022, 1.0, 0.8, 0.35)}
# expression -> (eye opening scale, brow raise, brow inner-end drop, extra arch)
FACE_MOVES = {"neutral": (1.0, 0.0, 0.0, 0.0), "smile": (0.75, 0.004, 0.0, 0.0),
              "surprised": (1.45, 0.026, -0.006, 0.012), "angry": (0.8, -0.012, 0.024, -0.008),
              "open": (1.0, 0.0, 0.0, 0.0)}


@dataclass(frozen=True)
class Identity:
    """What stays fixed across one person's images (geometry in face units)."""
    male: bool = False
    young: bool = True
    skin: float = 0.3            # 0 palest .. 1 darkest
    hair_color: str = "brown"    # natural colour: brows and beard keep it when the hair is dyed
    hair_style: str = "straight"  # the style this person usually wears
    face_w: float = 0.235        # half-width at cheek level
    face_h: float = 0.3          # chin below the face centre
    jaw: float = 2.1             # superellipse exponent of the jaw (higher = squarer)
    chin: float = 0.22           # chin taper
    eye_sep: float = 0.12        # half the distance between eye centres
    eye_y: float = 0.445
    eye_w: float = 0.047         # eye half-width
    eye_aspect: float = 0.5
    eye_tilt: float = 0.05
    eye_color: int = 0
    brow_gap: float = 0.056
    brow_thick: float = 0.014
    brow_arch: float = 0.008
    nose_len: float = 0.115
    nose_w: float = 0.03
    mouth_w: float = 0.07
    lip: float = 0.017
    big_nose: bool = False
    pointy_nose: bool = False
    big_lips: bool = False
    narrow_eyes: bool = False
    arched_brows: bool = False
    bushy_brows: bool = False
    chubby: bool = False
    double_chin: bool = False
    high_cheekbones: bool = False
    oval_face: bool = False


@dataclass(frozen=True)
class Look:
    """Per-image attributes. `detail_seed` draws the cosmetic details (hat model, colours, freckle
    positions...) in a fixed order, so toggling one flag changes nothing else."""
    hair_color: str = "brown"
    hair_style: str = "straight"
    long_hair: bool = False
    receding: bool = False
    expression: str = "neutral"
    eyeglasses: bool = False
    hat: bool = False
    earrings: bool = False
    lipstick: bool = False
    makeup: bool = False
    lashes: bool = False
    freckles: bool = False
    rosy: bool = False
    mustache: bool = False
    goatee: bool = False
    beard: bool = False
    stubble: bool = False
    sideburns: bool = False
    bags: bool = False
    necklace: bool = False
    necktie: bool = False
    detail_seed: int = 0


@dataclass(frozen=True)
class Pose:
    roll: float = 0.0    # degrees
    scale: float = 1.0
    dx: float = 0.0      # face units
    dy: float = 0.0
    yaw: float = 0.0     # -1..1, faked by shifting the inner features


@dataclass(frozen=True)
class Background:
    kind: str = "flat"   # flat | vertical | diagonal
    c1: tuple = (196, 204, 212)
    c2: tuple = (196, 204, 212)


# ----------------------------------------------------------------------------------------------------
# Sampling (with the correlations of real faces, but every attribute frequent enough to learn)

def _pick(rng, options, probs):
    return options[rng.choice(len(options), p=np.asarray(probs) / np.sum(probs))]


def _sample_style(rng, male):
    probs = (.22, .09, .11, .11, .15, .02, .07, .2) if male else (.18, .18, .13, .11, .05, .18, .17, 0)
    return _pick(rng, HAIR_STYLES, probs)


def sample_identity(rng):
    u = rng.uniform
    male, young = bool(rng.random() < 0.5), bool(rng.random() < 0.7)
    bucket = SKIN_BUCKETS[rng.choice(4, p=[b[0] for b in SKIN_BUCKETS])]
    skin = u(bucket[1], bucket[2])
    if not young:
        natural = _pick(rng, ("gray", "black", "brown", "blond"), (.65, .12, .15, .08))
    elif skin > DARK_MIN:
        natural = _pick(rng, ("black", "brown"), (.7, .3))
    else:
        natural = _pick(rng, ("black", "brown", "blond", "red"), (.26, .33, .25, .16))
    style = _sample_style(rng, male)
    if male and not young and rng.random() < 0.2:
        style = "bald"
    chubby = bool(rng.random() < 0.15)
    big_nose = bool(rng.random() < 0.2)
    return Identity(
        male=male, young=young, skin=skin, hair_color=natural, hair_style=style,
        face_w=u(0.222, 0.248), face_h=u(0.288, 0.312), jaw=u(1.95, 2.25), chin=u(0.16, 0.28),
        eye_sep=u(0.113, 0.127), eye_y=u(0.437, 0.453), eye_w=u(0.043, 0.051),
        eye_aspect=u(0.46, 0.56), eye_tilt=u(-0.08, 0.15), eye_color=int(rng.integers(len(EYE_COLORS))),
        brow_gap=u(0.05, 0.062), brow_thick=u(0.012, 0.016), brow_arch=u(0.005, 0.011),
        nose_len=u(0.107, 0.123), nose_w=u(0.027, 0.033), mouth_w=u(0.064, 0.077), lip=u(0.015, 0.019),
        big_nose=big_nose, pointy_nose=bool(not big_nose and rng.random() < 0.25),
        big_lips=bool(rng.random() < (0.12 if male else 0.3)), narrow_eyes=bool(rng.random() < 0.15),
        arched_brows=bool(rng.random() < (0.12 if male else 0.5)),
        bushy_brows=bool(rng.random() < (0.45 if male else 0.1)), chubby=chubby,
        double_chin=bool(rng.random() < (0.6 if chubby else 0.25 if not young else 0.05)),
        high_cheekbones=bool(rng.random() < (0.2 if male else 0.35)),
        oval_face=bool(not chubby and rng.random() < 0.3))


def sample_look(rng, idn):
    r = rng.random
    m, f = idn.male, not idn.male
    style = idn.hair_style if r() < 0.65 else _sample_style(rng, m)
    color = idn.hair_color if r() < 0.7 else _pick(   # dyed hair
        rng, ("purple", "red", "blond", "black", "brown", "gray"), (.42, .24, .16, .08, .05, .05))
    p_receding = (0.45 if not idn.young else 0.2) if m else 0.05
    beard = _pick(rng, ("none", "goatee", "beard"), (.5, .2, .3) if m else (.98, .01, .01))
    makeup = bool(r() < (0.35 if f else 0.015))
    freckle_p = 0.35 if idn.skin < PALE_MAX else 0.18 if idn.skin < 0.4 else 0.06
    return Look(
        hair_color=color, hair_style=style,
        long_hair=bool(style in LONG_STYLES and r() < (0.2 if m else 0.85)),
        receding=bool(style in RECEDING_STYLES and r() < p_receding),
        expression=_pick(rng, EXPRESSIONS, (.26, .2, .17, .17, .2)),
        eyeglasses=bool(r() < (0.14 if idn.young else 0.3)), hat=bool(r() < 0.12),
        earrings=bool(r() < (0.06 if m else 0.38)), lipstick=bool(r() < (0.02 if m else 0.38)),
        makeup=makeup, lashes=bool(r() < (0.03 if m else 0.5 if makeup else 0.25)),
        freckles=bool(r() < freckle_p), rosy=bool(r() < (0.08 if m else 0.18)),
        mustache=bool(r() < (0.35 if m else 0.01)), goatee=beard == "goatee", beard=beard == "beard",
        stubble=bool(m and beard == "none" and r() < 0.36), sideburns=bool(r() < (0.18 if m else 0.01)),
        bags=bool(r() < (0.08 if idn.young else 0.35)), necklace=bool(r() < (0.04 if m else 0.22)),
        necktie=bool(r() < (0.2 if m else 0.02)), detail_seed=int(rng.integers(2**31)))


def sample_pose(rng):
    return Pose(roll=rng.uniform(-8, 8), scale=rng.uniform(0.94, 1.06), dx=rng.uniform(-0.03, 0.03),
                dy=rng.uniform(-0.025, 0.025), yaw=rng.uniform(-1, 1))


def _hsv(h, s, v):
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h, s, v))


def sample_background(rng):
    kind = _pick(rng, ("flat", "vertical", "diagonal"), (.5, .3, .2))
    h = rng.random()
    c1 = _hsv(h, rng.uniform(0.05, 0.45), rng.uniform(0.45, 0.95))
    c2 = _hsv((h + rng.uniform(-0.15, 0.15)) % 1, rng.uniform(0.05, 0.45), rng.uniform(0.35, 0.95))
    return Background(kind, c1, c1 if kind == "flat" else c2)


def _details(seed):
    """Cosmetic choices, all drawn in a fixed order whatever the flags are."""
    r = np.random.default_rng(seed)
    return dict(hair_gain=r.uniform(0.9, 1.1), part=r.choice([-1, 1]), phase=r.uniform(0, 6.3),
                hat_kind=int(r.integers(3)), hat=HAT_COLORS[r.integers(len(HAT_COLORS))],
                glasses_kind=int(r.integers(2)), frame=FRAME_COLORS[r.integers(len(FRAME_COLORS))],
                earring_kind=int(r.integers(2)), earring=(GOLD, SILVER)[r.integers(2)],
                shadow=SHADOW_COLORS[r.integers(len(SHADOW_COLORS))],
                clothes=CLOTHES_COLORS[r.integers(len(CLOTHES_COLORS))],
                tie=HAT_COLORS[r.integers(len(HAT_COLORS))], freckles=r.random((30, 2)),
                texture=r.random((240, 3)), gaze=r.uniform(-0.25, 0.25))


# ----------------------------------------------------------------------------------------------------
# Geometry

def _mix(c1, c2, t):
    return tuple(int(round(a + (b - a) * t)) for a, b in zip(c1[:3], c2[:3]))


def _shade(c, k, alpha=255):
    return tuple(int(min(255, max(0, round(v * k)))) for v in c[:3]) + (int(alpha),)


def _rgba(c, alpha):
    return tuple(c[:3]) + (int(alpha),)


@lru_cache(maxsize=256)
def _unit_arc(t0, t1, n):
    t = np.linspace(t0, t1, n, endpoint=t1 - t0 < 2 * np.pi - 1e-9)
    return np.cos(t), np.sin(t)


def _ellipse(cx, cy, rx, ry, angle=0.0, t0=0.0, t1=2 * np.pi, n=36):
    c, s = _unit_arc(t0, t1, n)
    x, y = rx * c, ry * s
    if angle == 0.0:
        return np.stack([cx + x, cy + y], 1)
    ca, sa = np.cos(angle), np.sin(angle)
    return np.stack([cx + ca * x - sa * y, cy + sa * x + ca * y], 1)


def _band(x, y0, y1):
    """Polygon between two curves y0(x) and y1(x) sampled at the same x."""
    return np.concatenate([np.stack([x, y0], 1), np.stack([x, y1], 1)[::-1]])


def _inside(pts, poly):
    """Even-odd point-in-polygon test, vectorised over points."""
    x, y = pts[:, :1], pts[:, 1:2]
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    hit = ((y0 > y) != (y1 > y)) & (x < x0 + (y - y0) * (x1 - x0) / (y1 - y0 + 1e-12))
    return hit.sum(1) % 2 == 1


def _resample(line, step, closed=False):
    """Points every `step` along a polyline (for bumpy hair and beard edges)."""
    line = np.vstack([line, line[:1]]) if closed else np.asarray(line)
    s = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])
    at = np.arange(0, s[-1] + 1e-9, step)
    return np.stack([np.interp(at, s, line[:, 0]), np.interp(at, s, line[:, 1])], 1)


def _skin_color(skin):
    t = np.linspace(0, 1, len(SKIN_RAMP))
    return tuple(int(round(np.interp(skin, t, SKIN_RAMP[:, c]))) for c in range(3))


def _geometry(idn, look, pose):
    """Positions and sizes of every feature, in face units before the pose."""
    m = float(idn.male)
    g = SimpleNamespace(fx=0.5, fy=0.5, male=idn.male)
    g.a = idn.face_w + 0.012 * m + 0.03 * idn.chubby - 0.012 * idn.oval_face
    g.b = idn.face_h + 0.025 * idn.oval_face - 0.01 * idn.chubby
    jaw = idn.jaw + 0.8 * m + 0.4 * idn.chubby - 0.2 * idn.oval_face
    taper = idn.chin + 0.1 * idn.oval_face + 0.08 * idn.high_cheekbones - 0.08 * m - 0.08 * idn.chubby
    t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    low = s > 0   # lower half: superellipse jaw narrowing to the chin; upper half: skull ellipse
    e = 2 / jaw
    x = np.where(low, g.a * np.sign(c) * np.abs(c) ** e * (1 - taper * np.abs(s) ** 3), g.a * c)
    y = np.where(low, g.b * np.abs(s) ** e, B_UP * s)
    g.contour = np.stack([g.fx + x, g.fy + y], 1)
    right = g.contour[g.contour[:, 0] >= g.fx]
    order = np.argsort(right[:, 1])
    g._hw = (right[order, 1], right[order, 0] - g.fx)
    g.chin = g.fy + g.b
    g.top = g.fy - B_UP

    shift = YAW_SHIFT * pose.yaw
    g.yaw = pose.yaw
    eye_open, g.brow_raise, g.brow_drop, arch = FACE_MOVES[look.expression]
    g.ey = idn.eye_y
    g.ex = (g.fx + shift - idn.eye_sep, g.fx + shift + idn.eye_sep)
    g.ew = tuple(idn.eye_w * (1 - 0.1 * pose.yaw * sd) for sd in (-1, 1))  # the far eye is foreshortened
    g.eh = idn.eye_w * idn.eye_aspect * (0.55 if idn.narrow_eyes else 1) * eye_open
    g.eye_tilt = idn.eye_tilt
    g.iris = EYE_COLORS[idn.eye_color]
    g.brow_gap = idn.brow_gap
    g.brow_thick = idn.brow_thick * (1 + 0.3 * m) * (1.7 if idn.bushy_brows else 1)
    g.brow_arch = (0.03 if idn.arched_brows else idn.brow_arch) * (0.6 if idn.male else 1) + arch

    g.nx = g.fx + 1.6 * shift
    g.ny = g.ey + idn.nose_len + 0.02 * idn.big_nose
    g.nw = idn.nose_w * (1.7 if idn.big_nose else 0.8 if idn.pointy_nose else 1)
    g.pointy = idn.pointy_nose

    wk, g.corner_dy, g.opening, lip_k, g.mouth_p, g.teeth = MOUTHS[look.expression]
    g.mx, g.my = g.fx + shift, g.ey + 0.225
    g.mw = (idn.mouth_w + 0.004 * m) * wk
    g.lip = idn.lip * lip_k * (1.75 if idn.big_lips else 1) * (0.85 if idn.male else 1.1) * (
        1 if idn.young else 0.85)
    g.y_temple = g.ey - 0.01
    return g


# The renderer's continuous face measures: notebook 06's attribute sliders and the measure judge's targets.
# name -> (low, high: the sampled range, scaled to [0, 1] for the judge; unit). Face units are fractions of the image.
MEASURES = {
    "yaw": (-1.0, 1.0, "turn, -1..1"),               # faked by shifting the inner features sideways
    "roll": (-8.0, 8.0, "degrees"),                   # in-plane tilt
    "eye_distance": (0.226, 0.254, "face units"),     # between the eye centres
    "eyebrows": (0.038, 0.088, "face units"),         # brow height above the eyes (raised when surprised)
    "eye_ratio": (0.19, 0.82, "height / width"),
    "eyes_open": (0.008, 0.042, "face units"),        # eye opening
    "lip_ratio": (0.08, 0.8, "thickness / width"),
    "mouth_open": (0.0, 0.066, "face units"),
    "nose_mouth": (0.082, 0.118, "face units"),       # nose tip to mouth
    "nose_ratio": (0.17, 0.44, "width / length"),
    "smile": (-0.013, 0.024, "face units"),           # lift of the mouth corners
}


def face_measures(idn, look, pose):
    """A face's MEASURES, in their own units (before any scaling)."""
    g = _geometry(idn, look, pose)
    return dict(yaw=pose.yaw, roll=pose.roll, eye_distance=2 * idn.eye_sep, eyebrows=g.brow_gap + g.brow_raise,
                eye_ratio=g.eh / float(np.mean(g.ew)), eyes_open=g.eh, lip_ratio=g.lip / g.mw, mouth_open=g.opening,
                nose_mouth=g.my - g.ny, nose_ratio=g.nw / (g.ny - g.ey), smile=-g.corner_dy)


def _half_width(g, y):
    """Half-width of the face outline at height y (0 above/below it)."""
    return np.interp(y, g._hw[0], g._hw[1], left=0.0, right=0.0)


def _mouth_curves(g, n=25):
    t = np.linspace(-1, 1, n)
    x = g.mx + g.mw * t
    mid = g.my + g.corner_dy * t ** 2
    prof = (1 - t ** 2) ** g.mouth_p
    ui, li = mid - 0.4 * g.opening * prof, mid + 0.6 * g.opening * prof
    bow = 1 - 0.35 * np.exp(-(t / 0.2) ** 2)   # cupid's bow
    uo = ui - 0.85 * g.lip * np.sqrt(1 - t ** 2) * bow - 0.002
    lo = li + 1.1 * g.lip * (1 - t ** 2) ** 0.6 + 0.002
    return x, mid, ui, li, uo, lo


def _eye_curves(g, side, n=15):
    """Upper and lower lid curves, inner corner to outer corner; side -1 = image-left eye."""
    t = np.linspace(-1, 1, n)
    w, cx = g.ew[(side + 1) // 2], g.ex[(side + 1) // 2]
    x = cx + side * w * t
    lift = g.eye_tilt * w * t   # outer corner up
    upper = g.ey - g.eh * (1 - t ** 2) ** 0.6 - lift
    lower = g.ey + 0.75 * g.eh * (1 - t ** 2) ** 0.9 - lift
    return x, upper, lower


def _landmarks_canonical(g):
    return np.array([[g.ex[0], g.ey], [g.ex[1], g.ey], [g.nx, g.ny],
                     [g.mx - g.mw, g.my + g.corner_dy], [g.mx + g.mw, g.my + g.corner_dy]])


# ----------------------------------------------------------------------------------------------------
# Drawing

class _Canvas:
    """Draws face-unit geometry through the pose on the supersampled image, alpha-blending fills."""

    def __init__(self, img, pose):
        self.draw = ImageDraw.Draw(img, "RGBA")
        W = img.width
        th = np.deg2rad(pose.roll)
        R = pose.scale * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        centre = np.array([0.5, 0.5])
        self.A, self.b = R * W, (centre - R @ centre + (pose.dx, pose.dy)) * W - 0.5
        self.px = pose.scale * W   # canvas pixels per face unit
        self.roll = pose.roll

    def pts(self, xy):
        return (np.asarray(xy, float).reshape(-1, 2) @ self.A.T + self.b).ravel().tolist()

    def poly(self, xy, fill):
        self.draw.polygon(self.pts(xy), fill=fill)

    def line(self, xy, width, fill):
        self.draw.line(self.pts(xy), fill=fill, width=max(1, int(round(width * self.px))), joint="curve")

    def ellipse(self, cx, cy, rx, ry, fill, angle=0.0):
        self.poly(_ellipse(cx, cy, rx, ry, angle, n=max(12, int(24 * np.sqrt(max(rx, ry) / 0.02)))), fill)

    def circle(self, cx, cy, r, fill):   # a circle stays a circle under the pose: PIL draws it natively
        x, y = self.A @ (cx, cy) + self.b
        r = r * self.px
        self.draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)

    def arc(self, cx, cy, r, start, end, width, fill):   # degrees, clockwise from +x as PIL counts
        x, y = self.A @ (cx, cy) + self.b
        r = r * self.px
        self.draw.arc((x - r, y - r, x + r, y + r), start + self.roll, end + self.roll, fill=fill,
                      width=max(1, int(round(width * self.px))))


def _hair_side(g, y, vol, length, flare, wave, phase):
    """Half-width of a hair mass at height y: the grown skull above the face centre, then falling
    sides that flare (and wave) down to `length`."""
    rx, ry = g.a + vol, B_UP + vol
    k = np.clip((y - g.fy) / max(length - g.fy, 1e-6), 0, 1)
    above = rx * np.sqrt(np.clip(1 - ((y - g.fy) / ry) ** 2, 0, 1))
    below = rx + flare * k + wave * np.sin(2 * np.pi * (y - g.fy) / 0.09 + phase) * np.sqrt(k)
    return np.where(y < g.fy, above, below)


def _hair_mass(g, vol, length, flare=0.0, wave=0.0, phase=0.0):
    arc = np.linspace(0, -np.pi, 32)
    top = np.stack([g.fx + (g.a + vol) * np.cos(arc), g.fy + (B_UP + vol) * np.sin(arc)], 1)
    y = np.linspace(g.fy, length, 14)
    wl = _hair_side(g, y, vol, length, flare, wave, phase)
    wr = _hair_side(g, y, vol, length, flare, wave, phase + np.pi)
    return np.concatenate([top, np.stack([g.fx - wl, y], 1), np.stack([g.fx + wr, y], 1)[::-1]])


def _curtain(g, side, vol, length, flare, wave, phase, inset):
    """Hair falling in front of the face edge, the ear and the shoulder on one side."""
    y = np.linspace(g.y_temple - 0.03, length, 18)
    outer = _hair_side(g, y, vol, length, flare, wave, phase + (np.pi if side > 0 else 0))
    inner = np.maximum(_half_width(g, y) - inset, 0.12)
    return _band(y, g.fx + side * outer, g.fx + side * inner)[:, ::-1]


def _hairline(g, kind):
    """Front edge of the hair from the right temple to the left one."""
    w = _half_width(g, g.y_temple) - 0.004
    u = np.linspace(1, -1, 31)
    yh = g.ey - 0.155
    if kind == "bangs":   # a blunt fringe just above the brows, with small notches
        y = g.ey - 0.074 + 0.006 * np.abs(np.sin(u * 9)) + (g.y_temple - g.ey + 0.074) * np.abs(u) ** 8
    elif kind == "receding":   # high, M-shaped: bare temples
        dip = 0.05 * np.exp(-((np.abs(u) - 0.6) / 0.18) ** 2)
        y = yh - 0.04 - dip + (g.y_temple - yh + 0.04) * np.abs(u) ** 6
    elif kind == "round":
        y = yh + (g.y_temple - yh) * np.abs(u) ** 2.2
    else:
        y = yh + (g.y_temple - yh) * np.abs(u) ** 3.5
    return np.stack([g.fx + w * u, y], 1)


def _cap(g, vol, kind, bump=0.0, phase=0.0):
    """Hair covering the skull down to the temples, cut at the hairline."""
    ry = B_UP + vol
    a0 = np.arcsin(np.clip((g.y_temple - g.fy) / ry, -1, 1))
    arc = np.linspace(a0, -np.pi - a0, 36)
    r = 1 + bump * np.sin(arc * 14 + phase)   # wavy outline
    top = np.stack([g.fx + (g.a + vol) * r * np.cos(arc), g.fy + ry * r * np.sin(arc)], 1)
    return np.concatenate([top, _hairline(g, kind)[::-1]])


def _texture(cv, g, poly, style, col, det):
    """Strands, curls or speckles inside a hair polygon (texture points drawn once per face)."""
    lo, hi = poly.min(0), poly.max(0)
    pts = lo + det["texture"][:, :2] * (hi - lo)
    keep = _inside(pts, poly)
    pts, rad = pts[keep], det["texture"][keep, 2]
    dark, light = _shade(col, 0.6, 200), _rgba(_mix(col, (255, 255, 255), 0.35), 170)
    if style == "curly":
        for (x, y), r in zip(pts[:40], rad):
            cv.arc(x, y, 0.011 + 0.007 * r, 360 * r, 360 * r + 300, 0.005, dark if r < 0.6 else light)
    elif style == "afro":
        for (x, y), r in zip(pts[:90], rad):
            cv.circle(x, y, 0.006 + 0.005 * r, dark if r < 0.55 else light)
    elif style == "beard":
        for (x, y), r in zip(pts[:70], rad):
            cv.line([(x, y), (x + 0.006 * (x - g.fx) / 0.1, y + 0.012)], 0.004, dark if r < 0.6 else light)
    else:   # strands, kept only where both ends lie inside the hair
        pts, rad = pts[:40], rad[:40]
        yy = pts[:, 1:] + np.linspace(-0.05, 0.05, 9)
        wave = 0.007 if style == "wavy" else 0.0
        xx = pts[:, :1] + wave * np.sin((yy - pts[:, 1:]) * 70 + rad[:, None] * 6) + 0.15 * (
            pts[:, :1] - g.fx) * (yy - pts[:, 1:])
        ends = np.stack([xx[:, [0, -1]], yy[:, [0, -1]]], 2).reshape(-1, 2)
        ok = _inside(ends, poly).reshape(-1, 2).all(1)
        for x, y, r in zip(xx[ok], yy[ok], rad[ok]):
            cv.line(np.stack([x, y], 1), 0.0045, dark if r < 0.7 else light)


def _draw_hair_back(cv, g, look, col, det):
    st, ph = look.hair_style, det["phase"]
    back = _shade(col, 0.82)
    if st == "afro":
        mass = _ellipse(g.fx, g.fy - 0.06, g.a + 0.15, 0.38, n=48)
        cv.poly(mass, back)
        for x, y in _resample(mass, 0.04, closed=True):
            cv.circle(x, y, 0.026, back)
        _texture(cv, g, mass, st, back, det)
    elif st == "bob":
        cv.poly(_hair_mass(g, 0.04, g.my + 0.045, 0.012), back)
    elif st in LONG_STYLES and look.long_hair:
        mass = _hair_mass(g, *LONG_HAIR[st], ph)
        cv.poly(mass, back)
        if st == "curly":
            for x, y in _resample(mass, 0.04, closed=True):
                cv.circle(x, y, 0.028, back)
        _texture(cv, g, mass, st, back, det)
    elif st == "bald":   # short rim of hair behind the ears
        for sd in (-1, 1):
            y = np.linspace(g.ey - 0.08, g.ey + 0.07, 8)
            w = _half_width(g, y)
            cv.poly(_band(y, g.fx + sd * (w + 0.018), g.fx + sd * (w - 0.01))[:, ::-1], back)


def _draw_hair_front(cv, g, look, col, det):
    st, ph, part = look.hair_style, det["phase"], det["part"]
    dark, light = _shade(col, 0.6, 170), _rgba(_mix(col, (255, 255, 255), 0.4), 130)
    if st == "bald":
        cv.ellipse(g.fx - 0.05, g.top + 0.07, 0.07, 0.035, (255, 255, 255, 55), angle=-0.3)  # scalp shine
        for sd in (-1, 1):
            y = np.linspace(g.ey - 0.09, g.ey - 0.005, 6)
            w = _half_width(g, y)
            cv.poly(_band(y, g.fx + sd * w, g.fx + sd * (w - 0.02))[:, ::-1], col)
        return
    if st == "mohawk":   # shaved sides (tinted scalp) and a spiky crest
        cv.poly(_cap(g, 0.0, "normal"), _rgba(col, 80))
        xs = np.linspace(-0.045, 0.045, 9)
        spikes = g.top - 0.07 - 0.05 * (np.arange(9) % 2 == 0) * (1 - np.abs(xs) / 0.09)
        crest = np.concatenate([[[g.fx - 0.04, g.ey - 0.15]], np.stack([g.fx + xs, spikes], 1),
                                [[g.fx + 0.04, g.ey - 0.15]]])
        cv.poly(crest, col)
        _texture(cv, g, crest, st, col, det)
        return
    kind = "bangs" if st == "bangs" else "receding" if look.receding and st in RECEDING_STYLES else (
        "round" if st == "afro" else "normal")
    vol = {"straight": 0.02, "bangs": 0.022, "bob": 0.04, "wavy": 0.035, "curly": 0.045, "afro": 0.0}[st]
    cap = _cap(g, vol, kind, bump=0.03 if st == "wavy" else 0.0, phase=ph)
    cv.poly(cap, col)
    if st == "curly":
        for x, y in _resample(cap[:36], 0.035):   # along the outer arc only
            cv.circle(x, y, 0.022, col)
    polys = [cap]
    if st == "bob":
        polys += [_curtain(g, sd, 0.04, g.my + 0.045, 0.012, 0, 0, 0.034) for sd in (-1, 1)]
    elif st in LONG_STYLES and look.long_hair:
        polys += [_curtain(g, sd, *LONG_HAIR[st], ph, 0.022) for sd in (-1, 1)]
    for p in polys[1:]:
        cv.poly(p, col)
        if st == "curly":
            for x, y in _resample(p[:18], 0.04):   # outer edge of the curtain
                cv.circle(x, y, 0.02, col)
    for p in polys:
        _texture(cv, g, p, st, col, det)
    if st in ("straight", "bangs", "bob", "wavy"):   # sheen and parting
        cv.line(_ellipse(g.fx, g.fy - 0.02, g.a * 0.8, B_UP * 0.88, t0=-2.3, t1=-1.2, n=12), 0.012, light)
        if st != "bangs":
            cv.line([(g.fx + part * 0.07, g.top - vol * 0.8), (g.fx + part * 0.09, g.ey - 0.16)], 0.006, dark)


def _draw_body(cv, g, look, skin, det):
    neck_w = 0.1 if g.male else 0.082
    neck = _shade(skin, 0.84)
    cv.poly([(g.fx - neck_w, g.fy), (g.fx + neck_w, g.fy), (g.fx + neck_w + 0.02, 1.3),
             (g.fx - neck_w - 0.02, 1.3)], neck)
    cv.ellipse(g.fx, g.chin - 0.005, g.a * 0.62, 0.045, _shade(skin, 0.6, 120))   # shadow under the jaw
    sh = 0.52 if g.male else 0.44
    top = 0.895 if g.male else 0.905
    u = np.linspace(-1, 1, 15)
    neckline = np.stack([g.fx + u * (neck_w + 0.035), top + 0.06 * (1 - u ** 2)], 1)
    shoulder = np.array([(-sh - 0.1, 1.4), (-sh, top + 0.07), (-sh + 0.1, top + 0.005)]) + (g.fx, 0)
    right = (shoulder - (g.fx, 0)) * (-1, 1) + (g.fx, 0)
    cv.poly(np.concatenate([shoulder, neckline, right[::-1]]), det["clothes"])
    if look.necktie:   # white collar and a knotted tie
        cv.poly([(g.fx - neck_w - 0.03, top), (g.fx, top + 0.075), (g.fx + neck_w + 0.03, top),
                 (g.fx + 0.05, 1.3), (g.fx - 0.05, 1.3)], (236, 236, 232))
        cv.poly([(g.fx - 0.02, top + 0.04), (g.fx + 0.02, top + 0.04), (g.fx + 0.013, top + 0.072),
                 (g.fx - 0.013, top + 0.072)], _shade(det["tie"], 0.8))
        cv.poly([(g.fx - 0.013, top + 0.072), (g.fx + 0.013, top + 0.072), (g.fx + 0.035, 1.2),
                 (g.fx - 0.035, 1.2)], det["tie"])
    if look.necklace:
        cv.line(_ellipse(g.fx, top - 0.05, neck_w * 0.98, 0.08, t0=0.15, t1=np.pi - 0.15, n=16), 0.014, GOLD)
        cv.ellipse(g.fx, top + 0.04, 0.02, 0.024, GOLD)


def _draw_face(cv, g, idn, look, skin, det):
    shade = _shade(skin, 0.86)
    for sd, ew in ((-1, 0.022 * (1 + 0.4 * g.yaw)), (1, 0.022 * (1 - 0.4 * g.yaw))):   # ears
        x = g.fx + sd * (_half_width(g, g.ey + 0.05) - 0.004)
        cv.ellipse(x, g.ey + 0.05, ew + 0.004, 0.046, _shade(skin, 0.9))
        cv.ellipse(x + sd * 0.004, g.ey + 0.05, ew * 0.45, 0.026, _shade(skin, 0.72, 160))
    if idn.double_chin:
        cv.ellipse(g.fx, g.chin + 0.014, 0.085, 0.03, _shade(skin, 0.97))
    cv.poly(g.contour, shade)   # darker rim, then the lit face inset towards the forehead
    cv.poly((g.contour - (g.fx, g.fy - 0.07)) * 0.94 + (g.fx, g.fy - 0.07), skin)
    if idn.double_chin:
        crease = _ellipse(g.fx, g.chin - 0.012, 0.055, 0.018, t0=0.5, t1=2.64, n=10)
        cv.line(crease, 0.006, _shade(skin, 0.7, 200))
    if idn.high_cheekbones:   # lit cheekbone over a hollow
        for sd in (-1, 1):
            ex = g.ex[(sd + 1) // 2]
            for k in (1.0, 0.6):
                hollow, lit = _shade(skin, 0.7, 90), _shade(skin, 1.15, 80)
                cv.ellipse(ex + sd * 0.05, g.ey + 0.125, 0.055 * k, 0.016 * k, hollow, angle=-sd * 0.5)
                cv.ellipse(ex + sd * 0.04, g.ey + 0.072, 0.05 * k, 0.018 * k, lit, angle=-sd * 0.4)
    for sd in (-1, 1):
        ex = g.ex[(sd + 1) // 2]
        if look.rosy:   # round red patches on the cheek apples
            for k in (1.0, 0.72, 0.45):
                cv.ellipse(ex + sd * 0.006, g.ey + 0.09, 0.046 * k, 0.034 * k, (232, 62, 82, 70))
        if look.makeup:   # blush swept along the cheekbone, towards the ear
            for k in (1.0, 0.65):
                cv.ellipse(ex + sd * 0.045, g.ey + 0.085, 0.055 * k, 0.016 * k, (205, 60, 125, 95),
                           angle=-sd * 0.55)
        freckle = _rgba(_mix(skin, (95, 45, 20), 0.7), 235)
        if look.freckles:   # a dozen dark dots spread over each cheek...
            f = det["freckles"][12 * (sd > 0):12 * (sd > 0) + 12]
            r, th = np.sqrt(f[:, 0]), f[:, 1] * 2 * np.pi
            for x, y in zip(ex + 0.055 * r * np.cos(th), g.ey + 0.085 + 0.035 * r * np.sin(th)):
                cv.circle(x, y, 0.0075, freckle)
    if look.freckles:   # ...and a few across the nose bridge
        for u, v in det["freckles"][24:30]:
            cv.circle(g.nx + (u - 0.5) * 0.07, g.ey + 0.035 + v * 0.04, 0.0065, freckle)
    line = _shade(skin, 0.66, 160)
    if not idn.young:   # wrinkles: forehead, crow's feet, nasolabial folds
        for k in range(3):
            cv.line(_ellipse(g.fx, g.ey - 0.07 - 0.025 * k, 0.09, 0.015, t0=-2.6, t1=-0.54, n=10), 0.006, line)
        for sd in (-1, 1):
            x0 = g.ex[(sd + 1) // 2] + sd * g.ew[0] * 1.15
            for dy in (-0.012, 0.0, 0.012):
                cv.line([(x0, g.ey + dy * 0.5), (x0 + sd * 0.022, g.ey + dy * 1.6)], 0.005, line)
    if not idn.young or look.expression == "smile":
        for sd in (-1, 1):
            cv.line([(g.nx + sd * g.nw * 1.25, g.ny - 0.005), (g.mx + sd * (g.mw + 0.018), g.my - 0.01),
                     (g.mx + sd * (g.mw + 0.012), g.my + 0.025)], 0.007, line)
    if look.expression == "angry":   # frown lines between the brows
        for sd in (-1, 1):
            cv.line([(g.fx + sd * 0.012, g.ey - 0.06), (g.fx + sd * 0.008, g.ey - 0.02)], 0.006, line)
    if look.stubble or look.beard:   # shadow of shaved (or under) hair on the lower face
        cv.poly(_beard_polygon(g, 0.0)[0], (58, 48, 52, 90))


def _beard_polygon(g, vol):
    """Lower face from ear to ear round the chin, open above the mouth (a horseshoe)."""
    y0 = g.ey + 0.055
    c = g.contour[(g.contour[:, 1] > y0)]
    c = c[np.argsort(np.arctan2(c[:, 1] - g.ey, c[:, 0] - g.fx))]   # right -> chin -> left
    outer = (c - (g.fx, g.ey)) * (1 + vol) + (g.fx, g.ey)
    x, mid, ui, li, uo, lo = _mouth_curves(g, 9)
    cheek = np.array([(_half_width(g, y0) - 0.005, y0), (0.14, g.ey + 0.13)])   # right cheek, down
    corner = (g.mw + 0.02, g.ny + 0.04)   # beside the mouth: the upper lip stays bare
    left = np.concatenate([cheek * (-1, 1), [(-corner[0], corner[1])]]) + (g.fx, 0)
    right = np.concatenate([[corner], cheek[::-1]]) + (g.fx, 0)
    under_lip = np.stack([x, np.maximum(lo + 0.01, g.my + 0.01)], 1)
    return np.concatenate([outer, left, under_lip, right]), len(outer)


def _draw_eyes(cv, g, look, skin, det):
    lid = _shade(skin, 0.92)
    for sd in (-1, 1):
        x, up, lo = _eye_curves(g, sd)
        cx = g.ex[(sd + 1) // 2]
        cv.poly(_band(x, up, lo), (240, 236, 230))
        ir = g.eh * 0.95 + 0.004
        ix = cx + det["gaze"] * g.ew[0] * 0.5
        cv.circle(ix, g.ey - 0.1 * g.eh, ir, g.iris)
        cv.circle(ix, g.ey - 0.1 * g.eh, ir * 0.45, (15, 12, 12))
        cv.circle(ix - ir * 0.35, g.ey - 0.45 * g.eh, ir * 0.22, (255, 255, 255, 200))
        # eyelid skin hides the iris outside the almond
        cv.poly(_band(x, up, up - g.eh - 0.01), lid)
        cv.poly(_band(x, lo, lo + g.eh + 0.01), lid)
        arc = 1 - np.linspace(-1, 1, len(x)) ** 2
        if look.bags:   # dark puffy crescents under the eyes
            cv.poly(_band(x, lo + 0.003, lo + 0.008 + 0.022 * arc), _rgba(_mix(skin, (70, 40, 70), 0.45), 150))
            cv.line(np.stack([x, lo + 0.008 + 0.022 * arc], 1)[2:-2], 0.005, _shade(skin, 0.62, 170))
        if look.makeup:   # coloured lid up to the brow (the winged liner follows)
            lid_top = up - g.eh * 0.6 - 0.022 * np.sqrt(arc) - 0.006
            cv.poly(_band(x, up - 0.002, lid_top), _rgba(det["shadow"], 215))
        cv.line(np.stack([x, up + 0.003 * arc], 1)[1:], 0.0035, _shade(skin, 0.7, 130))   # lid's shadow
        cv.line(np.stack([x, lo], 1), 0.004, _shade(skin, 0.7, 110))
        heavy = look.lashes or look.makeup
        liner = (22, 16, 16, 240) if heavy else (60, 40, 36, 230)
        cv.line(np.stack([x, up], 1), 0.012 if heavy else 0.0065, liner)
        if heavy:   # wing at the outer corner
            cv.line([(x[-1], up[-1]), (x[-1] + sd * 0.018, up[-1] - 0.012)], 0.009, liner)
        if look.lashes:   # thick dark lash strokes fanning up and out
            for k in range(3, 15, 2):
                dx, dy = sd * (0.35 + 0.6 * k / 14), -1.0
                nrm = 0.025 / np.hypot(dx, dy)
                cv.line([(x[k], up[k]), (x[k] + dx * nrm, up[k] + dy * nrm)], 0.006, (15, 10, 10, 255))


def _draw_brows(cv, g, idn):
    col = _rgba(_mix(HAIR_COLORS[idn.hair_color], (35, 25, 20), 0.45), 235)
    t = np.linspace(0, 1, 12)
    for sd in (-1, 1):
        cx, w = g.ex[(sd + 1) // 2], g.ew[(sd + 1) // 2]
        x = cx - sd * w * 0.95 + sd * w * 2.2 * t - sd * 0.006 * (g.brow_drop > 0.01)
        y = (g.ey - g.brow_gap - g.brow_raise + g.brow_drop * (1 - t) ** 1.5
             - g.brow_arch * np.sin(np.pi * t ** 0.8) + 0.006 * t - g.eye_tilt * w * 0.5 * (2 * t - 1))
        th = g.brow_thick * (1 - 0.5 * t) / 2
        cv.poly(_band(x, y - th, y + th), col)


def _draw_nose(cv, g, skin):
    shadow = _shade(skin, 0.75, 160)
    side = -1 if g.yaw < 0 else 1   # the bridge shadow falls on the side turned away
    if g.pointy:   # long narrow bridge lit down the middle, sharp tip
        for sd in (-1, 1):
            cv.line([(g.nx + sd * 0.01, g.ey + 0.01), (g.nx + sd * 0.014, g.ny - 0.006)], 0.006, shadow)
        cv.line([(g.nx, g.ey + 0.015), (g.nx, g.ny - 0.004)], 0.007, _shade(skin, 1.15, 150))
        cv.poly([(g.nx - g.nw * 1.1, g.ny - 0.002), (g.nx, g.ny + 0.018), (g.nx + g.nw * 1.1, g.ny - 0.002),
                 (g.nx, g.ny + 0.006)], _shade(skin, 0.62, 200))
    else:
        cv.line([(g.nx + side * (g.nw * 0.3 - 0.006), g.ey + 0.015), (g.nx + side * g.nw * 0.55, g.ny - 0.012)],
                0.008, shadow)
        cv.ellipse(g.nx, g.ny + 0.004, g.nw * 1.05, 0.015 * g.nw / 0.03, _shade(skin, 0.78, 150))
        cv.ellipse(g.nx, g.ny - 0.006, g.nw * 0.5, 0.01 * g.nw / 0.03, _shade(skin, 1.1, 110))
        for sd in (-1, 1):   # nose wings: outward arcs
            t0 = -1.2 if sd > 0 else 1.9
            wing = _ellipse(g.nx + sd * g.nw * 0.8, g.ny, g.nw * 0.35, 0.4 * g.nw, t0=t0, t1=t0 + 2.4, n=8)
            cv.line(wing, 0.005, _shade(skin, 0.65, 190))
    for sd in (-1, 1):
        cv.ellipse(g.nx + sd * g.nw * 0.45, g.ny + 0.006, 0.0085 * g.nw / 0.03, 0.005, _shade(skin, 0.42, 220))


def _draw_mouth(cv, g, look, skin):
    x, mid, ui, li, uo, lo = _mouth_curves(g)
    lip = _mix(_shade(skin, 0.86), (175, 78, 82), 0.42)
    if look.makeup:
        lip = (172, 42, 92)
    if look.lipstick:
        lip = LIPSTICK
    cv.poly(_band(x, uo, ui), lip)
    cv.poly(_band(x, li, lo), _shade(lip, 1.06))
    if g.opening > 0:
        cv.poly(_band(x, ui, li), (58, 16, 22))
        if g.teeth:   # upper teeth fill the top part of the opening
            prof = (1 - np.linspace(-1, 1, len(x)) ** 2) ** g.mouth_p
            cv.poly(_band(x, ui, ui + g.teeth * g.opening * prof), (242, 240, 232))
    cv.line(np.stack([x, (ui + li) / 2 if g.opening == 0 else ui], 1), 0.004, _shade(lip, 0.55, 200))


def _draw_facial_hair(cv, g, idn, look, det, before_mouth):
    col = _shade(HAIR_COLORS[idn.hair_color], 0.85)
    dark = _shade(col, 0.6, 180)
    if before_mouth and look.beard:
        poly, n_outer = _beard_polygon(g, 0.04)
        cv.poly(poly, col)
        for x, y in _resample(poly[:n_outer], 0.03):   # bushy jaw line
            cv.circle(x, y, 0.014, col)
        _texture(cv, g, poly, "beard", col, det)
    if before_mouth and look.goatee:
        x, mid, ui, li, uo, lo = _mouth_curves(g, 9)
        top = lo.max() + 0.004
        cv.poly([(g.mx - g.mw * 0.5, top), (g.mx - g.mw * 0.62, top + 0.04), (g.mx - 0.042, g.chin - 0.002),
                 (g.mx, g.chin + 0.022), (g.mx + 0.042, g.chin - 0.002), (g.mx + g.mw * 0.62, top + 0.04),
                 (g.mx + g.mw * 0.5, top)], col)
    if not before_mouth and look.mustache:
        x, mid, ui, li, uo, lo = _mouth_curves(g, 13)
        ext = np.concatenate([[g.mx - g.mw * 1.18], x, [g.mx + g.mw * 1.18]])
        bottom = np.concatenate([[g.my + g.corner_dy + 0.016], uo + 0.004, [g.my + g.corner_dy + 0.016]])
        top = g.ny + 0.019 + 0.012 * ((ext - g.mx) / g.mw) ** 2
        cv.poly(_band(ext, top, bottom), col)
        for k in range(-5, 6):
            xx = g.mx + k * g.mw * 0.18
            cv.line([(xx, g.ny + 0.022), (xx + k * 0.002, g.my - 0.02)], 0.004, dark)
    if not before_mouth and look.sideburns:
        for sd in (-1, 1):
            y = np.linspace(g.ey - 0.03, g.ey + 0.1, 8)
            w = _half_width(g, y)
            inner = w - 0.03 + 0.012 * (y - y[0]) / 0.13   # tapering towards the jaw
            cv.poly(_band(y, g.fx + sd * (w + 0.004), g.fx + sd * inner)[:, ::-1], col)


def _draw_hat(cv, g, det):
    col, kind = det["hat"], det["hat_kind"]
    dark = _shade(col, 0.7)
    yb = g.ey - (0.12 if kind == 0 else 0.135)
    rx, ry = g.a + 0.035, B_UP + 0.035
    if kind == 2:   # brimmed hat: wide brim, then a crown with a band
        cv.ellipse(g.fx, yb - 0.01, g.a + 0.13, 0.04, dark)
        cv.poly([(g.fx - g.a - 0.01, yb - 0.01), (g.fx - g.a + 0.03, g.top - 0.06), (g.fx, g.top - 0.04),
                 (g.fx + g.a - 0.03, g.top - 0.06), (g.fx + g.a + 0.01, yb - 0.01)], col)
        cv.poly([(g.fx - g.a - 0.005, yb - 0.015), (g.fx - g.a + 0.002, yb - 0.05),
                 (g.fx + g.a - 0.002, yb - 0.05), (g.fx + g.a + 0.005, yb - 0.015)], (30, 28, 28))
        return
    a0 = np.arcsin(np.clip((yb - g.fy) / ry, -1, 1))
    arc = np.linspace(a0, -np.pi - a0, 32)
    cv.poly(np.stack([g.fx + rx * np.cos(arc), g.fy + ry * np.sin(arc)], 1), col)
    if kind == 0:   # beanie: folded cuff and a pompom
        cv.poly([(g.fx - rx - 0.008, yb), (g.fx - rx + 0.002, yb - 0.05), (g.fx + rx - 0.002, yb - 0.05),
                 (g.fx + rx + 0.008, yb)], dark)
        cv.ellipse(g.fx, g.top - 0.04, 0.035, 0.032, _shade(col, 1.15))
    else:   # cap: a brim out in front
        cv.ellipse(g.fx, yb, g.a + 0.02, 0.042, dark)
        cv.poly([(g.fx - g.a - 0.02, yb), (g.fx + g.a + 0.02, yb), (g.fx + g.a, yb - 0.01),
                 (g.fx - g.a, yb - 0.01)], dark)
        cv.ellipse(g.fx, g.top - 0.03, 0.012, 0.008, dark)


def _draw_glasses(cv, g, det):
    frame = _rgba(det["frame"], 255)
    lw, lh = max(g.ew) * 1.6, max(g.ew) * 1.15
    for sd in (-1, 1):
        cx = g.ex[(sd + 1) // 2]
        if det["glasses_kind"] == 0:
            rim = _ellipse(cx, g.ey + 0.004, lw, lh, n=28)
        else:   # rounded rectangle as a superellipse
            t = np.linspace(0, 2 * np.pi, 28, endpoint=False)
            rim = np.stack([cx + lw * np.sign(np.cos(t)) * np.abs(np.cos(t)) ** 0.5,
                            g.ey + 0.004 + lh * np.sign(np.sin(t)) * np.abs(np.sin(t)) ** 0.5], 1)
        cv.poly(rim, (200, 220, 235, 45))
        cv.line(np.vstack([rim, rim[:2]]), 0.014, frame)
        temple = g.fx + sd * (_half_width(g, g.ey) + 0.005)
        cv.line([(cx + sd * lw, g.ey - 0.005), (temple, g.ey - 0.01)], 0.012, frame)
    bridge = [(g.ex[0] + lw * 0.95, g.ey - 0.012), (g.fx + YAW_SHIFT * g.yaw, g.ey - 0.02),
              (g.ex[1] - lw * 0.95, g.ey - 0.012)]
    cv.line(bridge, 0.011, frame)


def _draw_earrings(cv, g, det):
    col = _rgba(det["earring"], 255)
    for sd, k in ((-1, 1 + 0.4 * g.yaw), (1, 1 - 0.4 * g.yaw)):
        x = g.fx + sd * (_half_width(g, g.ey + 0.05) + 0.01 * k)
        y = g.ey + 0.09
        if det["earring_kind"] == 0:   # hoop
            cv.line(_ellipse(x, y + 0.03, 0.026, 0.03, n=20)[list(range(20)) + [0, 1]], 0.013, col)
        else:   # stud and drop
            cv.line([(x, y), (x, y + 0.03)], 0.008, col)
            cv.ellipse(x, y + 0.042, 0.019, 0.021, col)


def _background(bg, W):
    if bg.kind == "flat":
        return Image.new("RGB", (W, W), tuple(bg.c1))
    t = np.linspace(0, 1, 64)   # a smooth ramp: compute it small, upsample bilinearly
    tt = t[:, None] * np.ones(64) if bg.kind == "vertical" else (t[:, None] + t[None, :]) / 2
    c1, c2 = np.array(bg.c1, float), np.array(bg.c2, float)
    ramp = Image.fromarray((c1 + (c2 - c1) * tt[..., None]).round().astype(np.uint8))
    return ramp.resize((W, W), Image.Resampling.BILINEAR)


def _toon(img, ss):
    """The toon look of a supersampled drawing: colours saturated and posterised into flat cels, and ink lines
    wherever the drawing has an edge (found before posterising, so shading steps get no line)."""
    soft = np.asarray(img.filter(ImageFilter.GaussianBlur(ss)), np.float32)
    edge = np.sqrt(sum(np.square(d) for d in np.gradient(soft, axis=(0, 1))).sum(-1))   # colour edges
    ink = Image.fromarray(((edge > TOON_EDGE) * 255).astype(np.uint8))
    x = np.asarray(ImageEnhance.Color(img).enhance(1.7), np.float32) / 255
    x = np.round(x * (TOON_LEVELS - 1)) / (TOON_LEVELS - 1) * 0.9 + 0.08   # flat cels, never pure black/white
    out = Image.fromarray((x * 255).round().astype(np.uint8))
    out.paste(Image.new("RGB", out.size, TOON_INK), mask=ink)
    return out


def render_face(identity, look, pose=None, size=64, background=None, domain="natural"):
    """Render one face. Returns (PIL RGB image, landmarks float32 [5, 2] in output pixels). `domain`: one of
    DOMAINS, the style it is drawn in (the geometry, labels and landmarks are the same)."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; SynthFaces draws {', '.join(DOMAINS)}")
    pose, background = pose or Pose(), background or Background()
    ss = 4 if size <= 128 else 2
    img = _background(background, size * ss)
    cv = _Canvas(img, pose)
    g = _geometry(identity, look, pose)
    det = _details(look.detail_seed)
    skin = _skin_color(identity.skin)
    hair = tuple(int(min(255, c * det["hair_gain"])) for c in HAIR_COLORS[look.hair_color])
    _draw_hair_back(cv, g, look, hair, det)
    _draw_body(cv, g, look, skin, det)
    _draw_face(cv, g, identity, look, skin, det)
    _draw_eyes(cv, g, look, skin, det)
    _draw_brows(cv, g, identity)
    _draw_nose(cv, g, skin)
    _draw_facial_hair(cv, g, identity, look, det, before_mouth=True)
    _draw_mouth(cv, g, look, skin)
    _draw_facial_hair(cv, g, identity, look, det, before_mouth=False)
    _draw_hair_front(cv, g, look, hair, det)
    if look.hat:
        _draw_hat(cv, g, det)
    if look.eyeglasses:
        _draw_glasses(cv, g, det)
    if look.earrings:
        _draw_earrings(cv, g, det)
    if domain == "toon":
        img = _toon(img, ss)
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    lm = (np.asarray(cv.pts(_landmarks_canonical(g))).reshape(5, 2) + 0.5) / ss
    return img, lm.astype(np.float32)


def sample_face(seed, size=64, domain="natural"):
    """A random face of its own identity: (image, landmarks [5, 2], labels dict)."""
    rng = np.random.default_rng(seed)
    idn = sample_identity(rng)
    look = sample_look(rng, idn)
    img, lm = render_face(idn, look, sample_pose(rng), size, sample_background(rng), domain)
    return img, lm, labels(idn, look)



# ----------------------------------------------------------------------------------------------------
# Figures

FIGURE_LABELS = {"Smiling": "smiling", "Surprised": "surprised", "Angry": "angry",
                 "Mouth_Slightly_Open": "mouth open",
                 "Eyeglasses": "glasses", "Wearing_Hat": "hat", "Wearing_Earrings": "earrings",
                 "Wearing_Lipstick": "lipstick", "Heavy_Makeup": "makeup", "Big_Lashes": "lashes",
                 "Freckles": "freckles", "Rosy_Cheeks": "rosy cheeks", "Beard": "beard", "Mustache": "moustache",
                 "Goatee": "goatee", "5_o_Clock_Shadow": "stubble", "Sideburns": "sideburns",
                 "Receding_Hairline": "receding", "Wearing_Necktie": "tie", "Wearing_Necklace": "necklace",
                 "Bags_Under_Eyes": "eye bags", "Dark_Skin": "dark skin", "Pale_Skin": "pale skin"}
FIGURE_SEEDS = (18, 20, 43, 59, 60, 65, 81, 118, 134, 146, 172, 198, 202, 214, 221, 229, 266, 287, 295, 297,
                303, 330, 344, 399)   # picked so the 24 faces show every prompt attribute


def sample_grid(seeds=FIGURE_SEEDS, size=64, scale=3, cols=6, domain="natural"):
    """Sample faces (nearest-upscaled) with their hair and salient attributes written under each."""
    from PIL import ImageFont
    font = ImageFont.load_default()
    W, H = size * scale, size * scale + 40
    grid = Image.new("RGB", (cols * W, -(-len(seeds) // cols) * H), "white")
    draw = ImageDraw.Draw(grid)
    for k, seed in enumerate(seeds):
        img, _, lab = sample_face(seed, size, domain)
        x, y = (k % cols) * W, (k // cols) * H
        grid.paste(img.resize((W, W), Image.Resampling.NEAREST), (x, y))
        color = next((c for c, col in COLOR_COLUMNS.items() if lab[col]), "")
        style = next(s for s, col in STYLE_COLUMNS.items() if lab[col])
        hair = f"{color} {'long ' if lab['Long_Hair'] else ''}{style}".strip()
        words = [f"{'man' if lab['Male'] else 'woman'}{'' if lab['Young'] else ', old'}: {hair}"]
        words += [v for c, v in FIGURE_LABELS.items() if lab[c]]
        lines = [words[0], ", ".join(words[1:4]), ", ".join(words[4:7])]
        for j, text in enumerate(lines):
            draw.text((x + 3, y + W + 1 + 12 * j), text, fill="black", font=font)
    return grid



def photo_background(w, h, seed=0):
    """A photo-like backdrop: colour gradient, sensor-like noise and coloured clutter."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w] / max(w, h)
    base = np.stack([90 + 80 * xx, 110 + 60 * yy, 140 - 50 * xx * yy], -1)
    img = Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(25):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        box = [x0, y0, x0 + rng.uniform(20, 200), y0 + rng.uniform(20, 200)]
        colour = tuple(int(v) for v in rng.integers(30, 230, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    return img


def paste_face(photo, img, scale, angle, center):
    """Paste `img` into `photo` rotated by `angle` degrees (counter-clockwise on screen), scaled, its
    centre at `center`. Returns the new photo and the map of points img -> photo (pixel centres at
    integers, align.py's convention, on both sides)."""
    t = np.deg2rad(-angle)  # image y points down: a negative angle turns counter-clockwise on screen
    rot = scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    shift = np.asarray(center, np.float64) - rot @ (np.array(img.size) / 2)  # continuous coords
    inv = np.linalg.inv(rot)
    off = -inv @ shift
    data = (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1])  # photo -> img, as PIL wants
    warped = img.transform(photo.size, Image.AFFINE, data, Image.BICUBIC)
    mask = Image.new("L", img.size, 255).transform(photo.size, Image.AFFINE, data, Image.BILINEAR)
    to_photo = lambda p: (np.asarray(p, np.float64) + 0.5) @ rot.T + shift - 0.5  # noqa: E731
    return Image.composite(warped, photo, mask), to_photo


def photo_scene(seed, size=256, canvas=(1000, 800), scale=2.3, angle=12.0, center=(520, 390), background_seed=0):
    """A SynthFaces face pasted, rotated and scaled, into a larger photo-like image: the offline stand-in
    for a user's photo in the alignment demo and tests. Returns (photo, the face's 5 MTCNN-order points
    in the photo, in align.py's convention: pixel centres at integers)."""
    img, landmarks, _ = sample_face(seed, size)
    photo, to_photo = paste_face(photo_background(*canvas, seed=background_seed), img, scale, angle, center)
    return photo, to_photo(landmarks.astype(np.float64) - 0.5)  # SynthFaces: pixel i spans [i, i + 1)

