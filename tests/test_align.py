"""FFHQ alignment: exact geometry of the crop, MTCNN on a face pasted into a photo, and every bad input."""
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFile, ImageFilter

from styleclip_utils.data.align import (CorruptImageError, FaceAlignmentError, ImageTooLargeError,
                                   ImageTooSmallError, NoFaceError, NotAnImageError,
                                   UnsupportedImageError, align_face, aligned_coords, detect_landmarks,
                                   ffhq_quad, largest_face, refine_eye_centres, warp_quad)
from styleclip_utils.data.render import paste_face, photo_background, photo_scene, sample_face


# ----------------------------------------------------------------------------------------------------
# Helpers

def synth_face(seed, size=256):
    """A SynthFaces face and its 5 landmarks in align's convention (pixel centres at integers)."""
    img, landmarks, _ = sample_face(seed, size)
    return img, landmarks.astype(np.float64) - 0.5  # SynthFaces: pixel i spans [i, i + 1)


def drawn_face(size=256):
    """A flat cartoon face that MTCNN finds in any pose, with its 5 landmarks: our own, so the
    several-faces test does not depend on how the SynthFaces renderer evolves."""
    s = size / 256
    img = Image.new("RGB", (size, size), (120, 140, 160))
    d = ImageDraw.Draw(img)
    d.ellipse([60 * s, 30 * s, 196 * s, 230 * s], fill=(225, 180, 150))
    d.chord([55 * s, 20 * s, 201 * s, 130 * s], 180, 360, fill=(60, 40, 30))
    for ex, ey in [(100, 112), (156, 112)]:
        d.ellipse([(ex - 16) * s, (ey - 8) * s, (ex + 16) * s, (ey + 8) * s], fill=(250, 250, 250))
        d.ellipse([(ex - 7) * s, (ey - 7) * s, (ex + 7) * s, (ey + 7) * s], fill=(70, 50, 30))
        d.ellipse([(ex - 3) * s, (ey - 3) * s, (ex + 3) * s, (ey + 3) * s], fill=(0, 0, 0))
        d.line([(ex - 18) * s, (ey - 18) * s, (ex + 18) * s, (ey - 20) * s], fill=(60, 40, 30), width=int(5 * s))
    d.polygon([(128 * s, 120 * s), (118 * s, 158 * s), (138 * s, 158 * s)], fill=(200, 150, 125))
    d.chord([104 * s, 170 * s, 152 * s, 198 * s], 0, 180, fill=(170, 60, 60))
    img = img.filter(ImageFilter.GaussianBlur(1.5 * s))
    landmarks = np.array([[100, 112], [156, 112], [128, 152], [104, 184], [152, 184]], np.float64) * s
    return img, landmarks


def square_quad(center, half, angle):
    t = np.deg2rad(angle)
    x = half * np.array([np.cos(t), np.sin(t)])
    y = np.array([-x[1], x[0]])
    c = np.asarray(center, np.float64)
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def blob_image(w, h, points, sigma):
    """Gaussian blobs centred exactly at `points` (pixel-index coords), red on blue."""
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    a = sum(np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * sigma ** 2)) for px, py in points) * 255
    return Image.fromarray(np.rint(np.stack([a, a * 0, 255 - a], -1)).clip(0, 255).astype(np.uint8))


def blob_centre(img, guess, radius):
    a = np.asarray(img, np.float64)[..., 0]
    x0, y0 = np.rint(guess).astype(int)
    yy, xx = np.mgrid[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1]
    w = a[yy, xx]
    return np.array([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()])


def png_header_only(path, w, h):
    """A PNG that declares w x h pixels and holds none: opening it costs nothing."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


# MTCNN places the 5 points on SynthFaces within ~4-7% of the eye distance (about what it does on real
# photos), i.e. ~3 px median at 256 px FFHQ crops with a tail beyond 6 px. The eye refinement
# (refine_eye_centres) brings the eyes to ~1.2 px median; measured over SynthFaces seeds 0..99 in the
# key scene: 71% of faces have both eyes within 2 px, 88% within 3 px (before: 7% and 27%). The
# geometry tests check the crop itself to 0.05 px.
MTCNN_EYE_TOLERANCE = 6.0  # px at 256, MTCNN alone
EYE_TOLERANCE = 2.0        # px at 256, the requirement, with the refinement
SCENE_SEED = 1             # the fixture scene: its eye error (0.3 px) is better than typical, so the
SCENE_SEEDS = range(8)     # requirement is checked on the first 8 seeds as they come, not picked


@pytest.fixture(scope="module")
def scene():
    """The key scene: a SynthFaces face rotated 12° and scaled x2.3 into a cluttered 1000x800 photo.
    Returns the photo and the true landmarks in it."""
    return photo_scene(SCENE_SEED, 256)


@pytest.fixture(scope="module")
def detected(scene):
    photo, _ = scene
    return align_face(photo, size=256, return_info=True)


# ----------------------------------------------------------------------------------------------------
# Geometry

def test_ffhq_quad_of_a_frontal_face():
    # eyes 40 apart, mouth 50 below them: the eye-mouth distance sets the size (1.8 * 50 > 2 * 40)
    lm = [[100, 100], [140, 100], [120, 125], [105, 150], [135, 150]]
    np.testing.assert_allclose(ffhq_quad(lm), [[30, 15], [30, 195], [210, 195], [210, 15]])


def test_ffhq_template_is_pose_invariant():
    """Rotating, scaling and moving the face moves the quad with it: the landmarks land on the same
    output pixels (the 'template' positions), which is what makes the crop an alignment."""
    lm = np.array([[100, 100], [141, 103], [118, 127], [104, 152], [133, 150]], np.float64)
    t = np.deg2rad(33)
    moved = 1.7 * lm @ np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]).T + [310.4, -20.2]
    np.testing.assert_allclose(aligned_coords(moved, ffhq_quad(moved), 256),
                               aligned_coords(lm, ffhq_quad(lm), 256), atol=1e-9)


@pytest.mark.parametrize("image_size, center, half, angle, size", [
    ((700, 500), (350.3, 240.7), 150, 17, 256),       # quad inside the image
    ((3000, 2000), (1500.2, 1000.6), 900, -23, 256),  # quad 7x the output: shrink first
    ((700, 500), (520.5, 250.25), 170, -35, 256),      # quad leaves the image: reflect-pad
    ((700, 500), (300.0, 250.0), 200, 5, 64),
])
def test_warp_quad_puts_points_where_aligned_coords_says(image_size, center, half, angle, size):
    """Blobs at known sub-pixel positions land where the quad -> output map predicts. Catches any
    half-pixel convention slip, a flip, or a wrong shrink/crop/pad offset."""
    quad = square_quad(center, half, angle)
    w, h = image_size
    rel = np.array([[-0.6, -0.6], [0.6, -0.55], [0.05, 0.0], [-0.5, 0.6], [0.55, 0.5], [0.1, -0.3]])
    points = quad.mean(0) + rel @ np.stack([quad[3] - quad[0], quad[1] - quad[0]]) / 2 + 0.37
    sigma = 0.03 * half  # 3.8 output px at 256, 1.9 at 64
    # Away from the edges: the padding reflects blobs and blurs up to 0.1 * quad side into the image.
    margin = 5 * sigma + 0.25 * half
    inside = ((points > margin) & (points < np.array([w, h]) - margin)).all(1)
    points = points[inside]
    assert len(points) >= 3
    out = warp_quad(blob_image(w, h, points, sigma), quad, size)
    predicted = aligned_coords(points, quad, size)
    radius = int(np.ceil(4 * sigma * size / (2 * half)))
    measured = np.array([blob_centre(out, p, radius) for p in predicted])
    np.testing.assert_allclose(measured, predicted, atol=0.05)


# ----------------------------------------------------------------------------------------------------
# Detection + alignment on a photo

def test_align_detected_face_lands_on_the_ffhq_template(scene, detected):
    """The ideal crop is the one built from the true landmarks. Through the quad align_face actually
    used (info["quad"]: the output is exactly that quad warped), the true eyes must land where the
    ideal crop puts them, within 2 px (MTCNN + eye refinement). That the warp puts every point where
    aligned_coords says is checked to 0.05 px by test_warp_quad_puts_points_where_aligned_coords_says."""
    photo, truth = scene
    out, info = detected
    assert out.size == (256, 256) and out.mode == "RGB" and info["source"] == "mtcnn"
    np.testing.assert_array_equal(np.asarray(out), np.asarray(warp_quad(photo, info["quad"], 256)))

    assert eye_error(truth, info["quad"]).max() <= EYE_TOLERANCE


def eye_error(truth, quad):
    """px between where the crop `quad` and the ideal crop (from the true landmarks) put the true eyes."""
    ideal = aligned_coords(truth[:2], ffhq_quad(truth), 256)
    return np.hypot(*(aligned_coords(truth[:2], quad, 256) - ideal).T)


def test_detected_eyes_land_on_the_ffhq_template_across_scenes():
    """The requirement: a SynthFaces face pasted rotated 12° and scaled x2.3 into a photo is aligned
    with its eyes within 2 px of the FFHQ template's, through detection (MTCNN + eye refinement).
    On seeds 0..99 that holds for 71% of faces (both eyes), 88% are within 3 px, and MTCNN misses a
    few faces outright; so: the median over the first 8 seeds within 2 px, every one within 3 px."""
    errors = []
    for seed in SCENE_SEEDS:
        photo, truth = photo_scene(seed, 256)
        try:
            _, info = align_face(photo, size=256, return_info=True)
        except NoFaceError:
            continue
        errors.append(eye_error(truth, info["quad"]).max())
    assert len(errors) >= 6, f"MTCNN found only {len(errors)} of {len(SCENE_SEEDS)} faces"
    assert np.median(errors) <= EYE_TOLERANCE and max(errors) <= 1.5 * EYE_TOLERANCE, errors


def test_mtcnn_on_synthfaces():
    """How well MTCNN does on SynthFaces at 256 px: it finds most faces, its landmarks put the true eyes
    within a few px of the ideal crop's, and the eye refinement brings them within 2 px (medians)."""
    errors, refined = [], []
    for seed in range(6):
        img, truth = synth_face(seed, 256)
        try:
            landmarks, info = detect_landmarks(img, return_info=True, refine_eyes=False)
        except NoFaceError:
            continue
        x0, y0, x1, y1 = info["box"]
        assert (x0 < truth[:, 0]).all() and (truth[:, 0] < x1).all() and (y0 < truth[:, 1]).all()
        errors.append(eye_error(truth, ffhq_quad(landmarks)).max())
        better, _ = refine_eye_centres(img, landmarks)
        np.testing.assert_array_equal(better[2:], landmarks[2:])  # only the eyes move
        refined.append(eye_error(truth, ffhq_quad(better)).max())
    assert len(errors) >= 4, f"MTCNN found only {len(errors)} of 6 faces"
    assert np.median(errors) < MTCNN_EYE_TOLERANCE, errors
    assert np.median(refined) <= EYE_TOLERANCE, refined


def test_eye_refinement_keeps_the_mtcnn_point_without_an_eye():
    """No dark disc near the guess (a flat grey image): the refinement must not invent one."""
    flat = Image.new("RGB", (256, 256), (128, 128, 128))
    lm = np.array([[100, 110], [156, 110], [128, 140], [106, 170], [150, 170]], np.float64)
    out, notes = refine_eye_centres(flat, lm)
    np.testing.assert_array_equal(out, lm)
    assert len(notes) == 2 and all("kept the MTCNN point" in n for n in notes)


def test_given_landmarks_give_the_same_crop_in_any_pose(scene):
    """With the true landmarks, the rotated/scaled face in the photo aligns to the same image as the
    upright original: the geometry is exact, only resampling differs."""
    photo, truth = scene
    img, landmarks = synth_face(SCENE_SEED, 256)
    from_photo = np.asarray(align_face(photo, size=128, landmarks=truth), np.float64)
    from_upright = np.asarray(align_face(img, size=128, landmarks=landmarks), np.float64)
    # Compare on the face only: beyond the pasted square the photo and the reflect padding differ.
    centre = aligned_coords(landmarks, ffhq_quad(landmarks), 128)[:2].mean(0)
    yy, xx = np.mgrid[:128, :128]
    region = np.hypot(xx - centre[0], yy - centre[1] - 20) < 40
    assert np.abs(from_photo - from_upright)[region].mean() < 2.0


def test_info_contents(scene, detected):
    photo, truth = scene
    _, info = detected
    assert info["landmarks"].shape == (5, 2) and info["quad"].shape == (4, 2)
    np.testing.assert_allclose(info["quad"], ffhq_quad(info["landmarks"]))
    assert info["box"].shape == (4,) and 0.9 < info["prob"] <= 1
    n = info["n_faces"]
    assert info["boxes"].shape == (n, 4) and info["probs"].shape == (n,)
    assert info["all_landmarks"].shape == (n, 5, 2)
    np.testing.assert_array_equal(info["all_landmarks"][info["face_index"]], info["mtcnn_landmarks"])
    np.testing.assert_array_equal(info["landmarks"][2:], info["mtcnn_landmarks"][2:])  # eyes refined
    assert np.abs(info["landmarks"][:2] - info["mtcnn_landmarks"][:2]).max() > 0
    assert info["image_size"] == (1000, 800) and info["size"] == 256
    assert (n == 1) == (info["warnings"] == [])
    # the 2x3 matrix is the same map as aligned_coords
    pts = np.array([[10.0, 20.0], [500.0, 400.0]])
    np.testing.assert_allclose(pts @ info["matrix"][:, :2].T + info["matrix"][:, 2],
                               aligned_coords(pts, info["quad"], 256))

    _, given = align_face(photo, size=64, landmarks=truth, return_info=True)
    assert given["source"] == "given" and given["n_faces"] is None and given["box"] is None
    assert given["mtcnn_landmarks"] is None
    np.testing.assert_array_equal(given["landmarks"], truth)


@pytest.mark.parametrize("size", [64, 256])
def test_output_size(scene, size):
    photo, truth = scene
    out = align_face(photo, size=size, landmarks=truth)
    assert out.size == (size, size) and out.mode == "RGB"


def test_several_faces_take_the_largest_and_warn():
    img, landmarks = drawn_face(256)
    photo, small_map = paste_face(photo_background(900, 600, seed=1), img, 0.8, -5, (200, 300))
    photo, big_map = paste_face(photo, img, 1.6, 8, (620, 300))
    with pytest.warns(UserWarning, match="2 faces found; aligning the largest"):
        _, info = align_face(photo, size=64, return_info=True)
    assert info["n_faces"] == 2
    assert any("2 faces" in w for w in info["warnings"])
    assert np.abs(info["landmarks"] - big_map(landmarks)).max() < 15  # the big face, not the small one


def test_largest_face_by_area():
    boxes = [[0, 0, 10, 50], [100, 100, 130, 130], [5, 5, 20, 20]]  # areas 500, 900, 225
    assert largest_face(boxes) == 1


def test_no_face(tmp_path):
    with pytest.raises(NoFaceError, match="frontal, well-lit.*landmarks="):
        align_face(photo_background(400, 300, seed=3))


def test_input_types_agree(scene, tmp_path):
    photo, truth = scene
    photo.save(tmp_path / "photo.png")
    ref = np.asarray(align_face(photo, size=64, landmarks=truth))
    for x in (np.asarray(photo), str(tmp_path / "photo.png"), tmp_path / "photo.png"):
        np.testing.assert_array_equal(np.asarray(align_face(x, size=64, landmarks=truth)), ref)


def test_exif_orientation_is_applied(scene, tmp_path):
    photo, truth = scene
    ref = np.asarray(align_face(photo, size=64, landmarks=truth), np.float64)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the stored pixels are turned the other way
    photo.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.png", exif=exif)
    out, info = align_face(tmp_path / "phone.png", size=64, landmarks=truth, return_info=True)
    assert np.abs(np.asarray(out, np.float64) - ref).max() <= 1
    assert any("EXIF" in w for w in info["warnings"])


def test_import_is_light():
    code = "import sys, styleclip_utils.data.align; print('facenet_pytorch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


# ----------------------------------------------------------------------------------------------------
# Conversions that must work

def test_grayscale_works_and_is_noted(scene, tmp_path):
    photo, truth = scene
    photo.convert("L").save(tmp_path / "gray.png")
    out, info = align_face(tmp_path / "gray.png", size=64, landmarks=truth, return_info=True)
    a = np.asarray(out)
    assert out.mode == "RGB" and (a[..., 0] == a[..., 1]).all() and a.std() > 10
    assert any("grayscale" in w for w in info["warnings"])


def test_cmyk_jpeg(scene, tmp_path):
    photo, truth = scene
    photo.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    out, info = align_face(tmp_path / "cmyk.jpg", size=64, landmarks=truth, return_info=True)
    ref = np.asarray(align_face(photo, size=64, landmarks=truth), np.float64)
    assert np.abs(np.asarray(out, np.float64) - ref).mean() < 8
    assert any("CMYK" in w for w in info["warnings"])


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    a = np.full((100, 100), 32896, np.uint16)  # 32896 / 257 = 128
    a[:50] = 65535
    Image.fromarray(a).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    lm = [[35, 45], [65, 45], [50, 55], [38, 70], [62, 70]]
    out, info = align_face(tmp_path / "deep.png", size=64, landmarks=lm, return_info=True)
    values = set(np.unique(np.asarray(out)).tolist())
    assert {128, 255} <= values and values <= set(range(120, 256))  # PIL's convert would give 255 only
    assert any("16-bit" in w for w in info["warnings"])


def test_palette_png(scene, tmp_path):
    photo, truth = scene
    photo.quantize(64).save(tmp_path / "palette.png")
    assert Image.open(tmp_path / "palette.png").mode == "P"
    out = align_face(tmp_path / "palette.png", size=64, landmarks=truth)
    ref = np.asarray(align_face(photo, size=64, landmarks=truth), np.float64)
    assert out.mode == "RGB" and np.abs(np.asarray(out, np.float64) - ref).mean() < 8


def test_rgba_is_composited_on_white(tmp_path):
    a = np.zeros((100, 100, 4), np.uint8)
    a[..., :3] = (200, 30, 30)
    a[:, :50, 3] = 255  # left half opaque red, right half fully transparent
    Image.fromarray(a).save(tmp_path / "cutout.png")
    lm = [[35, 45], [65, 45], [50, 55], [38, 70], [62, 70]]
    out, info = align_face(tmp_path / "cutout.png", size=64, landmarks=lm, return_info=True)
    rows = np.asarray(out)[20:44]
    assert (rows[:, 12] == (200, 30, 30)).all() and (rows[:, 52] == 255).all()
    assert any("transparency" in w for w in info["warnings"])


# ----------------------------------------------------------------------------------------------------
# Bad input: a specific error whose message says what to do

def test_errors_are_value_errors():
    for cls in (NoFaceError, NotAnImageError, CorruptImageError, UnsupportedImageError,
                ImageTooSmallError, ImageTooLargeError):
        assert issubclass(cls, FaceAlignmentError) and issubclass(cls, ValueError)


def test_missing_file(tmp_path):
    with pytest.raises(NotAnImageError, match=r"nope\.jpg: no such file"):
        align_face(tmp_path / "nope.jpg")


def test_text_file_named_jpg(tmp_path):
    (tmp_path / "notes.jpg").write_text("not a photo\n")
    with pytest.raises(NotAnImageError, match=r"notes\.jpg is not an image file.*JPEG or PNG"):
        align_face(tmp_path / "notes.jpg")


def test_not_an_image_object():
    with pytest.raises(NotAnImageError, match="expected a file path, the bytes of an image file, a PIL image or an HxWx3"):
        align_face(42)


def test_the_bytes_of_a_file_align_as_the_file_does(scene, tmp_path):
    """An upload is aligned from memory (the app writes nothing to disk), with a file's checks."""
    path = tmp_path / "photo.png"
    scene[0].save(path)
    np.testing.assert_array_equal(np.asarray(align_face(path.read_bytes())), np.asarray(align_face(path)))
    with pytest.raises(CorruptImageError, match="the upload is truncated or corrupt"):
        align_face(path.read_bytes()[:5000])
    with pytest.raises(NotAnImageError, match="the upload is not an image file"):
        align_face(b"plain text")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file(scene, tmp_path, monkeypatch, fmt):
    photo, _ = scene
    path = tmp_path / f"cut.{fmt.lower()}"
    photo.save(path, fmt)
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # must not make it pad silently
    with pytest.raises(CorruptImageError, match="truncated or corrupt.*re-download"):
        align_face(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the global is restored


def test_unconvertible_mode():
    with pytest.raises(UnsupportedImageError, match="mode La cannot be converted.*8-bit RGB"):
        align_face(Image.new("La", (100, 100)))


@pytest.mark.parametrize("array, message", [
    (np.zeros((3, 100, 120), np.uint8), "channels-first"),
    (np.zeros((100, 120, 2), np.uint8), "expected HxWx3"),
    (np.zeros((100, 120, 3), np.int64), "dtype int64"),
])
def test_bad_arrays(array, message):
    with pytest.raises(UnsupportedImageError, match=message):
        align_face(array)


def test_image_too_small():
    with pytest.raises(ImageTooSmallError, match="50x40 px; need at least 64"):
        align_face(Image.new("RGB", (50, 40)))


def test_face_too_small(scene):
    photo, _ = scene
    tiny = [[100, 100], [105, 100], [102, 103], [101, 106], [104, 106]]
    with pytest.raises(ImageTooSmallError, match="face is too small.*5.0 px apart"):
        align_face(photo, landmarks=tiny)


@pytest.mark.parametrize("w, h", [(50_000, 50_000), (10_000, 9_500)])  # PIL's error, PIL's warning
def test_decompression_bomb(tmp_path, w, h):
    png_header_only(tmp_path / "bomb.png", w, h)
    with pytest.raises(ImageTooLargeError, match="decompression bomb.*downscale"):
        align_face(tmp_path / "bomb.png")


def test_too_many_pixels_even_without_pil_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    png_header_only(tmp_path / "huge.png", 10_000, 9_500)
    with pytest.raises(ImageTooLargeError, match="95 Mpx, more than 90 Mpx; downscale"):
        align_face(tmp_path / "huge.png")
