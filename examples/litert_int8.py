"""Classify a face crop with an int8 ferlite model on LiteRT: numpy + ai-edge-litert + OpenCV, no TensorFlow.

Usage: python litert_int8.py ferplus-mfn-1.0-int8.tflite face.png   (the sidecar .json sits beside the .tflite)
"""
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

model_file, image_file = sys.argv[1], sys.argv[2]
classes = json.loads(Path(model_file).with_suffix(".json").read_text())["classes"]
interpreter = Interpreter(model_path=model_file, num_threads=2)
interpreter.allocate_tensors()
inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
size = int(inp["shape"][1])
face = cv2.resize(cv2.imread(image_file, cv2.IMREAD_GRAYSCALE), (size, size), interpolation=cv2.INTER_AREA)
interpreter.set_tensor(inp["index"], face[None, :, :, None])  # uint8 (1, 48, 48, 1), the face as it comes
interpreter.invoke()
scale, zero_point = out["quantization"]
probs = (interpreter.get_tensor(out["index"])[0].astype(np.float32) - zero_point) * scale
probs /= probs.sum()
for name, p in sorted(zip(classes, probs), key=lambda item: -item[1]):
    print(f"{name:10s} {p:.3f}")
