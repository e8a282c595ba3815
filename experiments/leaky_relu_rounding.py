"""How the int8 LeakyReLU rounds on LiteRT's two kernel sets: every input code against the exact answer.

A one-layer Keras model (a LeakyReLU, negative slope 0.3, 64 features) is converted to int8 the way
:func:`ferlite.training.export.export_tflite` converts ferlite's models, in both LeakyReLU forms: the LEAKY_RELU op
(``op``) and ``maximum(x, 0.3 x)`` (``max``, MUL and MAXIMUM ops), and the op form once more with its
output scale widened so that XNNPACK's two multipliers are whole numbers (``op, whole``: XNNPACK computes the op
with ``256 * input_scale / output_scale`` and 0.3 times that, rounded to integers; widening the scale to the
nearest value for which both are whole, a multiple of 10, leaves nothing to round but the result). It is
calibrated on normal features whose spread and offset (``--spreads``, ``--offsets``) set the input and
output scales, as the batch normalisation before each LeakyReLU of a real model does. Each file then runs every
int8 input code (-128 to 127) on XNNPACK (LiteRT's default, what :mod:`ferlite.litert` uses) and on TFLite's
built-in kernels, and the output codes are compared with the exact answer,
``round(leaky_relu(x) / output_scale) + output_zero_point`` for the dequantized input ``x``. Printed per file
and kernel set: the mean error in output steps over the negative and the positive inputs (a bias: the same sign
in every layer adds up through a network) and the share of codes that are off.

Usage::

    python experiments/leaky_relu_rounding.py [--spreads 1,3,10] [--offsets 0,1]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SLOPE = 0.3


def convert(model, faces: np.ndarray) -> bytes:
    """``model`` (float input) as a full-int8 TFLite model with int8 input and output."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([f[None]] for f in faces)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def whole_multipliers(content: bytes) -> bytes:
    """``content`` with each LEAKY_RELU's output scale widened so that XNNPACK's multipliers,
    ``256 * input_scale / output_scale`` and ``SLOPE`` times that, are whole numbers (the first is rounded down to a
    multiple of 10, so the scale grows by at most 10 / that multiplier: under 3% for the calibrations here)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    graph = model.subgraphs[0]
    for op in graph.operators:
        if codes[op.opcodeIndex] == schema.BuiltinOperator.LEAKY_RELU:
            s_in = float(graph.tensors[op.inputs[0]].quantization.scale[0])
            target = graph.tensors[op.outputs[0]].quantization
            whole = 10 * int(25.6 * s_in / float(target.scale[0]))  # 256 * ratio rounded down to a multiple of 10
            target.scale = np.array([256 * s_in / whole], np.float32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def errors(content: bytes, builtin: bool) -> tuple[float, float, float]:
    """Mean output error (steps) over negative and positive inputs, and the share of codes off, on one kernel set."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if builtin else OpResolverType.AUTO
    interp = Interpreter(model_content=content, experimental_op_resolver_type=resolver)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    codes = np.arange(-128, 128).reshape(4, 64).astype(np.int8)  # every int8 code, as a batch of 4 rows
    interp.resize_tensor_input(inp["index"], list(codes.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], codes)
    interp.invoke()
    (s_in, z_in), (s_out, z_out) = inp["quantization"], out["quantization"]
    x = s_in * (codes.ravel().astype(np.int64) - z_in)
    exact = np.clip(np.round(np.where(x >= 0, x, SLOPE * x) / s_out) + z_out, -128, 127)
    diff = interp.get_tensor(out["index"]).ravel().astype(np.int64) - exact
    return float(diff[x < 0].mean()), float(diff[x >= 0].mean()), float((diff != 0).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spreads", default="1,3,10", help="standard deviations of the calibration features")
    parser.add_argument("--offsets", default="0,1", help="means of the calibration features, in standard deviations")
    args = parser.parse_args()

    import keras

    from ferlite.training.export import _float_input_twin

    inputs = keras.Input((64,), dtype="float32")
    model = keras.Model(inputs, keras.layers.LeakyReLU(negative_slope=SLOPE)(inputs))
    rng = np.random.default_rng(0)
    print("| calibration | form | kernels | mean error, x < 0 (steps) | mean error, x >= 0 | codes off |")
    print("| --- | --- | --- | --- | --- | --- |")
    for spread in map(float, args.spreads.split(",")):
        for offset in map(float, args.offsets.split(",")):
            feats = rng.normal(offset * spread, spread, (500, 64)).astype(np.float32)
            op = convert(_float_input_twin(model, "op"), feats)
            files = {"op": op, "op, whole": whole_multipliers(op),
                     "max": convert(_float_input_twin(model, "max"), feats)}
            for form, content in files.items():
                for kernels, builtin in (("XNNPACK", False), ("built-in", True)):
                    neg, pos, off = errors(content, builtin)
                    print(f"| N({offset * spread:g}, {spread:g}) | {form} | {kernels} | {neg:+.3f} | {pos:+.3f} "
                          f"| {100 * off:.1f}% |")


if __name__ == "__main__":
    main()
