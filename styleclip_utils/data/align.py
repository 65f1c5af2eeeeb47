"""Align a real photo to the FFHQ crop, the input every FFHQ StyleGAN encoder (e4e, pSp) expects.

    img = align_face("photo.jpg", size=256)                  # detect with MTCNN, refine the eyes, warp
    img, info = align_face(photo, return_info=True)          # + landmarks, quad, faces found, notes
    img = align_face(photo, landmarks=pts5)                  # skip detection
    img = align_face("anim.gif")                             # the first frame with a face (info["frame"])

Landmarks are the 5 MTCNN points [left eye, right eye, nose, mouth left, mouth right] in pixel
coordinates of the (EXIF-rotated) image, pixel centres at integers. The crop is the FFHQ dataset's:
an oriented square (`ffhq_quad`) built from the eyes and mouth corners, resampled as the official
script does (`warp_quad`). `aligned_coords` maps image points to where they land in the output.
MTCNN's eye points are coarse (~5% of the eye distance); `refine_eye_centres` moves them to the
iris centres before the crop is built.

Every problem with the input raises a subclass of `FaceAlignmentError` (a `ValueError`) whose
message says what to do about it. A face cut by the photo's border is aligned with a `FaceCutWarning`.
"""
import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageFilter, ImageOps, UnidentifiedImageError

MIN_SIDE = 64               # px, shorter side of the input image
MIN_EYE_DISTANCE = 8.0      # px; below this the 5 points cannot orient the crop reliably
MAX_PIXELS = 90_000_000     # MTCNN alone needs over 1 GB of float32 for a photo that size
CUT_TOLERANCE = 0.02        # warn when the crop reaches this fraction of its side beyond the photo: thinner
                            # slivers (background, blurred) are common and harmless; FFHQ's script pads them too
MAX_FRAMES = 50             # frames of a GIF/APNG/TIFF searched for a face (MTCNN: ~0.1-0.5 s a frame)
SUPERSAMPLE = 4             # the quad is sampled at 4x the output size, then downsampled with
                            # antialias (FFHQ: 4096 -> 1024), so bilinear sampling never aliases


# ----------------------------------------------------------------------------------------------------
# Errors

class FaceAlignmentError(ValueError):
    """Base class: the input cannot be aligned; the message says why and what to do."""


class NotAnImageError(FaceAlignmentError):
    """A missing file, a file that is not an image, or an object that is not an image."""


class CorruptImageError(FaceAlignmentError):
    """An image file that cannot be fully decoded (truncated download, damaged file)."""


class UnsupportedImageError(FaceAlignmentError):
    """An image whose mode, shape or dtype cannot be converted to 8-bit RGB."""


class ImageTooSmallError(FaceAlignmentError):
    """The image, or the face in it, is too small to align."""


class ImageTooLargeError(FaceAlignmentError):
    """The image has too many pixels (or is a decompression bomb)."""


class NoFaceError(FaceAlignmentError):
    """MTCNN found no face."""


class FaceCutWarning(UserWarning):
    """The FFHQ crop reaches beyond the photo: the missing part of the face is filled in by reflection."""


# ----------------------------------------------------------------------------------------------------
# Loading: anything the user may hand us -> 8-bit RGB PIL image, with a note for every conversion

def load_image(image, notes=None):
    """A path, PIL image or HxW[xC] numpy array -> RGB PIL image (the first frame of a GIF, APNG or
    multi-page TIFF). Conversions are appended to `notes`."""
    notes = [] if notes is None else notes
    return _prepare(*_open(image, notes), notes)


def _open(image, notes):
    """-> (PIL image as given, its name in messages); decoded and checked for size, not yet converted."""
    if isinstance(image, (str, Path)):
        img = _open_file(Path(image))
        name = str(image)
    elif isinstance(image, (bytes, bytearray)):  # an upload, decoded in memory with the checks of a file
        name = "the upload"
        img = _decode(io.BytesIO(image), name)
    elif isinstance(image, Image.Image):
        img = image
        name = "the image"
        _check_pixels(img.size, name)
        _load_pixels(img, name)
    elif isinstance(image, np.ndarray):
        img = _array_to_image(image, notes)
        name = "the array"
        _check_pixels(img.size, name)
    else:
        raise NotAnImageError(f"expected a file path, the bytes of an image file, a PIL image or an HxWx3 uint8 numpy array, "
                              f"got {type(image).__name__}")
    return img, name


def _prepare(img, name, notes):
    """EXIF rotation, conversion to RGB and the size check of `load_image`."""
    # Phone photos store their rotation in EXIF; MTCNN only finds upright faces.
    if img.getexif().get(0x0112, 1) != 1:  # 0x0112: Orientation
        img = ImageOps.exif_transpose(img)
        notes.append("rotated according to the EXIF orientation tag")
    img = _to_rgb(img, notes)

    w, h = img.size
    if min(w, h) < MIN_SIDE:
        raise ImageTooSmallError(f"{name} is {w}x{h} px; need at least {MIN_SIDE} px on the shorter "
                                 f"side: use a larger photo in which the face is at least ~100 px wide")
    return img


def _open_file(path):
    if not path.is_file():
        raise NotAnImageError(f"{path}: no such file; check the path")
    return _decode(path, str(path))


def _decode(source, path):
    """PIL image of a file path or a file object, checked for bombs, unreadable data and truncation."""
    try:
        # PIL only warns between 89 and 179 Mpx; treat the warning as the error it is.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(source)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLargeError(f"{path} declares too many pixels ({e}); it may be a decompression "
                                 f"bomb. If it is a real photo, downscale it below "
                                 f"{MAX_PIXELS / 1e6:.0f} Mpx first") from e
    except UnidentifiedImageError as e:
        raise NotAnImageError(f"{path} is not an image file PIL can read (unknown format, a "
                              f"non-image file, or a damaged header); pass a JPEG or PNG photo") from e
    except OSError as e:
        raise NotAnImageError(f"{path} cannot be read: {e}") from e
    _check_pixels(img.size, path)  # before decoding: never decode a bomb
    _load_pixels(img, path)
    return img


def _check_pixels(size, name):
    w, h = size
    if w * h > MAX_PIXELS:
        raise ImageTooLargeError(f"{name} is {w}x{h} = {w * h / 1e6:.0f} Mpx, more than "
                                 f"{MAX_PIXELS / 1e6:.0f} Mpx; downscale it first (~4000 px on the long "
                                 f"side is plenty even for a 1024 px crop)")


def _load_pixels(img, name):
    """Decode every pixel now, so a truncated file fails here instead of coming back grey-padded."""
    allow_truncated = ImageFile.LOAD_TRUNCATED_IMAGES  # data-loading code often sets it globally
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        img.load()
    except (OSError, SyntaxError, EOFError, ValueError) as e:
        raise CorruptImageError(f"{name} is truncated or corrupt ({e}); re-download or re-export "
                                f"the file") from e
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = allow_truncated


def _array_to_image(a, notes):
    shape = a.shape
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        hint = "; it looks channels-first: use a.transpose(1, 2, 0)" if a.ndim == 3 and a.shape[0] in (3, 4) else ""
        raise UnsupportedImageError(f"array of shape {shape}: expected HxWx3 (RGB), HxWx4 (RGBA) or "
                                    f"HxW (grayscale){hint}")
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = np.rint(a / 257.0).astype(np.uint8)
        notes.append("16-bit array scaled to 8 bits")
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype.kind == "f" and np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1:
        a = np.rint(a * 255).astype(np.uint8)
        notes.append("float array in [0, 1] scaled to 8 bits")
    else:
        raise UnsupportedImageError(f"array of dtype {a.dtype}: expected uint8 in 0..255 (or uint16, "
                                    f"or float in 0..1); convert with a.astype(np.uint8)")
    return Image.fromarray(np.ascontiguousarray(a))


def _to_rgb(img, notes):
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_rgb(img, notes)
    try:
        if img.has_transparency_data:
            # Transparent regions become white, the usual background of cut-out portraits.
            rgba = img.convert("RGBA")
            white = Image.new("RGBA", img.size, (255, 255, 255, 255))
            notes.append(f"transparency (mode {mode}) composited on white")
            return Image.alpha_composite(white, rgba).convert("RGB")
        rgb = img.convert("RGB")
    except ValueError as e:
        raise UnsupportedImageError(f"image mode {mode} cannot be converted to RGB ({e}); save the "
                                    f"image as an 8-bit RGB JPEG or PNG") from e
    if mode in ("L", "1"):
        notes.append(f"grayscale image (mode {mode}) converted to RGB; the edit will be grayscale-like")
    else:
        notes.append(f"mode {mode} converted to RGB")
    return rgb


def _high_depth_to_rgb(img, notes):
    """16/32-bit integer or float grayscale -> 8 bits. PIL's own convert clips at 255 instead of scaling."""
    a = np.asarray(img).astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    if img.mode.startswith("I;16") or (img.mode == "I" and lo >= 0 and hi <= 65535):
        a = a / 257.0  # 16-bit data (older Pillow opened 16-bit PNGs as mode I)
        notes.append(f"16-bit image (mode {img.mode}) scaled to 8 bits")
    elif img.mode == "F" and lo >= 0 and hi <= 1:
        a = a * 255.0
        notes.append("float image in [0, 1] scaled to 8 bits")
    else:
        a = (a - lo) / max(hi - lo, 1e-12) * 255.0
        notes.append(f"mode {img.mode} image stretched from [{lo:g}, {hi:g}] to 8 bits")
    gray = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))
    notes.append(f"grayscale image (mode {img.mode}) converted to RGB")
    return gray.convert("RGB")


def _frame(src, name, k, notes):
    """Frame k of the image `src` (as `_open` returns it) as `load_image` gives the first one."""
    if getattr(src, "n_frames", 1) == 1:
        return _prepare(src, name, notes)
    src.seek(k)
    _load_pixels(src, f"{name} (frame {k})")
    return _prepare(src.copy(), name, notes)  # a copy: the next seek would change it


# ----------------------------------------------------------------------------------------------------
# Detection (facenet-pytorch MTCNN, imported on first use: it pulls in torchvision)

_mtcnn_cache = {}


def _mtcnn(device=None):
    key = str(device or "cpu")
    if key not in _mtcnn_cache:
        from facenet_pytorch import MTCNN
        _mtcnn_cache[key] = MTCNN(keep_all=True, device=device)
    return _mtcnn_cache[key]


def largest_face(boxes):
    """Index of the box [x0, y0, x1, y1] with the largest area."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))


def detect_landmarks(image, device=None, return_info=False, refine_eyes=True, frame=None):
    """5 MTCNN landmarks [5, 2] of the largest face; with return_info also a dict about the detection.

    refine_eyes: move the eye points to the iris centres (`refine_eye_centres`); info keeps MTCNN's
    own points in `mtcnn_landmarks`. Raises NoFaceError when MTCNN finds no face; warns when it
    finds several. A GIF, APNG or multi-page TIFF is searched frame by frame: the landmarks are those
    of the first frame with a face, `info["frame"]` (warned when not frame 0); `frame`: that one only.
    """
    notes = []
    src, name = _open(image, notes)
    try:
        _, landmarks, info = _detect_frames(src, name, _check_frame(src, frame), device, refine_eyes, notes)
    finally:
        _close_own(src, image)
    info["warnings"] = notes + info["warnings"]
    return (landmarks, info) if return_info else landmarks


def _close_own(src, image):
    """Close the file PIL keeps open to seek a multi-frame image that we opened (the frames used are copies)."""
    if isinstance(image, (str, Path)) and getattr(src, "n_frames", 1) > 1:
        src.close()


def _check_frame(src, frame):
    n = getattr(src, "n_frames", 1)
    if frame is not None and not (isinstance(frame, int) and 0 <= frame < n):
        raise ValueError(f"frame must be None (the first frame with a face) or a frame index below {n}, the "
                         f"image's number of frames; got {frame!r}")
    return frame


def _detect_frames(src, name, frame, device, refine_eyes, notes):
    """MTCNN on frame after frame of `src` (an animation or a scan may show the face only later), or on
    `frame` alone -> (RGB image, landmarks, info) of the first frame with a face; info["frame"] says which.
    The conversion notes of that frame are appended to `notes`."""
    n = getattr(src, "n_frames", 1)
    frames = range(min(n, MAX_FRAMES)) if frame is None else [frame]
    start = src.tell() if n > 1 else 0
    try:
        for k in frames:
            frame_notes = []
            img = _frame(src, name, k, frame_notes)
            try:
                landmarks, info = _detect(img, device, refine_eyes)
            except NoFaceError:
                if n == 1:
                    raise
                continue
            notes += frame_notes
            info["frame"] = k
            if k > 0 and frame is None:
                msg = f"{name} has {n} frames and no face before frame {k}: aligning frame {k}"
                warnings.warn(msg, stacklevel=3)
                info["warnings"].insert(0, msg)
            elif n > 1:
                info["warnings"].insert(0, f"{name} has {n} frames: aligning frame {k}")
            return img, landmarks, info
    finally:
        if n > 1:
            src.seek(start)  # the caller's PIL image is left on the frame it was on
    searched = f"frame {frame}" if frame is not None else (
        f"any of its {n} frames" if n <= MAX_FRAMES else f"its first {MAX_FRAMES} frames (of {n})")
    raise NoFaceError(f"no face found in {searched} of {name}; save the frame with the face as a JPEG or PNG "
                      f"(a frontal, well-lit one in which the face is at least ~100 px wide), or pass the 5 "
                      f"landmarks yourself with landmarks= and frame=")


def _detect(img, device, refine_eyes):
    boxes, probs, points = _mtcnn(device).detect(img, landmarks=True)
    if boxes is None:
        raise NoFaceError("no face found; use a frontal, well-lit photo in which the face is at least "
                          "~100 px wide, or pass the 5 landmarks yourself with landmarks=")
    # facenet-pytorch returns object arrays under NumPy 2
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    probs = np.asarray(probs, np.float64).reshape(-1)
    points = np.asarray(points, np.float64).reshape(-1, 5, 2)
    best = largest_face(boxes)
    notes = []
    if len(boxes) > 1:
        msg = f"{len(boxes)} faces found; aligning the largest (box {np.round(boxes[best]).tolist()})"
        warnings.warn(msg, stacklevel=4)  # the user's call of align_face / detect_landmarks
        notes.append(msg)
    landmarks = points[best]
    if refine_eyes:
        landmarks, refine_notes = refine_eye_centres(img, landmarks)
        notes += refine_notes
    info = dict(n_faces=len(boxes), face_index=best, box=boxes[best], prob=float(probs[best]),
                boxes=boxes, probs=probs, all_landmarks=points, mtcnn_landmarks=points[best],
                warnings=notes)
    return landmarks, info


# ----------------------------------------------------------------------------------------------------
# Geometry: the FFHQ crop square and the resampling

def ffhq_quad(landmarks):
    """The FFHQ crop as a square quad [4, 2]: top-left, bottom-left, bottom-right, top-right corners.

    Oriented between the eye line and the eye-mouth line, sized by whichever of the eye distance
    and the eye-mouth distance is relatively larger, centred a little below the eyes.
    """
    eye_left, eye_right, _, mouth_left, mouth_right = np.asarray(landmarks, np.float64)
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    mouth_avg = (mouth_left + mouth_right) / 2
    eye_to_mouth = mouth_avg - eye_avg

    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]  # eye line averaged with the mouth line turned 90°
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)  # half the side
    y = np.flipud(x) * [-1, 1]  # x turned 90°, pointing down the face
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def aligned_coords(points, quad, size):
    """Where image points [..., 2] land in the size x size crop of `quad` (both in pixel-index coords).

    In continuous coordinates (pixel i spans [i, i+1]) the crop maps its corners (0, 0), (0, size),
    (size, size), (size, 0) onto the quad corners shifted by +0.5; the quad is a square, so the map
    is affine and `warp_quad` realises it exactly (up to resampling).
    """
    quad = np.asarray(quad, np.float64)
    basis = np.stack([quad[3] - quad[0], quad[1] - quad[0]], axis=1)  # columns: output x and y axes
    rel = np.asarray(points, np.float64) - quad[0]
    return np.linalg.solve(basis, rel.reshape(-1, 2).T).T.reshape(rel.shape) * size - 0.5


def warp_quad(img, quad, size, supersample=SUPERSAMPLE):
    """Resample the square `quad` (pixel-index coords) of RGB `img` to a size x size image, as FFHQ does.

    Shrink a much larger image first (antialiased), crop around the quad, pad with blurred
    reflections fading to the median colour where the quad leaves the image, sample the quad
    bilinearly at `supersample` x size, then downsample with antialias.
    """
    quad = np.asarray(quad, np.float64) + 0.5  # continuous coords, PIL's convention for transforms
    qsize = float(np.hypot(*(quad[3] - quad[0])))  # side of the square

    # Shrink: keep the quad within ~2-4x the output size, so the bilinear sampling does not alias.
    shrink = int(np.floor(qsize / size * 0.5))
    if shrink > 1:
        w, h = img.size
        new = (max(int(np.rint(w / shrink)), 1), max(int(np.rint(h / shrink)), 1))
        img = img.resize(new, Image.LANCZOS)
        quad *= [new[0] / w, new[1] / h]  # the exact scale, not 1/shrink: rint changed the size
        qsize /= shrink

    # Crop to the quad plus a border (the blur and the bilinear taps look a little outside it).
    border = max(int(np.rint(qsize * 0.1)), 3)
    lo = np.floor(quad.min(axis=0)).astype(int) - border
    hi = np.ceil(quad.max(axis=0)).astype(int) + border
    box = (max(lo[0], 0), max(lo[1], 0), min(hi[0], img.size[0]), min(hi[1], img.size[1]))
    img = img.crop(box)
    quad -= box[:2]

    # Pad only where the quad comes within 4 px of the image edge.
    lo = np.floor(quad.min(axis=0)).astype(int)
    hi = np.ceil(quad.max(axis=0)).astype(int)
    pad = np.maximum([border - lo[0], border - lo[1], hi[0] - img.size[0] + border,
                      hi[1] - img.size[1] + border], 0)
    if pad.max() > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        img = _pad_reflect_blur(img, pad, blur=qsize * 0.02)
        quad += pad[:2]

    work = size * supersample
    img = img.transform((work, work), Image.QUAD, tuple(quad.flatten()), Image.BILINEAR)
    return img.resize((size, size), Image.LANCZOS)


def _cut_by_border(quad, image_size, size):
    """The FaceCutWarning text when the crop `quad` reaches beyond the image by CUT_TOLERANCE or more, else None."""
    w, h = image_size
    side = float(np.hypot(*(quad[3] - quad[0])))
    # pixel-index coords: the image covers [-0.5, w - 0.5] x [-0.5, h - 0.5]
    beyond = {"left": -0.5 - quad[:, 0].min(), "top": -0.5 - quad[:, 1].min(),
              "right": quad[:, 0].max() - (w - 0.5), "bottom": quad[:, 1].max() - (h - 0.5)}
    beyond = {k: v for k, v in beyond.items() if v >= CUT_TOLERANCE * side}
    if not beyond:
        return None
    most = max(beyond.values())
    sides = list(beyond)
    edges = (", ".join(sides[:-1]) + " and " + sides[-1] + " edges") if len(sides) > 1 else sides[0] + " edge"
    return (f"the face is cut by the photo's border: the FFHQ crop reaches up to {most:.0f} px "
            f"({most / side:.0%} of its side) beyond the photo's {edges}; that part of the {size} px crop (up "
            f"to {most / side * size:.0f} px) is filled in by reflection padding, so the face there is made up. "
            f"Use a photo with more margin around the face")


def _pad_reflect_blur(img, pad, blur):
    """Pad (left, top, right, bottom) by reflection, then blur the padding and fade it to the median
    colour with distance from the image, so mirrored features do not look like a second face."""
    left, top, right, bottom = (int(p) for p in pad)
    a = np.pad(np.asarray(img, np.float32), ((top, bottom), (left, right), (0, 0)), mode="reflect")
    h, w = a.shape[:2]
    y, x = np.ogrid[:h, :w]
    # 1 - (distance into the image / pad width), max over the 4 sides: 0 at the image edge, 1 at the
    # outer edge of the padding, negative inside the image.
    mask = np.maximum(1 - np.minimum(x / left, (w - 1 - x) / right),
                      1 - np.minimum(y / top, (h - 1 - y) / bottom))[..., None].astype(np.float32)
    blurred = np.asarray(Image.fromarray(_to_uint8(a)).filter(ImageFilter.GaussianBlur(blur)), np.float32)
    a += (blurred - a) * np.clip(mask * 3 + 1, 0, 1)  # starts blurring a third of a pad inside
    a += (np.median(a, axis=(0, 1)) - a) * np.clip(mask, 0, 1)
    return Image.fromarray(_to_uint8(a))


def _to_uint8(a):
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------
# Eye-centre refinement (Timm & Barth 2011, "Accurate eye centre localisation by means of gradients")
#
# MTCNN's eye points are off by ~5% of the eye distance: several px in a 256 px crop, which moves the
# whole crop. The iris is a dark disc, so image gradients on its rim point radially away from its
# centre: the centre is the point c maximising mean_i max(0, d_i(c) . g_i)^2 over strong-gradient
# pixels i (d_i(c): unit vector from c to pixel i, g_i: unit gradient), weighted by how dark c is.
# The search runs in a canonical frame (eyes upright, a fixed eye distance) around each MTCNN point,
# so every face size and roll is handled alike, and the result is mapped back to the image.

EYE_FRAME = 64       # px: eye distance in the canonical frame (about the FFHQ crop's at 256 px)
EYE_REGION = 0.45    # half-side of the square whose edges vote, fraction of the eye distance
EYE_SEARCH = 0.22    # search radius around the MTCNN point, fraction of the eye distance (MTCNN's
                     # error is ~0.05, so 4 sd; the brow is ~0.23 above the eye)
EYE_SURROUND = 4.0   # px (canonical): blur whose difference with the pupil-scale blur says "darker
                     # than around it", which the iris within the white of the eye is
EYE_RIVAL = 0.8      # local maxima scoring at least this fraction of the best one compete (below)


def refine_eye_centres(img, landmarks):
    """MTCNN-order landmarks [5, 2] with both eye points moved to the iris centres found in RGB `img`.

    Returns (landmarks, notes). An eye whose objective is flat, or whose best centre lies on the edge
    of the search window (an implausibly large move), keeps its input point and gets a note.
    """
    landmarks = np.array(landmarks, np.float64)
    eyes = landmarks[:2]
    distance = float(np.hypot(*(eyes[1] - eyes[0])))
    # The canonical frame: a square around the eye midpoint, turned like the FFHQ crop (eye line
    # averaged with the mouth line: steadier than the eye line alone, whose points we distrust), its
    # side twice the eye distance.
    quad = ffhq_quad(landmarks)
    x = (quad[3] - quad[0]) * distance / np.hypot(*(quad[3] - quad[0]))
    y = np.flipud(x) * [-1, 1]
    c = eyes.mean(0)
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    size = 2 * EYE_FRAME
    # supersample 2 is plenty: the search smooths the patch anyway, and it halves the cost
    gray = np.asarray(warp_quad(img, quad, size, supersample=2).convert("L"), np.float64)
    guesses = aligned_coords(eyes, quad, size)

    notes = []
    basis = np.stack([quad[3] - quad[0], quad[1] - quad[0]], axis=1)  # inverts aligned_coords
    for k, side in enumerate(("left", "right")):
        found, why = _eye_centre(gray, guesses[k])
        if found is None:
            notes.append(f"{side} eye: refinement rejected ({why}); kept the MTCNN point")
            continue
        landmarks[k] = quad[0] + basis @ ((found + 0.5) / size)
    return landmarks, notes


def _eye_centre(gray, guess):
    """Timm & Barth's centre of the dark disc near `guess` in the canonical-frame image `gray`.

    Returns (point, None), or (None, reason) when the answer is not trustworthy.
    """
    from scipy import ndimage

    search = EYE_SEARCH * EYE_FRAME
    half = int(np.ceil(EYE_REGION * EYE_FRAME))
    x0, y0 = np.rint(guess).astype(int) - half
    h, w = gray.shape
    if x0 < 0 or y0 < 0 or x0 + 2 * half >= w or y0 + 2 * half >= h:
        return None, "eye too close to the frame edge"
    patch = gray[y0:y0 + 2 * half + 1, x0:x0 + 2 * half + 1]
    local = np.asarray(guess) - [x0, y0]

    # Gradients of a lightly smoothed patch; only the strong ones vote (T&B's threshold: mean + 0.3 std
    # of the magnitude), so flat skin and sensor noise do not.
    gy, gx = np.gradient(ndimage.gaussian_filter(patch, 1.0, mode="nearest"))
    mag = np.hypot(gx, gy)
    strong = mag > mag.mean() + 0.3 * mag.std()
    if not strong.any():
        return None, "no edges near the eye"
    ey, ex = np.nonzero(strong)
    gx, gy = (gx[strong] / mag[strong]).astype(np.float32), (gy[strong] / mag[strong]).astype(np.float32)

    # Candidates: every pixel within the search radius of the guess. (d . g)^2 / |d|^2 instead of
    # normalising d, in float32: ~600 candidates x ~1000 edges per eye, ~5 ms.
    cy, cx = np.mgrid[:patch.shape[0], :patch.shape[1]]
    inside = np.hypot(cx - local[0], cy - local[1]) <= search
    dx = (ex[None, :] - cx[inside][:, None]).astype(np.float32)
    dy = (ey[None, :] - cy[inside][:, None]).astype(np.float32)
    along = np.maximum(dx * gx + dy * gy, 0)  # > 0 only where c is on the dark side of the edge
    score = (along ** 2 / np.maximum(dx * dx + dy * dy, 1)).mean(1).astype(np.float64)
    # T&B's darkness weight (255 - smoothed intensity), times how much darker c is than around it:
    # the iris sits in the white of the eye; brows, hair and glasses frames are dark but not
    # surrounded by light, so this keeps them from winning.
    pupil = ndimage.gaussian_filter(patch, 2.0, mode="nearest")
    contrast = np.maximum(ndimage.gaussian_filter(patch, EYE_SURROUND, mode="nearest") - pupil, 0)
    score *= ((255 - pupil) * contrast)[inside]

    grid = np.zeros(patch.shape)
    grid[inside] = score
    if grid.max() <= 1.3 * np.median(score):
        return None, "objective nearly flat: no dark disc found"
    # An eyebrow (or a thick upper frame) can still score about as high as the iris; in the upright
    # frame it is always above the eye, so of the comparable local maxima take the lowest.
    peaks = (grid == ndimage.maximum_filter(grid, 5)) & inside & (grid >= EYE_RIVAL * grid.max())
    ys, xs = np.nonzero(peaks)
    k = int(np.argmax(ys))
    px, py = xs[k], ys[k]
    if np.hypot(px - local[0], py - local[1]) > search - 1:
        return None, "best centre at the edge of the search window, too far from MTCNN's point"
    # Sub-pixel: score-weighted centroid of the 5x5 neighbourhood, above its lowest value.
    win = grid[py - 2:py + 3, px - 2:px + 3]
    wts = win - win.min()
    if wts.sum() > 0:
        oy, ox = np.mgrid[-2:3, -2:3]
        px, py = px + (ox * wts).sum() / wts.sum(), py + (oy * wts).sum() / wts.sum()
    return np.array([px + x0, py + y0], np.float64), None


# ----------------------------------------------------------------------------------------------------
# The entry point

def align_face(image, size=256, landmarks=None, device=None, return_info=False, refine_eyes=True, frame=None):
    """FFHQ-aligned size x size RGB crop of the largest face in `image` (path, bytes of a file, PIL image or array).

    landmarks: optional [5, 2] MTCNN-order points in the image's pixel coordinates; skips detection.
    device: torch device for MTCNN (default CPU).
    refine_eyes: after MTCNN, move its eye points to the iris centres (`refine_eye_centres`): on
    SynthFaces this takes the eye error in a 256 px crop from ~3 px to ~1.3 px (median). Ignored
    when landmarks are given.
    frame: for a GIF, APNG or multi-page TIFF, the frame to align; None: the first frame in which MTCNN
    finds a face (warned when it is not frame 0), or frame 0 when landmarks are given.
    return_info: also return a dict with `landmarks`, `quad`, `matrix` (2x3 affine, image pixel ->
    output pixel coords), `source` ("mtcnn" or "given"), `frame`, `image_size`, `n_faces`,
    `box`, `prob`, `boxes`, `probs`, `all_landmarks`, `mtcnn_landmarks` (MTCNN's unrefined points;
    these are None when landmarks were given) and `warnings` (notes about conversions, frames, extra
    faces, eye refinements that were rejected and a face cut by the border).

    Warns `FaceCutWarning` when the crop reaches beyond the photo (by CUT_TOLERANCE of its side or
    more): that part is filled in by blurred reflection, so the face there is made up.
    """
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    size = int(size)
    notes = []
    src, name = _open(image, notes)
    try:
        frame = _check_frame(src, frame)
        if landmarks is None:
            img, landmarks, info = _detect_frames(src, name, frame, device, refine_eyes, notes)
            info["source"] = "mtcnn"
            notes += info.pop("warnings")
        else:
            img = _frame(src, name, frame or 0, notes)
            landmarks = np.asarray(landmarks, np.float64)
            if landmarks.shape != (5, 2) or not np.isfinite(landmarks).all():
                raise ValueError(f"landmarks must be 5 finite (x, y) points in MTCNN order, got shape "
                                 f"{landmarks.shape}")
            info = dict(source="given", frame=frame or 0, n_faces=None, face_index=None, box=None, prob=None,
                        boxes=None, probs=None, all_landmarks=None, mtcnn_landmarks=None)
    finally:
        _close_own(src, image)

    eye_distance = float(np.hypot(*(landmarks[1] - landmarks[0])))
    if eye_distance < MIN_EYE_DISTANCE:
        raise ImageTooSmallError(f"the face is too small to align: eyes {eye_distance:.1f} px apart, need "
                                 f"at least {MIN_EYE_DISTANCE:g}; use a photo where the face is larger "
                                 f"(ideally 100+ px wide)")

    quad = ffhq_quad(landmarks)
    cut = _cut_by_border(quad, img.size, size)
    if cut:
        warnings.warn(cut, FaceCutWarning, stacklevel=2)
        notes.append(cut)
    out = warp_quad(img, quad, size)
    if not return_info:
        return out
    corners = aligned_coords(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), quad, size)
    matrix = np.concatenate([(corners[1:] - corners[0]).T, corners[0][:, None]], axis=1)
    info.update(landmarks=landmarks, quad=quad, matrix=matrix, image_size=img.size, size=size,
                warnings=notes)
    return out, info
