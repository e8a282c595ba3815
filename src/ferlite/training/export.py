"""TFLite export: float32, float16 and full-integer int8, with calibration and a graph check.

:func:`export_tflite` converts a Keras model (a registered name or a ``.keras`` path) with
``tf.lite.TFLiteConverter.from_keras_model`` and writes ``OUTPUT.tflite`` plus its JSON
sidecar ``OUTPUT.json`` (classes, input size, channels, quantization, source model), both
atomically: on any error nothing is left behind.

* ``none``: float32 weights and activations; uint8 input, float32 probabilities.
* ``float16``: float16 weights, float32 compute; same input and output as ``none``.
* ``int8``: full-integer quantization (``TFLITE_BUILTINS_INT8``) calibrated on real faces,
  uint8 input (the face as it comes) and uint8 output, dequantized by
  :mod:`ferlite.litert`. The calibration faces come from a folder the caller names (``calibration_data``,
  ``--calibration-data``): a FER+ split folder or a folder of face images. The converter sees a float-input
  twin of the model so that the graph has no float op at all (:func:`float_fallbacks` checks that). On LiteRT's
  default (XNNPACK) kernels the 8-bit activations shrink the logits a little (the bundled models' by 2% and 5.5%, the
  same on training and validation faces), which flattens the probabilities; the export then scales
  the last dense layer by the inverse of that shrink, measured on the calibration faces
  (:func:`logit_slope`), and converts again, so that the int8 logits track the Keras model's with
  slope 1 (``logit_correction`` in the sidecar; ``correct_logits=False``, ``--no-logit-correction``,
  keeps the plain conversion).

Tensor names are stripped from the flatbuffer (they are only debugging aids), which keeps
the default int8 model under 320 KB. TensorFlow is imported only inside :func:`export_tflite`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
from pathlib import Path

import numpy as np

from ferlite._atomic import atomic_path
from ferlite.images import IMAGE_SUFFIXES, face_to_input

__all__ = [
    "LEAKY_RELU_FORMS",
    "QUANTIZE_MODES",
    "calibration_faces",
    "default_output",
    "export_tflite",
    "float_fallbacks",
    "logit_slope",
]

QUANTIZE_MODES = ("none", "float16", "int8")
LEAKY_RELU_FORMS = ("op", "max")
_SUFFIX = {"none": "-fp32", "float16": "-fp16", "int8": "-int8"}
_EDGE_OPS = ("QUANTIZE", "DEQUANTIZE")
_SLOPES_CORRECTED = (0.5, 2.0)  # a slope outside this is no rounding effect: the model is left as it is


def default_output(model_path: str | os.PathLike, quantize: str) -> Path:
    """The default export file name in the current folder: ``<model>-fp32.tflite``, ``<model>-fp16.tflite``
    or ``<model>-int8.tflite`` (the last two are the names the weights registry uses)."""
    _check_mode(quantize)
    return Path(Path(model_path).stem + _SUFFIX[quantize] + ".tflite")


_CALIBRATION_EXPECTED = ("a FER+ split folder (label.csv + PNGs, e.g. FER2013Train) or a folder of face images "
                         f"({', '.join(IMAGE_SUFFIXES)})")


def calibration_faces(folder: str | os.PathLike, n: int, *, size: int = 48, channels: int = 1,
                      seed: int = 0) -> tuple[np.ndarray, Path]:
    """Up to ``n`` faces for int8 calibration, as a uint8 ``(n, size, size, channels)`` array, each made the
    model's input by :func:`ferlite.images.face_to_input`.

    Args:
        folder: a FER+ split folder (``label.csv`` + PNGs) or a folder of face images (PNG, JPEG, ...).
        n: how many faces (a seeded random sample when the folder holds more).

    Returns:
        ``(faces, folder)``.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: the folder holds no images, or an image cannot be read.
    """
    if n < 1:
        raise ValueError(f"the number of calibration faces must be at least 1, got {n}")
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"calibration data folder not found: {root}")
    rng = np.random.default_rng(seed)
    if (root / "label.csv").is_file():
        from ferlite.datasets import read_ferplus_folder

        images = read_ferplus_folder(root, skip_bad=True).images
        images = images[np.sort(rng.choice(len(images), min(n, len(images)), replace=False))]
    else:
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        files = [files[i] for i in np.sort(rng.choice(len(files), min(n, len(files)), replace=False))]
        images = [_calibration_image(p) for p in files]
    if len(images) == 0:
        raise ValueError(f"no faces in {root}: expected {_CALIBRATION_EXPECTED}")
    return np.stack([face_to_input(img, size, channels) for img in images]), root


def _calibration_image(path: Path) -> np.ndarray:
    from ferlite.images import ImageError, read_image

    try:
        return read_image(path, mode="gray")
    except ImageError as exc:
        raise ImageError(f"calibration image {path} is not a readable image: {exc.reason()}", path=path,
                         problem=exc.problem, expected=exc.expected) from None


def float_fallbacks(model: str | os.PathLike | bytes) -> list[str]:
    """Ops of a quantized ``.tflite`` model that compute in float: the empty list for a clean int8 graph.

    Every op reading or writing a float tensor is reported, except QUANTIZE / DEQUANTIZE ops at the
    edges (reading a model input or writing a model output). Inspected with LiteRT, without delegates.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    source = {"model_content": bytes(model)} if isinstance(model, (bytes, bytearray)) else {"model_path": str(model)}
    interp = Interpreter(**source, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in interp.get_tensor_details()}
    inputs = {d["index"] for d in interp.get_input_details()}
    outputs = {d["index"] for d in interp.get_output_details()}
    found = []
    for op in interp._get_ops_details():
        ins, outs = [i for i in op["inputs"] if i >= 0], [i for i in op["outputs"] if i >= 0]
        kinds = [dtypes[i].name for i in ins + outs]
        if not any(dtypes[i].kind == "f" for i in ins + outs):
            continue
        if op["op_name"] in _EDGE_OPS and (inputs.intersection(ins) or outputs.intersection(outs)):
            continue
        found.append(f"op {op['index']} {op['op_name']} ({', '.join(kinds)})")
    return found


def _softmax_head(model):
    """The model's last layer when it is a dense layer with a softmax (its logits are computable), else None."""
    import keras

    last = model.layers[-1]
    is_softmax = getattr(last, "activation", None) is keras.activations.softmax
    return last if isinstance(last, keras.layers.Dense) and is_softmax else None


def logit_slope(model, tflite: bytes, faces: np.ndarray, builtin_kernels: bool = False) -> float | None:
    """How the int8 model ``tflite`` scales the logits of the Keras ``model`` it was converted from, over
    ``faces`` (uint8 ``(N, S, S, C)``): the least-squares slope of its logits (the input of its softmax) on the
    Keras model's, both centred on each face's mean (softmax ignores a shift). 1 means no systematic shrink.
    Run with LiteRT's default kernels (XNNPACK), as :mod:`ferlite.litert` runs the model, or with TFLite's
    built-in kernels (``builtin_kernels``, as runtimes without XNNPACK run it), which round differently: the
    plain int8 file of the bundled fast model has slope 0.946 on XNNPACK and 1.056 on them.

    None when ``model`` does not end in a softmax dense layer or its logits do not vary over ``faces``.
    """
    head = _softmax_head(model)
    if head is None:
        return None
    return _slope(_keras_logits(model, head, faces), _int8_logits(tflite, faces, builtin_kernels))


def _keras_logits(model, head, faces: np.ndarray) -> np.ndarray:
    """The logits of ``model`` on ``faces``: the input of its softmax ``head`` (its last layer)."""
    import keras

    features = keras.Model(model.inputs, head.input).predict(faces.astype(np.float32), batch_size=256, verbose=0)
    return features @ head.kernel.numpy() + (head.bias.numpy() if head.use_bias else 0.0)


def _int8_logits(tflite: bytes, faces: np.ndarray, builtin_kernels: bool = False) -> np.ndarray:
    """The dequantized input of the int8 model's SOFTMAX op on ``faces``, read from the interpreter."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with warnings.catch_warnings():  # "preserve_all_tensors ... is intended for debugging": it is used for that
        warnings.simplefilter("ignore", UserWarning)
        resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if builtin_kernels else OpResolverType.AUTO
        interp = Interpreter(model_content=bytes(tflite), experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=resolver)
    (softmax,) = [op for op in interp._get_ops_details() if op["op_name"] == "SOFTMAX"]
    logits_index = softmax["inputs"][0]
    (detail,) = [t for t in interp.get_tensor_details() if t["index"] == logits_index]
    scale, zero_point = detail["quantization"]
    inp = interp.get_input_details()[0]
    chunks = []
    for start in range(0, len(faces), 256):  # every intermediate tensor is kept: bound the batch
        chunk = faces[start:start + 256].astype(inp["dtype"])
        interp.resize_tensor_input(inp["index"], list(chunk.shape))
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], chunk)
        interp.invoke()
        chunks.append((interp.get_tensor(logits_index).astype(np.float64) - zero_point) * scale)
    return np.concatenate(chunks)


def _slope(keras_logits: np.ndarray, int8_logits: np.ndarray) -> float | None:
    """Least-squares slope of the per-face centred int8 logits on the Keras ones; None if the latter are flat."""
    a = keras_logits - keras_logits.mean(axis=1, keepdims=True)
    b = int8_logits - int8_logits.mean(axis=1, keepdims=True)
    if (a * a).mean() < 1e-8:
        return None
    return float((a * b).sum() / (a * a).sum())


def _convert_int8(model, faces: np.ndarray, correct_logits: bool, leaky_relu: str = "op") -> tuple[bytes, dict]:
    """Convert to int8 and, when asked and possible, once more with the last dense layer scaled by 1 / the
    logit slope of the first conversion; the bytes and what was done (the sidecar's ``logit_correction``)."""
    content = _strip_names(_convert(model, "int8", faces, leaky_relu))
    head = _softmax_head(model)
    reference = None if head is None else _keras_logits(model, head, faces)  # computed once, used twice
    slope = None if head is None else _slope(reference, _int8_logits(content, faces))
    record = {"applied": False, "slope": None if slope is None else round(slope, 4)}
    if not correct_logits or slope is None or not _SLOPES_CORRECTED[0] <= slope <= _SLOPES_CORRECTED[1]:
        return content, record
    weights = head.get_weights()
    head.set_weights([w / slope for w in weights])
    try:
        content = _strip_names(_convert(model, "int8", faces, leaky_relu))
    finally:
        head.set_weights(weights)
    corrected = _slope(reference, _int8_logits(content, faces))
    return content, {**record, "applied": True, "factor": round(1 / slope, 4), "slope_after": round(corrected, 4)}


def _check_mode(quantize: str) -> None:
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"unknown quantize mode {quantize!r}; expected one of {', '.join(QUANTIZE_MODES)}")


def _float_input_twin(model, leaky_relu: str = "op"):
    """The same layers (shared weights) behind a float32 input, so int8 conversion needs no CAST; with
    ``leaky_relu="max"`` each LeakyReLU layer computed as ``maximum(x, slope * x)`` (see :func:`export_tflite`)."""
    import keras

    class MaxLeakyReLU(keras.layers.Layer):
        def __init__(self, negative_slope: float, **kwargs):
            super().__init__(**kwargs)
            self.negative_slope = negative_slope

        def call(self, x):
            return keras.ops.maximum(x, self.negative_slope * x)

    def same_or_max(layer):
        if leaky_relu == "max" and isinstance(layer, keras.layers.LeakyReLU) and 0 <= layer.negative_slope <= 1:
            return MaxLeakyReLU(float(layer.negative_slope), name=layer.name)
        return layer

    inp = keras.Input(shape=model.input_shape[1:], dtype="float32", name=model.inputs[0].name)
    return keras.models.clone_model(model, input_tensors=inp, clone_function=same_or_max)


def _convert(model, quantize: str, faces: np.ndarray | None, leaky_relu: str = "op") -> bytes:
    import tensorflow as tf

    if quantize == "int8":
        model = _float_input_twin(model, leaky_relu)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        def representative():
            for face in faces:
                yield [face[None].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        return converter.convert()


def _strip_names(content: bytes) -> bytes:
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    flatbuffer_utils.strip_strings(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _io_info(detail: dict) -> dict:
    scale, zero_point = detail["quantization"]
    return {"dtype": np.dtype(detail["dtype"]).name, "shape": [int(d) for d in detail["shape"]],
            "scale": float(scale), "zero_point": int(zero_point)}


def _check_tflite(content: bytes, quantize: str) -> tuple[dict, dict]:
    """Load the converted model in LiteRT; for int8, require uint8 I/O and no float op; return I/O details."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=content)
    inp, out = _io_info(interp.get_input_details()[0]), _io_info(interp.get_output_details()[0])
    if quantize == "int8":
        if (inp["dtype"], out["dtype"]) != ("uint8", "uint8"):
            raise RuntimeError(f"int8 conversion gave {inp['dtype']} input and {out['dtype']} output, "
                               "expected uint8 and uint8")
        fallbacks = float_fallbacks(content)
        if fallbacks:
            raise RuntimeError("int8 conversion left float ops in the graph body: " + "; ".join(fallbacks))
    return inp, out


def export_tflite(model_path_or_name: str | os.PathLike | None, output: str | os.PathLike, quantize: str = "none",
                  calibration_data: str | os.PathLike | None = None, num_calibration: int = 300,
                  seed: int = 0, correct_logits: bool = True, leaky_relu: str = "op") -> Path:
    """Export a Keras model to ``output`` (a ``.tflite`` path) and write its sidecar ``output.json``.

    Args:
        model_path_or_name: a registered weights name, a ``.keras`` path, or None for the default model.
        output: the ``.tflite`` file to write (its folder is created if needed).
        quantize: ``"none"`` (float32), ``"float16"`` or ``"int8"`` (full integer, uint8 in and out).
        calibration_data: int8 only, and needed for it: a FER+ split folder or a folder of face images.
        num_calibration: int8 only: how many faces calibrate the activation ranges.
        seed: int8 only: which faces are drawn.
        correct_logits: int8 only: undo the int8 graph's shrink of the logits, measured on the calibration faces
            (see the module docstring); the sidecar's ``logit_correction`` records the slope and the factor.
        leaky_relu: int8 only: ``"op"`` converts each LeakyReLU to TFLite's LEAKY_RELU op; ``"max"`` computes it as
            ``maximum(x, slope * x)`` (MUL and MAXIMUM ops). The int8 LEAKY_RELU op is rounded differently by
            XNNPACK and by TFLite's built-in kernels (for the bundled fast model, 1.3 points of top-1 apart); the
            max form scores alike on both (80.7% and 80.6%), with a lower MAE, and runs 20% to 24% slower.

    Returns:
        The path of the written ``.tflite`` file.

    Raises:
        ValueError: unknown ``quantize`` or ``leaky_relu``, an output not ending in ``.tflite``, a model that is
            not a usable ``.keras`` file (see :func:`ferlite.modelfile.load_keras_model`), a sidecar that disagrees
            with it, or unusable or missing (int8) calibration data.
        FileNotFoundError: the model or the calibration folder does not exist.
        RuntimeError: the int8 graph is not fully integer.
    """
    from ferlite import weights
    from ferlite.sidecar import DECISION_KEYS, check_signature, model_info, write_sidecar

    _check_mode(quantize)
    if leaky_relu not in LEAKY_RELU_FORMS:
        raise ValueError(f"unknown leaky_relu form {leaky_relu!r}; expected one of {', '.join(LEAKY_RELU_FORMS)}")
    if quantize == "int8" and calibration_data is None:
        raise ValueError("int8 export needs calibration faces, got none: pass calibration_data=DIR "
                         f"(--calibration-data DIR), {_CALIBRATION_EXPECTED}")
    out = Path(output)
    if out.suffix != ".tflite":
        raise ValueError(f"output must be a .tflite file, got {str(out)!r}")
    src = weights.resolve_model(model_path_or_name)
    if src.suffix != ".keras":
        raise ValueError(f"can only export a Keras model (.keras), got {src}")
    if out.with_suffix(".json").resolve() == src.with_suffix(".json").resolve():
        raise ValueError(f"output {out} would overwrite {src.with_suffix('.json')}, the sidecar of the source "
                         "model: choose another name")
    from ferlite.modelfile import load_keras_model  # checks the file before the slow TensorFlow import

    model = load_keras_model(src)
    source_info = model_info(src)
    size, channels, classes = check_signature(src, source_info, model.input_shape, model.output_shape)
    if quantize == "int8":
        faces, calib_dir = calibration_faces(calibration_data, num_calibration, size=size, channels=channels,
                                             seed=seed)
        content, correction = _convert_int8(model, faces, correct_logits, leaky_relu)
    else:
        content = _strip_names(_convert(model, quantize, None))
    inp, outp = _check_tflite(content, quantize)

    sidecar = {
        "name": out.stem,
        "format": "tflite",
        "quantization": quantize,
        "classes": list(classes),
        # what the class-balanced decision needs (ferlite.labels.balance), as the source model records it
        **{k: source_info[k] for k in DECISION_KEYS if k in source_info},
        "input_size": size,
        "channels": channels,
        "input": inp,
        "output": outp,
        "size_bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),  # checked on load: a TFLite flatbuffer has no checksum
        "source_model": {"file": src.name, "name": source_info.get("name", src.stem),
                         "sha256": weights.file_sha256(src),
                         **{k: source_info[k] for k in ("architecture", "alpha") if k in source_info}},
    }
    if quantize == "int8":
        sidecar["calibration"] = {"data": calib_dir.name, "faces": len(faces), "seed": seed}
        sidecar["logit_correction"] = correction
        sidecar["leaky_relu"] = leaky_relu
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_bytes(content)
    try:
        write_sidecar(out.with_suffix(".json"), sidecar)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return out
