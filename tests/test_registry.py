"""The pretrained-file registry: cache folder, download (file:// and a local HTTP server), checksums,
atomic writes and the offline error message."""
import hashlib
import http.server
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
    with pytest.raises(ChecksumError, match="partial or wrong file"):
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
