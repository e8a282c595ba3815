"""How the int8 LeakyReLU rounds on LiteRT's two kernel sets: every input code against the exact answer.

A one-layer Keras model (a LeakyReLU, negative slope 0.3, 64 features) is converted to int8 the way
:func:`ferlite.export.export_tflite` converts ferlite's models, in both LeakyReLU forms: the LEAKY_RELU op
(``op``) and ``maximum(x, 0.3 x)`` (``max``, MUL and MAXIMUM ops). It is calibrated on normal features whose
spread and offset (``--spreads``, ``--offsets``) set the input and output scales, as the batch normalisation
before each LeakyReLU of a real model does. Each file then runs every int8 input code (-128 to 127) on XNNPACK
(LiteRT's default, what :mod:`ferlite.litert` uses) and on TFLite's built-in kernels, and the output codes are
compared with the exact answer, ``round(leaky_relu(x) / output_scale) + output_zero_point`` for the dequantized
input ``x``. Printed per file and kernel set: the mean error in output steps over the negative and the positive
inputs (a bias: the same sign in every layer adds up through a network) and the share of codes that are off.

Usage::

    python benchmarks/leaky_relu_rounding.py [--spreads 1,3,10] [--offsets 0,1]
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


def errors(content: bytes, builtin: bool) -> tuple[float, float, float]:
    """Mean output error (steps) over negative and positive inputs, and the share of codes off, on one kernel set."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if builtin else OpResolverType.AUTO
    interp = Interpreter(model_content=content, experimental_op_resolver_type=resolver)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    codes = np.arange(-128, 128).reshape(4, 64).astype(np.int8)
    got = []
    for row in codes:
        interp.resize_tensor_input(inp["index"], [1, 64])
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], row[None])
        interp.invoke()
        got.append(interp.get_tensor(out["index"])[0])
    (s_in, z_in), (s_out, z_out) = inp["quantization"], out["quantization"]
    x = s_in * (codes.ravel().astype(np.int64) - z_in)
    exact = np.clip(np.round(np.where(x >= 0, x, SLOPE * x) / s_out) + z_out, -128, 127)
    diff = np.concatenate(got).astype(np.int64) - exact
    return float(diff[x < 0].mean()), float(diff[x >= 0].mean()), float((diff != 0).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spreads", default="1,3,10", help="standard deviations of the calibration features")
    parser.add_argument("--offsets", default="0,1", help="means of the calibration features, in standard deviations")
    args = parser.parse_args()

    import keras

    from ferlite.export import _float_input_twin

    inputs = keras.Input((64,), dtype="float32")
    model = keras.Model(inputs, keras.layers.LeakyReLU(negative_slope=SLOPE)(inputs))
    rng = np.random.default_rng(0)
    print("| calibration | form | kernels | mean error, x < 0 (steps) | mean error, x >= 0 | codes off |")
    print("| --- | --- | --- | --- | --- | --- |")
    for spread in map(float, args.spreads.split(",")):
        for offset in map(float, args.offsets.split(",")):
            feats = rng.normal(offset * spread, spread, (500, 64)).astype(np.float32)
            for form in ("op", "max"):
                content = convert(_float_input_twin(model, form), feats)
                for kernels, builtin in (("XNNPACK", False), ("built-in", True)):
                    neg, pos, off = errors(content, builtin)
                    print(f"| N({offset * spread:g}, {spread:g}) | {form} | {kernels} | {neg:+.3f} | {pos:+.3f} "
                          f"| {100 * off:.1f}% |")


if __name__ == "__main__":
    main()
