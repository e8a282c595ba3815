"""The weights registry against a real HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import LoopbackServer, make_entry

from ferlite import weights
from ferlite.labels import FERPLUS_CLASSES

BUNDLED_DETECTOR = weights.PRETRAINED_DIR / "blaze_face_short_range.tflite"  # the real file the mirrors serve


@pytest.fixture
def served(tmp_path, monkeypatch):
    """'test-model' registered and served by a loopback server that FERLITE_BASE_URL points at."""
    root = tmp_path / "www"
    root.mkdir()
    payload = b"ferlite test weights\n" * 100
    (root / "test-model.keras").write_bytes(payload)
    monkeypatch.setitem(weights.REGISTRY, "test-model", make_entry("test-model", payload))
    server = LoopbackServer(root)
    monkeypatch.setenv("FERLITE_BASE_URL", server.url)
    yield SimpleNamespace(server=server, root=root, payload=payload, requests=server.requests)
    server.close()


def cache_files(ferlite_home: Path) -> list[str]:
    folder = ferlite_home / "weights"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_first_fetch_downloads_then_cache_is_used(served, ferlite_home):
    assert weights.status("test-model") == "remote" and weights.locate("test-model") is None
    path = weights.fetch("test-model")
    assert path == ferlite_home / "weights" / "test-model.keras"
    assert path.read_bytes() == served.payload
    assert served.requests == ["/test-model.keras"]
    assert weights.status("test-model") == "cached" and weights.locate("test-model") == path
    assert weights.fetch("test-model") == path
    assert served.requests == ["/test-model.keras"]  # no second request
    assert cache_files(ferlite_home) == ["test-model.keras"]


def test_tampered_cache_is_redownloaded(served, ferlite_home):
    path = weights.fetch("test-model")
    path.write_bytes(b"tampered" + served.payload[8:])
    assert weights.status("test-model") == "remote" and weights.locate("test-model") is None
    with pytest.warns(UserWarning) as record:
        assert weights.fetch("test-model").read_bytes() == served.payload
    assert [str(w.message) for w in record] == [
        f"test-model.keras (test-model): local copy (ignored, sha256 mismatch: {path}); downloading it again from "
        f"{served.server.url}test-model.keras"]
    assert len(served.requests) == 2
    assert cache_files(ferlite_home) == ["test-model.keras"]  # replaced in place: no temporary file left


def test_tampered_cache_with_server_down_is_never_used(served, ferlite_home):
    path = weights.fetch("test-model")
    path.write_bytes(b"tampered")
    served.server.close()
    with pytest.warns(UserWarning, match="local copy .ignored, sha256 mismatch"), \
            pytest.raises(weights.WeightsUnavailable) as err:
        weights.fetch("test-model")
    msg = str(err.value)
    for part in (f"test-model.keras (test-model) is not in the cache {ferlite_home / 'weights'} (ignored, sha256 "
                 f"mismatch: {path}) and could not be downloaded from {served.server.url}test-model.keras",
                 "ferlite weights fetch test-model", "FERLITE_BASE_URL"):
        assert part in msg
    with pytest.warns(UserWarning, match="sha256 mismatch"), pytest.raises(weights.WeightsUnavailable):
        weights.resolve_model("test-model")  # never used by a model load either
    assert cache_files(ferlite_home) == ["test-model.keras"] and path.read_bytes() == b"tampered"


def test_wrong_hash_on_server_gives_clear_error_and_leaves_nothing(served, ferlite_home):
    (served.root / "test-model.keras").write_bytes(b"another file with the same name")
    with pytest.raises(weights.WeightsUnavailable) as err:
        weights.fetch("test-model")
    msg = str(err.value)
    assert "sha256" in msg and weights.REGISTRY["test-model"].sha256 in msg and served.server.url in msg
    assert "discarded" in msg
    assert served.requests == ["/test-model.keras"]
    assert cache_files(ferlite_home) == []  # neither the file nor a temporary one


def test_server_down_gives_offline_error(served, ferlite_home):
    served.server.close()
    with pytest.raises(weights.WeightsUnavailable) as err:
        weights.fetch("test-model")
    assert isinstance(err.value, OSError)
    msg = str(err.value)
    for part in ("test-model.keras", served.server.url + "test-model.keras", str(ferlite_home / "weights"),
                 "ferlite weights fetch test-model", "FERLITE_BASE_URL"):
        assert part in msg
    assert cache_files(ferlite_home) == []


def test_file_missing_on_mirror(served, ferlite_home):
    (served.root / "test-model.keras").unlink()
    with pytest.raises(weights.WeightsUnavailable, match="404"):
        weights.fetch("test-model")
    assert cache_files(ferlite_home) == []


def test_malformed_base_url(served, monkeypatch):
    monkeypatch.setenv("FERLITE_BASE_URL", "mirror.example/weights")
    with pytest.raises(ValueError, match="FERLITE_BASE_URL='mirror.example/weights'.*http"):
        weights.fetch("test-model")
    assert served.requests == []


def test_detector_downloaded_from_loopback_mirror(tmp_path, monkeypatch, ferlite_home, package_dir):
    """A package without its bundled detector (package_dir is empty) downloads it, from the mirror when one is set."""
    assert BUNDLED_DETECTOR.is_file(), f"the bundled detector {BUNDLED_DETECTOR} is missing: the package ships it"
    entry = weights.registry_entry("blaze-face-short-range")
    assert entry.kind == "detector" and entry.bundled and entry.fallback_download
    assert weights.status(entry.name) == "remote"
    assert entry.url.startswith("https://storage.googleapis.com/mediapipe-models/")
    root = tmp_path / "mirror"
    root.mkdir()
    shutil.copy(BUNDLED_DETECTOR, root)
    server = LoopbackServer(root)
    try:
        monkeypatch.setenv("FERLITE_BASE_URL", server.url.rstrip("/"))
        assert weights.download_url(entry.name) == server.url + entry.filename
        path = weights.fetch(entry.name)
        assert path == ferlite_home / "weights" / "blaze_face_short_range.tflite"
        assert weights.file_sha256(path) == entry.sha256 and path.stat().st_size == BUNDLED_DETECTOR.stat().st_size
        assert server.requests == ["/blaze_face_short_range.tflite"]
        assert weights.status(entry.name) == "cached"
    finally:
        server.close()


@pytest.fixture
def package_dir(tmp_path, monkeypatch):
    """A stand-in for the package's pretrained/ folder."""
    folder = tmp_path / "pretrained"
    folder.mkdir()
    monkeypatch.setattr(weights, "PRETRAINED_DIR", folder)
    return folder


def test_bundled_file_is_used_without_network(served, package_dir, ferlite_home, monkeypatch):
    monkeypatch.setitem(weights.REGISTRY, "test-model", make_entry("test-model", served.payload, bundled=True))
    (package_dir / "test-model.keras").write_bytes(served.payload)
    served.server.close()
    assert weights.status("test-model") == "bundled"
    assert weights.fetch("test-model") == package_dir / "test-model.keras"
    assert weights.resolve_model("test-model") == package_dir / "test-model.keras"
    assert cache_files(ferlite_home) == []


def test_cache_wins_over_bundled_and_bad_bundled_is_not_used(served, package_dir, monkeypatch):
    monkeypatch.setitem(weights.REGISTRY, "test-model", make_entry("test-model", served.payload, bundled=True))
    bundled = package_dir / "test-model.keras"
    bundled.write_bytes(b"a stale bundled copy")
    assert weights.status("test-model") == "remote"
    with pytest.warns(UserWarning, match=f"local copy \\(ignored, sha256 mismatch: {bundled}\\); downloading it"):
        cached = weights.fetch("test-model")  # downloaded, since the bundled copy fails its hash
    assert cached != bundled and cached.read_bytes() == served.payload and len(served.requests) == 1
    bundled.write_bytes(served.payload)
    assert weights.status("test-model") == "cached" and weights.fetch("test-model") == cached


def test_unbundled_entry_ignores_package_file(served, package_dir):
    (package_dir / "test-model.keras").write_bytes(served.payload)  # entry is not bundled
    assert weights.status("test-model") == "remote"
    weights.fetch("test-model")
    assert served.requests == ["/test-model.keras"]


def test_unpublished_entry_is_unavailable_not_fetched(served, monkeypatch, ferlite_home):
    monkeypatch.setitem(weights.REGISTRY, "test-model", make_entry("test-model", served.payload, published=False))
    assert not weights.registry_entry("test-model").published
    (ferlite_home / "weights").mkdir()
    (ferlite_home / "weights" / "test-model.keras").write_bytes(served.payload)  # no hash to check it against
    assert weights.status("test-model") == "unavailable" and weights.locate("test-model") is None
    with pytest.raises(weights.WeightsUnavailable, match="test-model.keras.*not published yet"):
        weights.fetch("test-model")
    assert served.requests == []


def test_bundled_entry_missing_from_package_is_unavailable(served, package_dir, ferlite_home, monkeypatch):
    monkeypatch.setitem(weights.REGISTRY, "test-model", make_entry("test-model", served.payload, bundled=True))
    assert weights.status("test-model") == "unavailable"
    with pytest.raises(weights.WeightsUnavailable) as err:
        weights.fetch("test-model")
    for part in (str(package_dir / "test-model.keras"), "is absent", str(ferlite_home / "weights"), "reinstall"):
        assert part in str(err.value)
    assert served.requests == [] and cache_files(ferlite_home) == []
    cached = ferlite_home / "weights" / "test-model.keras"  # a copy placed in the cache by hand is used
    cached.parent.mkdir()
    cached.write_bytes(served.payload)
    assert weights.status("test-model") == "cached" and weights.fetch("test-model") == cached


@pytest.mark.parametrize(("field", "value", "match"), [("sha256", "ABC", "not 64 lowercase hex"),
                                                       ("kind", "onnx", "not one of keras, tflite, detector")])
def test_malformed_entry_is_refused(field, value, match):
    fields = {"sha256": "0" * 64, "kind": "keras", field: value}
    with pytest.raises(ValueError, match=match):
        weights.WeightsEntry("bad", "bad.keras", fields["sha256"], "https://example.invalid/bad.keras", fields["kind"],
                             "test entry")


def test_resolve_model(served, tmp_path, monkeypatch):
    explicit = tmp_path / "mine.keras"
    explicit.write_bytes(b"x")
    assert weights.resolve_model(explicit) == explicit
    assert weights.resolve_model(str(explicit)) == explicit
    monkeypatch.chdir(tmp_path)
    (tmp_path / "test-model").write_bytes(b"a file named like a registered model")
    assert weights.resolve_model("test-model") == Path("test-model")  # an existing path wins over the name
    assert served.requests == []
    (tmp_path / "test-model").unlink()
    assert weights.resolve_model("test-model").read_bytes() == served.payload
    with pytest.raises(FileNotFoundError, match="'no-such-model'.*registered: .*ferplus-mfn-1.0.*test-model"):
        weights.resolve_model("no-such-model")
    with pytest.raises(ValueError, match="'blaze-face-short-range' is a detector"):
        weights.resolve_model("blaze-face-short-range")
    with pytest.raises(TypeError, match="got int"):
        weights.resolve_model(3)


def test_registry_lookups():
    names = [e.name for e in weights.list_weights()]
    assert names[:5] == ["ferplus-mfn-1.0", "ferplus-mfn-0.5", "ferplus-mfn-1.0-int8", "ferplus-mfn-1.0-fp16",
                         "ferplus-mfn-0.5-int8"]
    assert "blaze-face-short-range" in names and weights.DEFAULT_MODEL in names
    with pytest.raises(ValueError, match="unknown weights 'nope'; registered: ferplus-mfn-1.0, .*blaze-face.*; "
                                         "aliases: default, fast"):
        weights.registry_entry("nope")
    for e in weights.list_weights():
        assert e.url.endswith("/" + e.filename) and e.kind in ("keras", "tflite", "detector")
        if e.kind != "detector":
            assert e.classes == FERPLUS_CLASSES[:9] and e.bundled
            assert (e.input_size, e.channels) == (48, 1) and e.preprocessing
            assert e.url == "https://github.com/ferlite/ferlite/releases/download/v0.1.0/" + e.filename
    for name in ("ferplus-mfn-1.0-int8", "ferplus-mfn-1.0-fp16", "ferplus-mfn-0.5-int8"):
        entry = weights.registry_entry(name)
        assert entry.kind == "tflite" and entry.filename == name + ".tflite"
        if entry.sha256 is None or not entry.bundled_path.is_file():  # the cache is empty (FERLITE_HOME)
            assert weights.status(name) == "unavailable"
            with pytest.raises(weights.WeightsUnavailable, match=name):
                weights.fetch(name)


def test_sidecar_for():
    meta = weights.sidecar_for(Path("/anywhere") / "ferplus-mfn-1.0-int8.tflite")
    assert meta["name"] == "ferplus-mfn-1.0-int8" and meta["kind"] == "tflite"
    assert meta["classes"][0] == "neutral" and meta["classes"][-1] == "unknown" and len(meta["classes"]) == 9
    assert (meta["input_size"], meta["channels"]) == (48, 1)
    assert weights.sidecar_for("somewhere/else.keras") == {}
    assert weights.sidecar_for("blaze_face_short_range.tflite") == {}  # not an expression model


def test_cache_dir(monkeypatch, tmp_path):
    import pooch

    from ferlite import datasets

    monkeypatch.setenv("FERLITE_HOME", str(tmp_path / "home"))
    assert weights.cache_dir() == tmp_path / "home" and weights.weights_dir() == tmp_path / "home" / "weights"
    assert datasets.cache_dir() == weights.cache_dir()
    monkeypatch.delenv("FERLITE_HOME")
    assert weights.cache_dir() == Path(pooch.os_cache("ferlite"))


def test_bundled_files_match_registry(monkeypatch):
    """Every model file shipped in the package has its sha256 in the registry and agrees with its sidecar."""
    bundled = [e for e in weights.list_weights() if e.bundled and e.bundled_path.is_file()]
    assert weights.registry_entry(weights.DEFAULT_MODEL) in bundled, "the default model must be bundled"
    for e in bundled:
        actual = weights.file_sha256(e.bundled_path)
        assert e.sha256 == actual, f"update the sha256 of {e.name} in ferlite/weights.py to {actual}"
        sidecar = e.bundled_path.with_suffix(".json")
        if sidecar.is_file():
            meta = json.loads(sidecar.read_text())
            for key in ("classes", "input_size", "channels"):
                if key in meta:
                    assert meta[key] == weights.sidecar_for(e.bundled_path)[key], f"{sidecar}: {key}"
    monkeypatch.setenv("FERLITE_BASE_URL", "http://127.0.0.1:9/")  # discard port: any download would fail
    assert weights.resolve_model(None) == weights.registry_entry(weights.DEFAULT_MODEL).bundled_path


# --- aliases, and the figures `weights list` shows: recorded in the registry, checked against the files ----------


def test_aliases_resolve_in_the_library(ferplus_valid, tmp_path, monkeypatch):
    """`fast` and `default` work wherever a registered name does (resolve_model, fetch, load_predictor, Recognizer,
    predict), and an existing file of the alias's name in the current folder wins, as for every name."""
    import ferlite
    from ferlite.images import read_image
    from ferlite.recognizer import Recognizer
    from ferlite.runtime import load_predictor

    assert weights.ALIASES == {"default": weights.DEFAULT_MODEL, "fast": "ferplus-mfn-0.5-int8"}
    assert not set(weights.ALIASES) & set(weights.REGISTRY), "an alias must not hide a registered name"
    fast = weights.registry_entry("ferplus-mfn-0.5-int8")
    assert weights.registry_entry("fast") is fast and weights.canonical_name("fast") == fast.name
    assert weights.resolve_model("fast") == weights.fetch("fast") == fast.bundled_path
    assert weights.status("fast") == "bundled" and weights.locate("fast") == fast.bundled_path
    assert weights.resolve_model("default") == weights.resolve_model(None)
    predictor = load_predictor("fast")
    assert predictor.path == fast.bundled_path and predictor.backend == "litert"
    face = ferplus_valid / "fer0028638.png"
    probs = load_predictor(fast.name).predict(read_image(face, mode="gray")[None, :, :, None])[0]
    expected = dict(zip(predictor.classes, probs.tolist()))
    assert ferlite.predict(face, model="fast", balance=0) == pytest.approx(expected, abs=1e-6)
    rec = Recognizer.from_pretrained("fast", balance=0)
    assert rec.predictor.path == fast.bundled_path and rec.predict(face) == pytest.approx(expected, abs=1e-6)
    rec.close()
    monkeypatch.chdir(tmp_path)
    Path("fast").write_bytes(b"my own model file")
    assert weights.resolve_model("fast") == Path("fast")  # an existing path as given comes first
    with pytest.raises(FileNotFoundError, match="registered: .*ferplus-mfn-0.5-int8.*; aliases: default, fast"):
        weights.resolve_model("fastest")


def test_registry_figures_are_the_bundled_files(monkeypatch):
    """size, params and macs as recorded (what `weights list` shows) are the bundled files': sizes from the files,
    params and MACs counted on the .keras models; an export records its source model's, named by its sidecar."""
    from ferlite.modelfile import load_keras_model
    from ferlite.training.models import count_macs

    bundled = [e for e in weights.list_weights() if e.bundled_path.is_file()]
    assert {e.name for e in bundled} == set(weights.REGISTRY), "every registered file is bundled"
    for e in bundled:
        assert e.size == e.bundled_path.stat().st_size, f"{e.name}: size={e.bundled_path.stat().st_size}"
        if e.kind == "keras":
            model = load_keras_model(e.bundled_path)
            assert (e.params, e.macs) == (model.count_params(), count_macs(model)), \
                f"{e.name}: params={model.count_params()}, macs={count_macs(model)}"
        elif e.kind == "tflite":
            source = json.loads(e.bundled_path.with_suffix(".json").read_text())["source_model"]
            parent = weights.registry_entry(source["name"])
            assert parent.kind == "keras" and source["sha256"] == parent.sha256, e.name
            assert (e.params, e.macs) == (parent.params, parent.macs), e.name
        else:
            assert (e.params, e.macs, e.metrics) == (None, None, {})
        if e.classes:
            assert set(e.metrics) == {"data", "mae", "top1", "major8_acc"}, e.name


def test_fast_int8_file():
    """The bundled fast model: its registered sha256, its sidecar (same hash, source ferplus-mfn-0.5 by hash,
    calibrated on 1,000 FER2013Train faces), uint8 in and out, no float op in the graph."""
    from ferlite.training.export import float_fallbacks

    entry = weights.registry_entry("fast")
    assert entry.sha256 == "0707bc77a77f9ce18c9ca5f3aacc82327a460df4bb682f3468fd2ad3b73e242a"
    assert weights.file_sha256(entry.bundled_path) == entry.sha256
    side = json.loads(entry.bundled_path.with_suffix(".json").read_text())
    assert side["sha256"] == entry.sha256 and side["size_bytes"] == entry.size
    assert side["source_model"]["sha256"] == weights.registry_entry("ferplus-mfn-0.5").sha256
    assert side["calibration"] == {"data": "FER2013Train", "faces": 1000, "seed": 0}
    assert (side["quantization"], side["input"]["dtype"], side["output"]["dtype"]) == ("int8", "uint8", "uint8")
    assert float_fallbacks(entry.bundled_path) == []


def test_import_does_not_load_tensorflow():
    code = "import sys, ferlite.weights; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


# --- the bundled face detector: out of the box, offline; resolution order cache > package > download ------------

BLAZE_SHA256 = "b4578f35940bf5a1a655214a1cce5cab13eba73c1297cd78e1a04c2380b0152f"


@pytest.fixture
def detector_mirror(tmp_path, monkeypatch):
    """A loopback mirror serving the real BlazeFace file (the bundled one), FERLITE_BASE_URL pointing at it."""
    assert BUNDLED_DETECTOR.is_file(), f"the bundled detector {BUNDLED_DETECTOR} is missing: the package ships it"
    root = tmp_path / "mirror"
    root.mkdir()
    shutil.copy(BUNDLED_DETECTOR, root)
    server = LoopbackServer(root)
    monkeypatch.setenv("FERLITE_BASE_URL", server.url)
    yield server
    server.close()


def test_detector_is_bundled_with_its_license():
    """The package holds BlazeFace, the registered file byte for byte, with its Apache-2.0 notice beside it, and
    pyproject's package-data ships both."""
    entry = weights.registry_entry("blaze-face-short-range")
    assert entry.kind == "detector" and entry.bundled and entry.fallback_download and entry.sha256 == BLAZE_SHA256
    assert entry.bundled_path == weights.PRETRAINED_DIR / "blaze_face_short_range.tflite"
    assert weights.file_sha256(entry.bundled_path) == BLAZE_SHA256
    notice = entry.bundled_path.with_name("blaze_face_short_range.LICENSE.txt")
    assert notice.is_file() and "Apache License" in notice.read_text() and "2.0" in notice.read_text()
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    package_data = re.search(r"^ferlite = \[(.*)\]", pyproject.split("[tool.setuptools.package-data]")[1], re.M)
    globs = re.findall(r'"([^"]+)"', package_data.group(1))
    for shipped in (entry.bundled_path, notice):
        assert any(fnmatch.fnmatch(f"pretrained/{shipped.name}", g) for g in globs), (shipped.name, globs)
    assert weights.status(entry.name) == "bundled" and weights.locate(entry.name) == entry.bundled_path


def test_detector_resolution_order(detector_mirror, ferlite_home):
    """cache (verified) > package (verified) > download: a valid cached copy is used first; a tampered one is
    passed over for the bundled file, silently and without a request; nothing is downloaded while a good copy is
    local."""
    entry = weights.registry_entry("blaze-face-short-range")
    assert weights.fetch(entry.name) == entry.bundled_path and weights.status(entry.name) == "bundled"
    cached = ferlite_home / "weights" / entry.filename
    cached.parent.mkdir()
    shutil.copy(BUNDLED_DETECTOR, cached)
    assert weights.fetch(entry.name) == cached and weights.status(entry.name) == "cached"
    cached.write_bytes(b"tampered" + BUNDLED_DETECTOR.read_bytes()[8:])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert weights.fetch(entry.name) == entry.bundled_path and weights.status(entry.name) == "bundled"
    assert detector_mirror.requests == [] and cached.read_bytes().startswith(b"tampered")  # left alone, unused


def test_detector_tampered_cache_redownloaded_when_the_package_lacks_it(detector_mirror, ferlite_home, package_dir):
    """A package without the file (fallback_download): a tampered cached copy is replaced by a download, with a
    warning; with the mirror down as well, the error names the URL and nothing is left in the cache."""
    entry = weights.registry_entry("blaze-face-short-range")
    cached = ferlite_home / "weights" / entry.filename
    cached.parent.mkdir()
    cached.write_bytes(b"tampered")
    with pytest.warns(UserWarning, match=r"local copy \(ignored, sha256 mismatch: .*\); downloading it again"):
        assert weights.fetch(entry.name) == cached
    assert weights.file_sha256(cached) == BLAZE_SHA256 and weights.status(entry.name) == "cached"
    assert detector_mirror.requests == ["/blaze_face_short_range.tflite"]
    cached.unlink()
    detector_mirror.close()
    with pytest.raises(weights.WeightsUnavailable, match=re.escape(detector_mirror.url + entry.filename)):
        weights.fetch(entry.name)
    assert cache_files(ferlite_home) == []
