"""Registry of the pretrained files the real (non-SynthFaces) pipeline uses, and a cache to fetch them into.

`fetch(name)` returns the local path of a registered file: from the cache if it is there and intact,
else downloaded (progress bar, written to a temp file, checked, then renamed into place). When the file
cannot be had (no network, a Google Drive link that needs a browser, ...) the error names the file, where
to get it and exactly where to put it.

Two kinds of check, for two kinds of file:
- a file from the registry's source (downloaded, or put in the cache under the registered name) must be
  the published one: its size (exact, or at least a floor where none is published) and its sha256 (or the
  sha256 prefix in the file name, torchvision's convention) — a cut or wrong download is never cached;
- a file the user names by path (`resolve`) is theirs: re-saved, converted, fine-tuned. It is not hashed
  against the published file; the loaders check its structure (keys, shapes) and `resolve` prints a note
  when it is not byte-identical to the published one.

The cache folder is `$STYLECLIP_CACHE`, or `~/.cache/styleclip` when that is unset.
"""
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..files import atomic_write, pid_alive

CACHE_ENV = "STYLECLIP_CACHE"


class MissingWeightsError(FileNotFoundError):
    """A pretrained file is not in the cache and could not be downloaded."""


class ChecksumError(ValueError):
    """A file's size or sha256 is not the registered one (a truncated or wrong download)."""


@dataclass(frozen=True)
class PretrainedFile:
    name: str
    filename: str
    description: str
    source: str                # where a person gets it (page, Drive id, release)
    url: str | None = None     # direct download URL, when one exists
    size: int | None = None    # bytes; None = not published
    sha256: str | None = None  # None = not published (the loaders then check the structure instead)
    min_size: int | None = None  # bytes, a floor when the exact size is not published: catches cut downloads
    sha256_prefix: str | None = None  # the hash's first hex digits, when only those are published

    def __post_init__(self):
        assert self.size or self.min_size, f"{self.name}: every entry needs a size or a size floor"


def _drive(file_id):
    # The usercontent endpoint with confirm=t skips Drive's "can't scan for viruses" page for big files.
    return f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"


REGISTRY = {f.name: f for f in [
    PretrainedFile(
        "stylegan2-ffhq-config-f", "stylegan2-ffhq-config-f.pt",
        "StyleGAN2 FFHQ 1024 px config-f, rosinality layout (g_ema + latent_avg)",
        "e4e/pSp README: Google Drive id 1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT (or convert NVIDIA's "
        "stylegan2-ffhq-config-f.pkl with rosinality's convert_weight.py)",
        # two published variants: g_ema + latent_avg (~132.7 MB) or with g and d too (~381.5 MB)
        url=_drive("1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT"), min_size=130_000_000),
    PretrainedFile(
        "e4e-ffhq-encode", "e4e_ffhq_encode.pt",
        "encoder4editing FFHQ encoder (encoder.* + decoder.* StyleGAN2 1024, latent_avg [18, 512])",
        "encoder4editing README: Google Drive id 1cUv_reLE6k3604or78EranS7XzuVMWeO",
        url=_drive("1cUv_reLE6k3604or78EranS7XzuVMWeO"), size=1_201_649_680,
        sha256="2ace1d9a8c05c10a399bcd500b8dda118f759ff1aac89dbdab7435f2136a0999"),
    PretrainedFile(
        "arcface-ir-se50", "model_ir_se50.pth",
        "ArcFace IR-SE50 identity backbone (TreB1eN), used by the identity loss of e4e and StyleCLIP",
        "e4e/pSp README: Google Drive id 1KW7bjndL3QG3sxBbZxreGHigcCCpsDgn",
        url=_drive("1KW7bjndL3QG3sxBbZxreGHigcCCpsDgn"), size=175_367_323,
        sha256="a035c768259b98ab1ce0e646312f48b9e1e218197a0f80ac6765e88f8b6ddf28"),
    PretrainedFile(
        "clip-vit-b-32", "ViT-B-32.pt",
        "OpenAI CLIP ViT-B/32 (TorchScript archive, loaded with clip.load)",
        "OpenAI CLIP (github.com/openai/CLIP, clip/clip.py _MODELS)",
        url="https://openaipublic.azureedge.net/clip/models/"
            "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
        size=353_976_522, sha256="40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"),
    PretrainedFile(
        "facenet-vggface2", "20180402-114759-vggface2.pt",
        "facenet-pytorch InceptionResnetV1 trained on VGGFace2 (identity embeddings, 160 px input)",
        "facenet-pytorch GitHub release v2.2.9",
        url="https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt",
        min_size=100_000_000),  # ~107 MB
    PretrainedFile(
        "lpips-alexnet", "alexnet-owt-7be5be79.pth",
        "torchvision AlexNet (ImageNet), the backbone of LPIPS(net='alex'); lpips ships only its linear heads",
        "torchvision model zoo (its file name holds the first 8 hex digits of its sha256)",
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", min_size=230_000_000,  # ~233 MB
        sha256_prefix="7be5be79"),
    PretrainedFile(
        "vgg19", "vgg19-dcbb9e9d.pth",
        "torchvision VGG19 (ImageNet), the feature network of Gatys-style neural style transfer (notebook 06)",
        "torchvision model zoo (its file name holds the first 8 hex digits of its sha256)",
        url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", min_size=540_000_000,  # ~548 MB
        sha256_prefix="dcbb9e9d"),
]}


def cache_dir():
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "styleclip")


def get_entry(name):
    if name not in REGISTRY:
        raise KeyError(f"unknown pretrained file {name!r}; registered: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def local_path(name, root=None):
    """Where `name` lives (or must be put) in the cache."""
    return Path(root or cache_dir()) / get_entry(name).filename


def _shown(path):
    """A path as a person types it: ~ for the home folder (no user name in logs and committed outputs)."""
    try:
        return "~/" + str(Path(path).resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


def _how_to_get(entry, dest):
    return (f"Get {entry.filename} ({entry.description}) from {entry.source}"
            + (f" [{entry.url}]" if entry.url else "")
            + f" and put it at {_shown(dest)} (the cache folder is ${CACHE_ENV}, default ~/.cache/styleclip).")


def sha256_of(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def published_mismatch(path, entry, stamp=True, digest=None):
    """Why the file at `path` is not the published `entry` (a sentence), or None when it is. The size is
    checked first (free); the hash only when the size fits. Hashing 1 GB takes seconds, so a verified file
    gets a small `.sha256` stamp (hash, size, mtime) and is not re-hashed while it is unchanged. `digest`:
    the hash when the caller has it already (computed while downloading)."""
    path = Path(path)
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        return f"it has {size:,} bytes, the published file {entry.size:,}"
    if entry.min_size is not None and size < entry.min_size:
        return f"it has {size:,} bytes, the published file at least {entry.min_size:,}"
    if entry.sha256 is None and entry.sha256_prefix is None:
        return None
    stamp_file = path.with_name(path.name + ".sha256")
    if digest is None and stamp_file.exists() and _stamp_matches(path, stamp_file):
        digest = stamp_file.read_text().split()[0]
    elif digest is None:
        digest = sha256_of(path)
    expected = entry.sha256 or entry.sha256_prefix
    if not digest.startswith(expected):
        return f"its sha256 is {digest}, the published file's {expected}{'' if entry.sha256 else '...'}"
    if stamp:  # only in the cache: a user's own folder gets no extra files
        try:
            atomic_write(stamp_file, lambda f: f.write((_stamp_key(path, digest) + "\n").encode()))
        except OSError:  # a read-only cache: hash again next time
            pass
    return None


def verify(path, entry):
    """A cached file must be the published one (registry module docstring): else ChecksumError, which says
    how to fetch it again or how to use the file as one's own."""
    why = published_mismatch(path, entry)
    if why is not None:
        raise ChecksumError(
            f"{_shown(path)} is not the published {entry.filename}: {why} (a cut download, or another file). "
            f"Delete it and fetch again, or, if it is your own file (re-saved, converted, fine-tuned), keep it "
            f"elsewhere and pass its path to the loader: it is then checked by structure. {_how_to_get(entry, path)}")


def _stamp_matches(path, stamp):
    parts = stamp.read_text().split()
    st = Path(path).stat()
    return len(parts) == 3 and parts[1:] == [str(st.st_size), str(st.st_mtime_ns)]


def _stamp_key(path, sha256):
    st = Path(path).stat()
    return f"{sha256} {st.st_size} {st.st_mtime_ns}"


def _clean_stale_parts(dest):
    """Remove `<name>.<pid>.*.part` files of `dest` left by a download whose process died (a kill, a power
    cut: no `finally` ran). A live process's part file is another download in progress: left alone."""
    for part in Path(dest).parent.glob(f"{Path(dest).name}.*.part"):
        pid = part.name[len(Path(dest).name) + 1:].split(".")[0]
        if not pid.isdigit() or not pid_alive(int(pid)):
            part.unlink(missing_ok=True)


def download(url, dest, expected_size=None, expected_sha256=None, progress=True, timeout=30, check=None):
    """Stream `url` (http(s) or file://) to `dest` through a temp file in the same folder, check size and
    sha256 while writing, then rename: an interrupted download never leaves a file at `dest`."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_parts(dest)
    fd, tmp = tempfile.mkstemp(prefix=f"{dest.name}.{os.getpid()}.", suffix=".part", dir=dest.parent)
    try:
        h = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=timeout) as r, os.fdopen(fd, "wb") as f:
            total = expected_size or int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                while block := r.read(1 << 20):
                    f.write(block)
                    h.update(block)
                    bar.update(len(block))
        size = os.path.getsize(tmp)
        if total and size != total:  # the server said how much it would send: a cut connection sends less
            raise ChecksumError(f"download of {url} stopped at {size:,} of {total:,} bytes; fetch again")
        if expected_size is not None and size != expected_size:
            raise ChecksumError(f"download of {url} gave {size:,} bytes, expected {expected_size:,}")
        if expected_sha256 is not None and h.hexdigest() != expected_sha256:
            raise ChecksumError(f"download of {url} has sha256 {h.hexdigest()}, expected {expected_sha256}")
        if check is not None:  # the caller's own checks, on the finished temp file, before the rename
            check(tmp, h.hexdigest())
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return dest


def fetch(name, root=None, download_missing=True, progress=True, url=None):
    """Local path of registered file `name`, downloading it into the cache when missing.

    `url` overrides the registry's URL (a mirror, or a file:// path). A download is checked in full (size or
    size floor, hash or hash prefix) before it is renamed into the cache."""
    entry = get_entry(name)
    dest = local_path(name, root)
    if dest.exists():
        verify(dest, entry)
        return dest
    url = url or entry.url
    if not download_missing or url is None:
        raise MissingWeightsError(f"{entry.filename} is not in the cache. {_how_to_get(entry, dest)}")
    digest = []

    def check(tmp, sha256):  # the size floor and hash prefix, which download() does not know
        why = published_mismatch(tmp, entry, stamp=False, digest=sha256)
        if why is not None:
            raise ChecksumError(f"the download of {entry.filename} from {url} is not the published file: {why}")
        digest.append(sha256)

    try:
        download(url, dest, entry.size, entry.sha256, progress=progress, check=check)
    except (urllib.error.URLError, OSError) as e:
        raise MissingWeightsError(f"could not download {entry.filename} from {url} ({e}); this machine may "
                                  f"have no network. {_how_to_get(entry, dest)}") from e
    published_mismatch(dest, entry, digest=digest[0])  # writes the stamp: the next load does not re-hash
    return dest


def resolve(name_or_path, published=None, **fetch_kwargs):
    """A registry name is fetched; a path to an existing file is the user's own and used as it is (the
    loader checks its structure). `published`: the registry name of the file it stands in for; a note is
    printed when the user's file is not that one (size first; the hash only when the size fits)."""
    if str(name_or_path) in REGISTRY:
        return fetch(str(name_or_path), **fetch_kwargs)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise MissingWeightsError(
            f"{path} {'is a folder, not a file' if path.is_dir() else 'does not exist'}, and {str(name_or_path)!r} "
            f"is not a registered file name (registered: {', '.join(REGISTRY)})")
    if published is not None:
        why = published_mismatch(path, get_entry(published), stamp=False)
        if why is not None:
            print(f"note: {_shown(path)} is not the published {get_entry(published).filename} ({why}); "
                  f"loaded as your own file, checked by its structure")
    return path
