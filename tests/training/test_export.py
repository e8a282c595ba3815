"""TFLite export: the three formats, sidecars, the int8 graph check, parity with Keras, bad inputs, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO

from ferlite import metrics as M
from ferlite import weights
from ferlite.cli import main
from ferlite.labels import votes_to_targets
from ferlite.runtime import load_predictor
from ferlite.training.export import (
    QUANTIZE_MODES,
    calibration_faces,
    default_output,
    export_tflite,
    float_fallbacks,
    logit_slope,
)

PRETRAINED = REPO / "src" / "ferlite" / "pretrained"
BUNDLED = PRETRAINED / "ferplus-mfn-1.0.keras"
SMALL = PRETRAINED / "ferplus-mfn-0.5.keras"


@pytest.fixture(scope="module")
def module_home(tmp_path_factory):
    """A FERLITE_HOME for the module-scoped fixtures (the per-test one is not set up yet when they run)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FERLITE_HOME", str(tmp_path_factory.mktemp("home")))
        yield


@pytest.fixture(scope="module")
def valid_faces(ferplus_valid, module_home):
    """All 3,579 FER2013Valid faces."""
    from ferlite.datasets import read_ferplus_folder

    return read_ferplus_folder(ferplus_valid)


@pytest.fixture(scope="module")
def trained_small(tmp_path_factory) -> Path:
    """A copy of the bundled ``ferplus-mfn-0.5.keras``: a fixed, fully trained network (60k parameters).

    A fixed file, not a model trained inside the test: multi-threaded CPU training is not bitwise reproducible,
    and a briefly trained network's outputs sit near ties, so the int8 checks below varied from run to run.
    The copy has another name so the registry's metadata for the bundled file does not apply to it."""
    path = tmp_path_factory.mktemp("trained") / "small-trained.keras"
    shutil.copy(SMALL, path)
    return path


@pytest.fixture(scope="module")
def image_folder(ferplus_valid, tmp_path_factory) -> Path:
    """120 real face PNGs in a plain folder (no label.csv): the 'folder of images' calibration source."""
    dest = tmp_path_factory.mktemp("faces")
    for p in sorted(ferplus_valid.glob("*.png"))[-120:]:
        shutil.copy(p, dest / p.name)
    return dest


@pytest.fixture(scope="module")
def exports(trained_small, image_folder, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("exports")
    return {q: export_tflite(trained_small, out / f"tiny-{q}.tflite", q, calibration_data=image_folder,
                             num_calibration=100)
            for q in QUANTIZE_MODES}


@pytest.mark.slow
def test_three_formats_with_sidecars(exports, trained_small):
    sizes = {}
    for q, path in exports.items():
        side = json.loads(path.with_suffix(".json").read_text())
        assert side["quantization"] == q and side["format"] == "tflite"
        assert side["classes"] == list(load_predictor(trained_small).classes)
        assert (side["input_size"], side["channels"]) == (48, 1)
        assert side["source_model"]["file"] == trained_small.name
        assert len(side["source_model"]["sha256"]) == 64
        assert side["input"]["dtype"] == "uint8"
        assert side["output"]["dtype"] == ("uint8" if q == "int8" else "float32")
        assert side["size_bytes"] == path.stat().st_size
        sizes[q] = path.stat().st_size
    assert json.loads(exports["int8"].with_suffix(".json").read_text())["calibration"]["faces"] == 100
    assert max(sizes["int8"], sizes["float16"]) < sizes["none"]
    folder = exports["none"].parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"tiny-{q}{ext}" for q in QUANTIZE_MODES for ext in (".tflite", ".json"))


@pytest.mark.slow
def test_int8_graph_has_no_float_ops(exports):
    assert float_fallbacks(exports["int8"]) == []
    assert float_fallbacks(exports["int8"].read_bytes()) == []
    found = float_fallbacks(exports["none"])
    assert any("CONV_2D" in f for f in found) and any("SOFTMAX" in f for f in found)


@pytest.mark.slow
def test_float_exports_match_keras(exports, trained_small, valid_faces):
    x = valid_faces.images[:256, :, :, None]
    ref = load_predictor(trained_small).predict(x)
    assert ref.std(axis=0).mean() > 0.01, "the trained fixture should not give near-constant outputs"
    np.testing.assert_allclose(load_predictor(exports["none"]).predict(x), ref, atol=2e-5)
    np.testing.assert_allclose(load_predictor(exports["float16"]).predict(x), ref, atol=5e-3)


@pytest.mark.slow
def test_int8_export_tracks_keras(exports, trained_small, valid_faces):
    """Deterministic: a fixed model, fixed calibration faces (the converter gives the same bytes every run).

    Measured on these 1,000 faces (2-core x86_64, the bundled fast model's stage 7): mean |int8 - keras| 0.0091,
    argmax agreement 95.8% overall and 98.9% where the Keras top-2 margin exceeds 0.1 (90% of faces; stage 6 gave
    0.0102, 95.2%, 98.6% and 88%). int8 rounding moves single probabilities by up to ~0.35, so faces with near-tied
    top classes may flip: that is quantization, not a defect. The bounds sit a little below those figures only for
    other CPUs' float rounding in calibration; on one machine the result never varies."""
    x = valid_faces.images[:1000, :, :, None]
    ref = load_predictor(trained_small).predict(x)
    q = load_predictor(exports["int8"]).predict(x)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(q - ref).mean() < 0.015
    agree = q.argmax(axis=1) == ref.argmax(axis=1)
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.1
    assert agree.mean() > 0.93 and agree[clear].mean() > 0.97 and clear.mean() > 0.8


@pytest.mark.slow
def test_int8_export_undoes_the_shrink_of_the_logits(exports, trained_small, image_folder, valid_faces, tmp_path):
    """On LiteRT's default kernels the plain int8 conversion of the fast model shrinks its logits (stage 7: slope 0.956
    on FER2013Train with 1,000 calibration faces; here, with 100 faces of another folder, 0.974, and 0.970 on the
    1,000 faces checked); the export scales the last layer to undo it (0.996 on those faces). Checked on faces that
    calibrated neither file. The plain file's mean top probability is 0.013 below the Keras model's, the corrected
    one's 0.004."""
    from ferlite.modelfile import load_keras_model

    model = load_keras_model(trained_small)
    faces = valid_faces.images[:1000, :, :, None]
    corrected = json.loads(exports["int8"].with_suffix(".json").read_text())["logit_correction"]
    assert corrected["applied"] and corrected["slope"] < 0.985
    assert corrected["factor"] == pytest.approx(1 / corrected["slope"], abs=2e-4)
    assert abs(corrected["slope_after"] - 1) < 0.005
    assert abs(logit_slope(model, exports["int8"].read_bytes(), faces) - 1) < 0.01

    plain = tmp_path / "plain-int8.tflite"
    res = CliRunner().invoke(main, ["export", "--model", str(trained_small), "--quantize", "int8", "--output",
                                    str(plain), "--calibration-data", str(image_folder), "--num-calibration", "100",
                                    "--no-logit-correction"])
    assert res.exit_code == 0, res.output
    record = json.loads(plain.with_suffix(".json").read_text())["logit_correction"]
    assert record == {"applied": False, "slope": corrected["slope"]}  # the same first conversion, measured alike
    assert logit_slope(model, plain.read_bytes(), faces) < 0.985
    # the flattening it undoes: the plain file's top probabilities are lower than the Keras model's on average
    keras_top = load_predictor(trained_small).predict(faces).max(axis=1).mean()
    assert load_predictor(plain).predict(faces).max(axis=1).mean() < keras_top - 0.008
    assert abs(load_predictor(exports["int8"]).predict(faces).max(axis=1).mean() - keras_top) < 0.01


@pytest.fixture(scope="module")
def bundled_int8(ferplus_valid, tmp_path_factory, module_home) -> Path:
    """``ferlite export --format tflite --quantize int8`` with every other default (the default model, the default
    output name in the current folder), calibrated on the shared FER2013Valid."""
    assert BUNDLED.is_file(), f"the bundled default model {BUNDLED} is missing: the package ships it"
    folder = tmp_path_factory.mktemp("cli-default")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        res = CliRunner().invoke(main, ["export", "--format", "tflite", "--quantize", "int8", "--calibration-data",
                                        str(ferplus_valid)])
    assert res.exit_code == 0, res.output
    return folder / "ferplus-mfn-1.0-int8.tflite"


@pytest.mark.slow
def test_cli_export_defaults(bundled_int8):
    side = json.loads(bundled_int8.with_suffix(".json").read_text())
    assert side["source_model"]["name"] == "ferplus-mfn-1.0" and side["quantization"] == "int8"
    assert side["calibration"] == {"data": "FER2013Valid", "faces": 300, "seed": 0}
    source = json.loads((PRETRAINED / "ferplus-mfn-1.0.json").read_text())
    for key in ("class_prior", "class_prior_source", "balance", "balance_source"):  # the balanced decision's
        assert side[key] == source[key], key
    assert sorted(p.name for p in bundled_int8.parent.iterdir()) == ["ferplus-mfn-1.0-int8.json",
                                                                     "ferplus-mfn-1.0-int8.tflite"]


def fer2013valid_scores(faces, probs: np.ndarray) -> np.ndarray:
    """MAE and top-1 under seed9, major8 under the majority protocol: what the registry records for each model."""
    t = votes_to_targets(faces.votes, "seed9", 9)
    return np.array([M.mae(t.targets, probs[t.keep]), M.top1(t.targets, probs[t.keep]),
                     M.major8_accuracy(faces.votes, probs)[0]])


def assert_int8_parity(int8_scores: np.ndarray, keras_scores: np.ndarray, limits=(0.003, 0.01, 0.01)) -> None:
    """int8 within ``limits`` of its Keras model: by default the export issue's 0.003 MAE and 1 point of top-1
    and major8."""
    assert np.all(np.abs(int8_scores - keras_scores) <= limits), (int8_scores, keras_scores)


@pytest.mark.slow
def test_bundled_int8_parity_on_fer2013valid(bundled_int8, valid_faces):
    """The issue's limits, on all of FER2013Valid (on 300 faces, sampling noise alone moves top-1 by >1 point in
    ~40% of random subsets): int8 within 0.003 MAE and 1 point top-1 / major8 of Keras; file at most 320 KB."""
    assert bundled_int8.stat().st_size <= 320_000
    assert float_fallbacks(bundled_int8) == []
    x = valid_faces.images[..., None]
    keras_p, int8_p = load_predictor(BUNDLED).predict(x), load_predictor(bundled_int8).predict(x)
    assert_int8_parity(fer2013valid_scores(valid_faces, int8_p), fer2013valid_scores(valid_faces, keras_p))


@pytest.mark.parametrize(("name", "limits"), [("ferplus-mfn-1.0", (0.0015, 0.008, 0.008)),
                                             ("ferplus-mfn-0.5", (0.002, 0.01, 0.01))])
def test_bundled_int8_files_parity_on_fer2013valid(name, limits, valid_faces):
    """Each bundled int8 file (calibrated on 1,000 FER2013Train faces, logits corrected) against its bundled .keras
    model, on all of FER2013Valid. The default, trained with --quant-noise, is held to the limits of issue 14 (0.0015
    MAE, 0.8 points); measured (MAE, top-1, major8) for stage 4 (2026-12-06): +0.0005, +0.08 and -0.13 points (stage
    3: +0.0007, -0.28 and -0.16, +0.0012 before the logit correction). The fast model, trained with --fake-quant
    (stage 7): +0.0009, -0.31 and -0.34 points (+0.0023 before), held to 0.002 MAE and 1 point (its file before
    --fake-quant lost 1.48 and 1.60 points)."""
    x = valid_faces.images[..., None]
    keras_p = load_predictor(PRETRAINED / f"{name}.keras").predict(x)
    int8_p = load_predictor(PRETRAINED / f"{name}-int8.tflite").predict(x)
    assert_int8_parity(fer2013valid_scores(valid_faces, int8_p), fer2013valid_scores(valid_faces, keras_p), limits)


@pytest.mark.parametrize("name", [e.name for e in weights.list_weights() if e.kind == "tflite"])
def test_bundled_tflite_metrics_are_the_registrys(name, valid_faces):
    """The FER2013Valid metrics the registry records (and `ferlite weights list` shows) for each bundled .tflite
    are its own, at the precision recorded: MAE to 4 decimals, top-1 and major8 to 3 (LiteRT only: cheap)."""
    entry = weights.registry_entry(name)
    measured = fer2013valid_scores(valid_faces, load_predictor(name).predict(valid_faces.images[..., None]))
    recorded = [entry.metrics[k] for k in ("mae", "top1", "major8_acc")]
    assert [round(float(v), d) for v, d in zip(measured, (4, 3, 3))] == recorded, (name, measured)


def test_calibration_sources(valid_subset, image_folder, tmp_path):
    faces, root = calibration_faces(valid_subset, 50, size=64, channels=3)
    assert faces.shape == (50, 64, 64, 3) and faces.dtype == np.uint8 and root == valid_subset
    assert np.array_equal(faces[..., 0], faces[..., 2])
    faces, _ = calibration_faces(image_folder, 500)
    assert faces.shape == (120, 48, 48, 1)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="no faces in"):
        calibration_faces(junk, 10)
    (junk / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png is not a readable image"):
        calibration_faces(junk, 10)
    with pytest.raises(FileNotFoundError, match="calibration data folder not found"):
        calibration_faces(tmp_path / "missing", 10)


def test_bad_inputs_leave_no_file(tiny_model_path, tmp_path):
    out = tmp_path / "out" / "m.tflite"
    with pytest.raises(ValueError, match=r"unknown quantize mode 'int4'; expected one of none, float16, int8"):
        export_tflite(tiny_model_path, out, "int4")
    with pytest.raises(FileNotFoundError, match="no model file"):
        export_tflite(tmp_path / "missing.keras", out)
    with pytest.raises(ValueError, match=r"output must be a \.tflite file, got .*m\.onnx"):
        export_tflite(tiny_model_path, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="would overwrite .*tiny.json, the sidecar of the source model"):
        export_tflite(tiny_model_path, tiny_model_path.with_suffix(".tflite"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no faces in"):
        export_tflite(tiny_model_path, out, "int8", calibration_data=empty)
    with pytest.raises(ValueError, match=r"int8 export needs calibration faces, got none: pass calibration_data=DIR "
                                         r"\(--calibration-data DIR\), a FER\+ split folder"):
        export_tflite(tiny_model_path, out, "int8")
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]


def test_default_output_names():
    assert default_output("a/ferplus-mfn-1.0.keras", "int8") == Path("ferplus-mfn-1.0-int8.tflite")
    assert default_output("ferplus-mfn-1.0.keras", "float16") == Path("ferplus-mfn-1.0-fp16.tflite")
    assert default_output("m.keras", "none") == Path("m-fp32.tflite")


def test_cli_export_errors(tiny_model_path, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["export", "--model", str(tiny_model_path), "--quantize", "int4"])
    assert res.exit_code == 2 and "'int4' is not one of 'none', 'float16', 'int8'" in res.output
    res = runner.invoke(main, ["export", "--model", str(tmp_path / "no.keras"), "--output", str(tmp_path / "x.tflite")])
    assert res.exit_code == 1 and "no model file" in res.output and not (tmp_path / "x.tflite").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(main, ["export", "--model", str(tiny_model_path), "--quantize", "int8",
                               "--calibration-data", str(empty), "--output", str(tmp_path / "x.tflite")])
    assert res.exit_code == 1 and f"no faces in {empty}" in res.output and not (tmp_path / "x.tflite").exists()
    res = runner.invoke(main, ["export", "--model", str(tiny_model_path), "--quantize", "int8", "--output",
                               str(tmp_path / "x.tflite")])
    assert res.exit_code == 1 and "int8 export needs calibration faces, got none" in res.output
    assert "--calibration-data DIR" in res.output and not (tmp_path / "x.tflite").exists()


@pytest.mark.slow
def test_int8_leaky_relu_as_max_scores_alike_on_both_kernel_sets(exports, trained_small, image_folder, valid_faces,
                                                                  tmp_path):
    """``leaky_relu="max"`` exports each LeakyReLU as maximum(x, slope * x): no LEAKY_RELU op (whose int8 rounding
    differs between XNNPACK and TFLite's built-in kernels), still fully integer, and the two kernel sets disagree
    far less than on the op. Measured on these 1,000 faces (2-core x86_64; 100 calibration faces of another folder):
    mean |XNNPACK - built-in| 0.0064 for the max form against 0.0159 for the op; top classes differ on 3.4% and
    7.8% of the faces (the forms' other rounding, one step here and there, still differs between the kernels)."""
    from ai_edge_litert.interpreter import Interpreter

    from ferlite.litert import litert_predictor

    with pytest.raises(ValueError, match="unknown leaky_relu form 'min'; expected one of op, max"):
        export_tflite(trained_small, tmp_path / "x.tflite", "int8", leaky_relu="min")
    assert not list(tmp_path.iterdir())
    path = export_tflite(trained_small, tmp_path / "max-int8.tflite", "int8", calibration_data=image_folder,
                         num_calibration=100, leaky_relu="max")
    assert json.loads(path.with_suffix(".json").read_text())["leaky_relu"] == "max"
    assert float_fallbacks(path) == []
    faces = valid_faces.images[:1000, :, :, None]

    gaps = {}
    for form, file in (("max", path), ("op", exports["int8"])):  # the same model and calibration, two forms
        ops = {op["op_name"] for op in Interpreter(model_path=str(file))._get_ops_details()}
        fast, builtin = (litert_predictor(file, {}, builtin_kernels=b).predict(faces) for b in (False, True))
        assert ("LEAKY_RELU" in ops) == (form == "op") and ("MAXIMUM" in ops) == (form == "max")
        gaps[form] = (np.abs(fast - builtin).mean(), (fast.argmax(1) != builtin.argmax(1)).mean())
    assert gaps["max"][0] < 0.6 * gaps["op"][0] and gaps["max"][1] < 0.75 * gaps["op"][1], gaps
