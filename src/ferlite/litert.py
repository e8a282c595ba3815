"""Running ``.tflite`` models on the LiteRT interpreter (``ai-edge-litert``), without TensorFlow.

:func:`litert_predictor` wraps a model written by :func:`ferlite.training.export.export_tflite` (or any
single-input, single-output image classifier) in a :class:`~ferlite.runtime.Predictor`:

* float32 / float16 exports take the uint8 face as it is and give probabilities;
* full-integer (int8) exports take uint8 faces and give uint8 (or int8) outputs, which are
  dequantized with the output tensor's scale and zero point; :meth:`Predictor.predict`
  renormalises every row to sum to 1.

Batches run in one ``invoke`` per chunk of up to :data:`MAX_BATCH` faces (the interpreter's
input is resized to the chunk size), which is faster than one ``invoke`` per face.
This module never imports TensorFlow.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ferlite.modelfile import TFLITE_EXPECTED, describe_file
from ferlite.runtime import Predictor
from ferlite.sidecar import check_signature

__all__ = ["MAX_BATCH", "litert_predictor"]

MAX_BATCH = 32


def _quantization(detail: dict) -> tuple[float, int]:
    scale, zero_point = detail["quantization"]
    return float(scale), int(zero_point)


class _Runner:
    """One LiteRT interpreter; called with a uint8 ``(B, S, S, C)`` batch, returns ``(B, K)`` float32 scores."""

    def __init__(self, path: Path, num_threads: int | None, builtin_kernels: bool = False) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        kwargs = {} if num_threads is None else {"num_threads": int(num_threads)}
        if builtin_kernels:
            kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self.interpreter = Interpreter(model_path=str(path), **kwargs)
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"{path} is not a valid .tflite model: expected {TFLITE_EXPECTED}, got "
                             f"{describe_file(path)} that LiteRT refuses ({' '.join(str(exc).split())})") from exc
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{path}: expected a model with one input and one output, "
                             f"got {len(inputs)} inputs and {len(outputs)} outputs")
        self.input, self.output = inputs[0], outputs[0]
        self.batch = int(self.input["shape"][0])
        self.interpreter.allocate_tensors()

    def _to_input(self, faces: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self.input["dtype"])
        if dtype.kind == "f":
            return faces.astype(dtype)
        scale, zero_point = _quantization(self.input)
        if dtype == np.uint8 and (scale == 0 or (scale == 1 and zero_point == 0)):
            return faces
        if scale == 0:
            return faces.astype(dtype)
        info = np.iinfo(dtype)
        return np.clip(np.round(faces / scale + zero_point), info.min, info.max).astype(dtype)

    def _from_output(self, raw: np.ndarray) -> np.ndarray:
        scale, zero_point = _quantization(self.output)
        if np.dtype(self.output["dtype"]).kind == "f" or scale == 0:
            return raw.astype(np.float32)
        return (raw.astype(np.float32) - zero_point) * np.float32(scale)

    def _invoke(self, chunk: np.ndarray) -> np.ndarray:
        if len(chunk) != self.batch:
            self.interpreter.resize_tensor_input(self.input["index"], [len(chunk), *self.input["shape"][1:]])
            self.interpreter.allocate_tensors()
            self.batch = len(chunk)
        self.interpreter.set_tensor(self.input["index"], self._to_input(chunk))
        self.interpreter.invoke()
        return self._from_output(self.interpreter.get_tensor(self.output["index"]))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.concatenate([self._invoke(batch[i:i + MAX_BATCH]) for i in range(0, len(batch), MAX_BATCH)])


def litert_predictor(path: str | os.PathLike, sidecar: dict, num_threads: int | None = None,
                     builtin_kernels: bool = False) -> Predictor:
    """A :class:`~ferlite.runtime.Predictor` running the ``.tflite`` file ``path`` on LiteRT.

    Args:
        path: a ``.tflite`` image classifier with input ``(B, S, S, C)`` and output ``(B, K)``.
        sidecar: its JSON sidecar (``classes`` names the K outputs; without it, the first K FER+ classes).
        num_threads: interpreter threads (None: LiteRT's default).
        builtin_kernels: run TFLite's built-in kernels instead of LiteRT's default XNNPACK delegate (to see what
            a runtime without XNNPACK computes; int8 files can score differently there, see ferlite.training.export).

    Raises:
        ValueError: not a valid single-input, single-output image model, or the sidecar disagrees with it.
    """
    path = Path(path)
    runner = _Runner(path, num_threads, builtin_kernels)
    shape = [int(d) for d in runner.input["shape"]]
    out_shape = [int(d) for d in runner.output["shape"]]
    size, channels, classes = check_signature(path, sidecar, shape, out_shape)
    return Predictor(path, classes, size, channels, "litert", runner)
