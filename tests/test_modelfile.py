"""Model files that are not what they claim (ferlite.modelfile, and the sidecar agreement behind it).

Damaged, truncated, foreign or unsafe files, and sidecars that disagree with their model, are written by the tests
from real models; each is refused with one ValueError that names the file, what it held and what was expected,
by every way in (``check_model_file``, ``load_predictor``, ``ferlite.evaluate``, ``export_tflite``), and nothing is
loaded, run or written.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ferlite import weights
from ferlite.modelfile import KERAS_EXPECTED, TFLITE_EXPECTED, check_model_file, describe_file, load_keras_model
from ferlite.runtime import load_predictor

REPO = Path(__file__).resolve().parents[1]


def listing(folder: Path) -> list[str]:
    """The names in ``folder``, sorted (hidden temporary files included)."""
    return sorted(p.name for p in folder.iterdir())


def flipped(data: bytes, offset: int) -> bytes:
    """``data`` with the byte at ``offset`` inverted."""
    out = bytearray(data)
    out[offset] ^= 0xFF
    return bytes(out)


@pytest.fixture(scope="module")
def real_tflite() -> Path:
    """The bundled int8 TFLite model (a real flatbuffer, 9 FER+ classes, 48x48x1); its sidecar is beside it."""
    path = weights.registry_entry("ferplus-mfn-1.0-int8").bundled_path
    assert path.is_file(), f"the bundled int8 model {path} is missing: the package ships it"
    return path


# --------------------------------------------------------------------------- a tampered .keras


def _local_data_start(data: bytes, info: zipfile.ZipInfo) -> int:
    """Where a member's bytes start: after its local header, its name and its local extra field."""
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len


def _tamper_offsets(path: Path) -> dict[str, int]:
    data = path.read_bytes()
    with zipfile.ZipFile(path) as z:
        h5, meta, start_dir = z.getinfo("model.weights.h5"), z.getinfo("metadata.json"), z.start_dir
    return {
        "weights": _local_data_start(data, h5) + h5.compress_size // 2,  # inside the HDF5 weights
        "local name": meta.header_offset + 30,  # the first letter of metadata.json in its local header
        "method": start_dir + 10,  # the central directory's compression method of the first member
        "version": start_dir + 6,  # the central directory's "version needed to extract"
        "end record": len(data) - 22,  # the signature of the end-of-central-directory record
    }


_REWRITTEN = "(the file was modified or corrupted after it was written)"
def _flipped_version(path: Path) -> float:
    """The "version needed to extract" that zipfile reads once :func:`_tamper_offsets`' "version" byte is flipped."""
    return (path.read_bytes()[_tamper_offsets(path)["version"]] ^ 0xFF) / 10


TAMPERED = {  # what the message must say the file was
    "weights": ("a damaged zip archive: member model.weights.h5 fails its check (Bad CRC-32 for file "
                "'model.weights.h5') " + _REWRITTEN),
    "local name": "a damaged zip archive: member metadata.json fails its check (File name in directory "
                  "'metadata.json' and header b'\\x92etadata.json' differ.) " + _REWRITTEN,
    "method": ("a damaged zip archive: member metadata.json fails its check (That compression method is not "
               "supported) " + _REWRITTEN),
    "version": "a damaged zip archive (zip file version {version:.1f})",
    "end record": "the start of a zip archive without its end ({size:,} bytes: a truncated file?)",
}


@pytest.mark.parametrize("where", list(TAMPERED))
def test_tampered_keras_is_refused(tiny_model_path, tmp_path, where):
    bad = tmp_path / "tiny.keras"
    bad.write_bytes(flipped(tiny_model_path.read_bytes(), _tamper_offsets(tiny_model_path)[where]))
    with pytest.raises(ValueError) as err:
        check_model_file(bad)
    got = TAMPERED[where].format(size=bad.stat().st_size, version=_flipped_version(tiny_model_path))
    assert str(err.value) == f"{bad} is not a valid .keras model: expected {KERAS_EXPECTED}, got {got}"
    assert listing(tmp_path) == ["tiny.keras"]


def test_tampered_keras_refused_by_every_way_in(tiny_model_path, tmp_path, small_valid_folder, ferlite_home):
    from ferlite.evaluate import evaluate
    from ferlite.training.export import export_tflite

    bad = tmp_path / "tiny.keras"
    bad.write_bytes(flipped(tiny_model_path.read_bytes(), _tamper_offsets(tiny_model_path)["weights"]))
    truncated = tmp_path / "half.keras"
    truncated.write_bytes(tiny_model_path.read_bytes()[:tiny_model_path.stat().st_size // 2])
    data = small_valid_folder(3)
    expected = {bad: "Bad CRC-32 for file 'model.weights.h5'",
                truncated: f"the start of a zip archive without its end ({truncated.stat().st_size:,} bytes"}
    for path, damage in expected.items():
        for way in (load_keras_model, load_predictor, lambda p: evaluate(p, data),
                    lambda p: export_tflite(p, tmp_path / "out" / "m.tflite")):
            with pytest.raises(ValueError) as err:
                way(path)
            assert str(err.value).startswith(f"{path} is not a valid .keras model: expected {KERAS_EXPECTED}, got ")
            assert damage in str(err.value)
    assert listing(tmp_path) == ["half.keras", "tiny.keras", "valid"]  # no export, no temporary file
    assert not (ferlite_home / "datasets").exists()  # refused before the data was read


# --------------------------------------------------------------------------- a Lambda layer


@pytest.fixture(scope="module")
def lambda_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny real models saved as .keras: with a Lambda layer, with one inside a nested model, and the same
    network rebuilt with Rescaling (what the refusal message advises)."""
    import keras

    folder = tmp_path_factory.mktemp("lambda")

    def model(scale) -> keras.Model:
        inp = keras.Input((8, 8, 1))
        x = keras.layers.Flatten()(scale(inp))
        return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))

    keras.utils.set_random_seed(0)
    plain = model(keras.layers.Lambda(lambda v: v / 127.5 - 1, name="to_unit"))
    inner_in = keras.Input((8, 8, 1))
    inner = keras.Model(inner_in, keras.layers.Lambda(lambda v: v * 2.0, name="double")(inner_in), name="inner")
    nested = keras.Sequential([keras.Input((8, 8, 1)), inner, keras.layers.Flatten(), keras.layers.Dense(3)])
    rebuilt = model(keras.layers.Rescaling(1 / 127.5, offset=-1, name="to_unit"))
    paths = {}
    for name, m in (("lambda", plain), ("nested", nested), ("rebuilt", rebuilt)):
        paths[name] = folder / f"{name}.keras"
        m.save(paths[name])
    return paths


@pytest.mark.parametrize(("name", "layers"), [("lambda", "to_unit"), ("nested", "double")])
def test_lambda_layer_refused_in_safe_mode(lambda_models, name, layers):
    path = lambda_models[name]
    for way in (check_model_file, load_keras_model, load_predictor):
        with pytest.raises(ValueError) as err:
            way(path)
        msg = str(err.value)
        for part in (f"{path} holds a Lambda layer ({layers})", "arbitrary Python code", "Keras safe mode",
                     "Rebuild the model with built-in layers", "keras.layers.Rescaling", "copy the weights over"):
            assert part in msg, (part, msg)


def test_lambda_refusal_matches_keras_and_the_advice_works(lambda_models):
    import keras

    with pytest.raises(ValueError, match="safe_mode"):  # what ferlite refuses, Keras's own safe mode refuses too
        keras.models.load_model(lambda_models["lambda"], safe_mode=True)
    model = load_keras_model(lambda_models["rebuilt"])  # the same network with Rescaling loads
    probs = np.asarray(model(np.full((2, 8, 8, 1), 200, np.float32)))
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


# --------------------------------------------------------------------------- foreign and incomplete .keras files


def _zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    return path


def test_keras_files_that_are_something_else(tiny_model_path, real_tflite, tmp_path):
    with zipfile.ZipFile(tiny_model_path) as z:
        parts = {name: z.read(name) for name in z.namelist()}
    size = real_tflite.stat().st_size
    cases = {
        "renamed.keras": (real_tflite.read_bytes(), f"got a TFLite flatbuffer of {size:,} bytes"),
        "bare.keras": (parts["model.weights.h5"], "got an HDF5 file of"),
        "empty.keras": (b"", "got an empty file"),
        "notes.keras": (b"model: mobilefacenet\nalpha: 0.25\n", "got a text file of 33 bytes starting "
                                                                "'model: mobilefacenet'"),
    }
    for name, (content, _) in cases.items():
        (tmp_path / name).write_bytes(content)
    _zip_of(tmp_path / "noweights.keras", {k: parts[k] for k in ("metadata.json", "config.json")})
    cases["noweights.keras"] = (None, "holding metadata.json, config.json, without model.weights.h5")
    _zip_of(tmp_path / "badconfig.keras", {**parts, "config.json": b"{'not': json"})
    cases["badconfig.keras"] = (None, "got a zip archive whose config.json is not JSON (")
    for name, (_, got) in cases.items():
        path = tmp_path / name
        for way in (check_model_file, load_predictor):
            with pytest.raises(ValueError) as err:
                way(path)
            msg = str(err.value)
            assert msg.startswith(f"{path} is not a valid .keras model: expected {KERAS_EXPECTED}, got "), msg
            assert got in msg, (got, msg)
    absent = tmp_path / "absent.keras"
    with pytest.raises(FileNotFoundError, match=f"model file not found: {absent}"):
        check_model_file(absent)
    with pytest.raises(FileNotFoundError, match=f"no model file '{absent}' and no registered weights of that name; "
                                                "registered: ferplus-mfn-1.0, "):
        load_predictor(absent)
    legacy = tmp_path / "legacy.h5"
    legacy.write_bytes(parts["model.weights.h5"])
    with pytest.raises(ValueError, match=rf"unsupported model file {legacy}: expected a \.keras or \.tflite file, "
                                         r"got an HDF5 file of [\d,]+ bytes \(a legacy Keras \.h5 model"):
        load_predictor(legacy)


@pytest.mark.filterwarnings("ignore:Skipping nested container:UserWarning")  # Keras, on the mixed file
def test_keras_parts_that_disagree_are_refused_by_the_loader(tiny_model_path, lambda_models, tmp_path):
    """Whole zip archives that pass the cheap check but that Keras cannot rebuild: one ValueError naming the file."""
    with zipfile.ZipFile(lambda_models["rebuilt"]) as z:
        small = {name: z.read(name) for name in z.namelist()}
    with zipfile.ZipFile(tiny_model_path) as z:
        other_weights = z.read("model.weights.h5")
    mixed = _zip_of(tmp_path / "mixed.keras", {**small, "model.weights.h5": other_weights})
    unknown = _zip_of(tmp_path / "unknown.keras", {**small, "config.json": json.dumps(
        {"module": "evil", "class_name": "NoSuchLayer", "config": {}}).encode()})
    for path, reason in ((mixed, "ValueError: A total of 1 objects could not be loaded"),
                         (unknown, "TypeError: Could not locate class 'NoSuchLayer'")):
        check_model_file(path)
        with pytest.raises(ValueError) as err:
            load_predictor(path)
        msg = str(err.value)
        assert msg.startswith(f"{path} could not be loaded as {KERAS_EXPECTED}: "), msg
        assert reason in msg and len(msg) < 700
    assert listing(tmp_path) == ["mixed.keras", "unknown.keras"]


# --------------------------------------------------------------------------- .tflite files that are not models


def _bad_tflites(real: Path, folder: Path) -> dict[Path, str]:
    """Write the bad .tflite files; return each with what the message must say it got."""
    rng = np.random.default_rng(13)
    data = real.read_bytes()
    cases = {
        "text.tflite": (b"this is a text file, not a model\nsecond line\n",
                        "got a text file of 45 bytes starting 'this is a text file, not a model'"),
        "random.tflite": (rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), "got 4,096 bytes of binary data "
                                                                                "starting "),
        "empty.tflite": (b"", "got an empty file"),
        "zip.tflite": (None, "got a zip archive of"),
        "truncated.tflite": (data[:len(data) // 2], f"got a TFLite flatbuffer of {len(data) // 2:,} bytes that "
                                                    "LiteRT refuses (The model is not a valid Flatbuffer buffer)"),
        "header.tflite": (data[:64], "got a TFLite flatbuffer of 64 bytes that LiteRT refuses"),
    }
    out = {}
    for name, (content, got) in cases.items():
        if content is None:
            _zip_of(folder / name, {"config.json": b"{}", "model.weights.h5": b""})
        else:
            (folder / name).write_bytes(content)
        out[folder / name] = got
    return out


def test_tflite_files_that_are_not_models(real_tflite, tmp_path):
    from ferlite.litert import litert_predictor

    for path, got in _bad_tflites(real_tflite, tmp_path).items():
        prefix = f"{path} is not a valid .tflite model: expected {TFLITE_EXPECTED}, got "
        ways = [load_predictor, lambda p: litert_predictor(p, {})]
        if "LiteRT refuses" in got:  # it carries the identifier: only the interpreter can tell it is cut short
            assert check_model_file(path) == path
        else:
            ways.append(check_model_file)
        for way in ways:
            with pytest.raises(ValueError) as err:
                way(path)
            msg = str(err.value)
            assert msg.startswith(prefix) and got in msg, msg


def test_bad_tflite_in_a_real_process_is_an_error_not_a_crash(real_tflite, tmp_path):
    """Each bad file loaded in a fresh interpreter (LiteRT's C++ behind it): a ValueError, never a signal."""
    bad = _bad_tflites(real_tflite, tmp_path)
    code = ("import json, sys\nfrom ferlite.runtime import load_predictor\nout = {}\nfor p in sys.argv[1:]:\n"
            "    try:\n        load_predictor(p)\n        out[p] = 'loaded'\n"
            "    except Exception as exc:\n        out[p] = f'{type(exc).__name__}: {exc}'\nprint(json.dumps(out))\n")
    res = subprocess.run([sys.executable, "-c", code, *map(str, bad)], capture_output=True, text=True, timeout=300,
                         cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    for path, got in bad.items():
        assert out[str(path)].startswith(f"ValueError: {path} is not a valid .tflite model: expected ")
        assert got in out[str(path)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in bad)


# --------------------------------------------------------------------------- sidecars that disagree with the model


@pytest.fixture
def tflite_copy(real_tflite, tmp_path) -> Path:
    """A copy of the bundled int8 model and its sidecar, with the sidecar recording the file's sha256."""
    path = tmp_path / "m.tflite"
    shutil.copy(real_tflite, path)
    meta = json.loads(real_tflite.with_suffix(".json").read_text())
    meta["sha256"] = weights.file_sha256(path)
    path.with_suffix(".json").write_text(json.dumps(meta))
    assert load_predictor(path).classes == tuple(meta["classes"])  # agrees as written
    return path


def _edit_sidecar(path: Path, **changes) -> Path:
    side = path.with_suffix(".json")
    side.write_text(json.dumps({**json.loads(side.read_text()), **changes}))
    return side


@pytest.mark.parametrize(("changes", "message"), [
    ({"input_size": 64}, "sidecar says input_size=64, but the model's input is [48, 48, 1] (sidecar file {side})"),
    ({"channels": 3}, "sidecar says channels=3, but the model's input is [48, 48, 1] (sidecar file {side})"),
    ({"classes": ["cat", "dog", "bird"]},
     "sidecar names 3 classes but the model has 9 outputs (sidecar file {side}, classes cat, dog, bird)"),
    ({"sha256": "0" * 64}, "has sha256 {sha}, but sidecar file {side} records " + "0" * 64),
    ({"classes": "neutral"}, "sidecar file {side} has classes='neutral': expected a list of 9 class names"),
    ({"input_size": "48"}, "sidecar file {side} has input_size='48': expected a whole number (the model's is 48)"),
])
def test_sidecar_disagreeing_with_the_model(tflite_copy, changes, message):
    side = _edit_sidecar(tflite_copy, **changes)
    with pytest.raises(ValueError) as err:
        load_predictor(tflite_copy)
    msg = str(err.value)
    assert msg.startswith(f"{tflite_copy}") and message.format(side=side, sha=weights.file_sha256(tflite_copy)) in msg


def test_tampered_tflite_caught_by_its_recorded_sha256(tflite_copy):
    recorded = json.loads(tflite_copy.with_suffix(".json").read_text())["sha256"]
    data = tflite_copy.read_bytes()
    tflite_copy.write_bytes(flipped(data, len(data) // 2))  # inside the weights: the interpreter accepts it
    check_model_file(tflite_copy)
    with pytest.raises(ValueError) as err:
        load_predictor(tflite_copy)
    msg = str(err.value)
    assert f"{tflite_copy} has sha256 {weights.file_sha256(tflite_copy)}, but sidecar file " in msg
    assert f"records {recorded}: the model file was modified or damaged after it was written" in msg


@pytest.mark.parametrize(("text", "message"), [
    ("{'classes': ['a']}", "is not valid JSON (Expecting property name enclosed in double quotes"),
    ('["neutral", "happiness"]', "holds a JSON list: expected a JSON object (classes, input_size, channels"),
    ("", "is not valid JSON (Expecting value: line 1 column 1"),
])
def test_sidecar_that_is_not_a_json_object(tflite_copy, text, message):
    side = tflite_copy.with_suffix(".json")
    side.write_text(text)
    with pytest.raises(ValueError) as err:
        load_predictor(tflite_copy)
    assert str(err.value).startswith(f"the sidecar {side} of {tflite_copy} ") and message in str(err.value)


def test_keras_sidecar_disagreeing_with_the_model(tiny_model_path, tmp_path):
    path = tmp_path / "tiny.keras"
    shutil.copy(tiny_model_path, path)
    side = path.with_suffix(".json")
    side.write_text(json.dumps({"input_size": 48, "channels": 3}))
    with pytest.raises(ValueError) as err:
        load_predictor(path)
    assert f"{path}: sidecar says channels=3, but the model's input is [48, 48, 1] (sidecar file {side})" \
        in str(err.value)
    assert listing(tmp_path) == ["tiny.json", "tiny.keras"]


# --------------------------------------------------------------------------- describe_file


def test_describe_file(tiny_model_path, real_tflite, tmp_path):
    data = tiny_model_path.read_bytes()
    files = {
        "empty": b"",
        "text": b"neutral,happiness\n1,2\n",
        "binary": bytes(range(200, 256)) + bytes(range(0, 8)),
        "hdf5": b"\x89HDF\r\n\x1a\n" + b"\0" * 92,
        "tflite": real_tflite.read_bytes()[:1000],
        "keras": data,
        "truncated": data[:5000],
        "central": flipped(data, _tamper_offsets(tiny_model_path)["version"]),
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    _zip_of(tmp_path / "many", {f"f{i}.txt": b"x" for i in range(7)})
    _zip_of(tmp_path / "none", {})
    size = len(data)
    expected = {
        "empty": "an empty file",
        "text": "a text file of 22 bytes starting 'neutral,happiness'",
        "binary": "64 bytes of binary data starting c8 c9 ca cb cc cd ce cf",
        "hdf5": "an HDF5 file of 100 bytes (a legacy Keras .h5 model or bare weights?)",
        "tflite": "a TFLite flatbuffer of 1,000 bytes",
        "keras": f"a zip archive of {size:,} bytes holding metadata.json, config.json, model.weights.h5",
        "truncated": "the start of a zip archive without its end (5,000 bytes: a truncated file?)",
        "central": f"a damaged zip archive of {size:,} bytes (zip file version "
                   f"{_flipped_version(tiny_model_path):.1f})",
        "many": f"a zip archive of {(tmp_path / 'many').stat().st_size:,} bytes holding f0.txt, f1.txt, f2.txt, "
                "f3.txt, f4.txt and 2 more",
        "none": "a zip archive of 22 bytes holding nothing",
    }
    assert {name: describe_file(tmp_path / name) for name in expected} == expected
