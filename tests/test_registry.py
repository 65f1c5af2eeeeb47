"""The pretrained-file registry: cache folder, download (file:// and a local HTTP server), checksums,
atomic writes and the offline error message."""
import dataclasses
import hashlib
import http.server
import io
import os
import subprocess
import threading
from functools import partial

import pytest

from styleclip_utils.weights import registry
from styleclip_utils.weights.registry import ChecksumError, MissingWeightsError, PretrainedFile, fetch


@pytest.fixture
def fake_entry(monkeypatch, tmp_path):
    """Register a small file, served from tmp_path/src."""
    payload = b"weights" * 1000
    src = tmp_path / "src"
    src.mkdir()
    (src / "w.pt").write_bytes(payload)
    entry = PretrainedFile("fake", "w.pt", "a test file", "the test's own folder", url=(src / "w.pt").as_uri(),
                           size=len(payload), sha256=hashlib.sha256(payload).hexdigest())
    monkeypatch.setitem(registry.REGISTRY, "fake", entry)
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "cache"))
    return entry, payload, src


def test_registry_lists_the_real_files():
    names = set(registry.REGISTRY)
    assert {"stylegan2-ffhq-config-f", "e4e-ffhq-encode", "arcface-ir-se50", "clip-vit-b-32",
            "facenet-vggface2"} <= names
    clip = registry.REGISTRY["clip-vit-b-32"]
    assert clip.sha256 in clip.url and clip.size == 353_976_522  # the URL's path segment is its sha256


def test_fetch_file_url_into_env_cache(fake_entry, tmp_path):
    entry, payload, _ = fake_entry
    path = fetch("fake", progress=False)
    assert path == tmp_path / "cache" / "w.pt" and path.read_bytes() == payload
    assert (tmp_path / "cache" / "w.pt.sha256").exists()
    assert fetch("fake", progress=False) == path  # cached: no second download


def test_fetch_over_http(fake_entry, tmp_path):
    entry, payload, src = fake_entry
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(src))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/w.pt"
        path = fetch("fake", root=tmp_path / "other", url=url, progress=False)
        assert path.read_bytes() == payload
    finally:
        server.shutdown()


def test_checksum_mismatch_leaves_nothing(fake_entry, tmp_path, monkeypatch):
    entry, payload, src = fake_entry
    (src / "w.pt").write_bytes(payload[:-1] + b"X")  # same size, different bytes
    with pytest.raises(ChecksumError, match="sha256"):
        fetch("fake", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []  # no partial or wrong file left behind


def test_corrupted_cached_file_is_detected(fake_entry, tmp_path):
    path = fetch("fake", progress=False)
    path.write_bytes(b"short")
    with pytest.raises(ChecksumError, match="not the published w.pt: it has 5 bytes"):
        fetch("fake", progress=False)


def test_offline_error_names_file_source_and_destination(fake_entry, tmp_path):
    entry, _, _ = fake_entry
    with pytest.raises(MissingWeightsError) as e:
        fetch("fake", url="http://127.0.0.1:9/w.pt", progress=False)  # port 9: nothing listens
    msg = str(e.value)
    assert "w.pt" in msg and "the test's own folder" in msg and str(tmp_path / "cache" / "w.pt") in msg
    assert not (tmp_path / "cache" / "w.pt").exists()


def test_no_download_when_told(fake_entry):
    with pytest.raises(MissingWeightsError, match="not in the cache"):
        fetch("fake", download_missing=False)


def test_unknown_name():
    with pytest.raises(KeyError, match="registered"):
        fetch("stylegan3")


def test_every_entry_has_a_size_check():
    """A cut download must never pass: every entry has an exact size or a floor, and the three without a
    published hash that had nothing before now have a floor (and AlexNet its torchvision hash prefix)."""
    for e in registry.REGISTRY.values():
        assert e.size or e.min_size, e.name
    assert registry.REGISTRY["lpips-alexnet"].sha256_prefix == "7be5be79"
    with pytest.raises(AssertionError, match="size"):
        PretrainedFile("x", "x.pt", "", "")


@pytest.fixture
def unhashed_entry(monkeypatch, tmp_path):
    """An entry like the FFHQ generator's: no published hash, only a size floor."""
    src = tmp_path / "src"
    src.mkdir()
    entry = PretrainedFile("unhashed", "g.pt", "a test file", "here", url=(src / "g.pt").as_uri(), min_size=1000)
    monkeypatch.setitem(registry.REGISTRY, "unhashed", entry)
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "cache"))
    return src


def test_cut_download_of_unhashed_file_never_stays_cached(unhashed_entry, tmp_path):
    (unhashed_entry / "g.pt").write_bytes(b"x" * 400)  # the source itself serves a cut file
    with pytest.raises(ChecksumError, match="at least 1,000"):
        fetch("unhashed", progress=False)
    assert not (tmp_path / "cache" / "g.pt").exists()
    (unhashed_entry / "g.pt").write_bytes(b"x" * 2000)
    assert fetch("unhashed", progress=False).stat().st_size == 2000


def test_connection_cut_short_is_not_cached(fake_entry, tmp_path, monkeypatch):
    """The server announced more bytes than it sent (a dropped connection): the part file goes, no cache."""
    entry, payload, _ = fake_entry

    class CutResponse(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}

        def __enter__(self):
            return self

    monkeypatch.setattr(registry.urllib.request, "urlopen", lambda url, timeout: CutResponse(payload[:100]))
    monkeypatch.setitem(registry.REGISTRY, "fake", dataclasses.replace(entry, size=None, sha256=None, min_size=1))
    with pytest.raises(ChecksumError, match="stopped at 100 of 7,000 bytes"):
        fetch("fake", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def test_stale_part_files_are_cleaned(fake_entry, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (cache / f"w.pt.{dead.pid}.abc.part").write_bytes(b"half")      # a killed download
    (cache / f"w.pt.{os.getpid()}.def.part").write_bytes(b"half")   # a live one (this process)
    fetch("fake", progress=False)
    assert sorted(p.name for p in cache.iterdir()) == ["w.pt", f"w.pt.{os.getpid()}.def.part", "w.pt.sha256"]


def test_users_file_by_path_is_accepted_with_a_note(fake_entry, tmp_path, capsys):
    entry, payload, _ = fake_entry
    own = tmp_path / "mine.pt"
    own.write_bytes(payload + b"fine-tuned")
    assert registry.resolve(own, published="fake") == own
    out = capsys.readouterr().out
    assert out.startswith("note: ") and "not the published w.pt (it has 7,010 bytes" in out
    own.write_bytes(payload)  # byte-identical to the published file: no note, and no stamp in the user's folder
    registry.resolve(own, published="fake")
    assert capsys.readouterr().out == "" and not (tmp_path / "mine.pt.sha256").exists()
    with pytest.raises(MissingWeightsError, match="is a folder"):
        registry.resolve(tmp_path)
