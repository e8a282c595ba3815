"""Knowledge distillation: frozen teacher models whose predictions become part of the training targets.

``ferlite-train --teacher MODEL[,MODEL...]`` trains the student on the mixed target

    target = (1 - W) * votes + W * soften(mean over teachers of p_teacher(x), T)

where ``votes`` is the annotators' vote distribution (as ``--target-mode`` makes it), ``p_teacher(x)`` a teacher's
softmax output on the very images the student sees in that step (augmented: the teachers run inside the
``tf.data`` pipeline, after augmentation, once per batch), with ``--teacher-flip`` averaged with its output on the
mirrored images, ``W`` is ``--distill-weight`` and :func:`soften` applies the temperature ``T``. The student's loss
is unchanged (cross-entropy on the target, by default).

Teachers are loaded once, frozen, and never become part of the student: its checkpoints and ``model.keras`` hold
the student alone; its sidecar records the teachers by name and sha256.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Teachers", "load_teachers", "soften", "mix_targets"]


def soften(probs, temperature: float):
    """A distribution at temperature ``T``: ``p ** (1/T)`` renormalised (graph op), which is ``softmax(log p / T)``:
    ``T > 1`` flattens it, ``T < 1`` sharpens it, ``T == 1`` returns ``probs`` unchanged. Each row is divided by its
    largest value first, so a small ``T`` cannot underflow a whole row; a zero stays zero."""
    if temperature == 1.0:
        return probs
    import tensorflow as tf

    q = tf.pow(probs / tf.reduce_max(probs, axis=-1, keepdims=True), 1.0 / temperature)
    return q / tf.reduce_sum(q, axis=-1, keepdims=True)


def mix_targets(votes, teacher, weight: float):
    """``(1 - weight) * votes + weight * teacher`` in float32, for NumPy arrays or TensorFlow tensors alike (the
    cached and the on-graph paths share this arithmetic)."""
    w = np.float32(weight)
    return (np.float32(1.0) - w) * votes + w * teacher


@dataclass
class Teachers:
    """Loaded, frozen teacher models and how their predictions become targets.

    Attributes:
        models: the Keras models (``trainable=False``, called with ``training=False``).
        names: each teacher as it was given (a registered name or a path).
        files: the files they were loaded from.
        sha256: the files' digests.
        classes: the classes every teacher predicts, in output order.
        input_size: their input side.
        channels: their input channels.
        weight: ``W`` of the mixed target (0 < W <= 1).
        temperature: ``T`` of :func:`soften` (> 0).
        flip: average each teacher with its prediction on the mirrored images.
    """

    models: list
    names: list[str]
    files: list[Path]
    sha256: list[str]
    classes: tuple[str, ...]
    input_size: int
    channels: int
    weight: float = 0.5
    temperature: float = 1.0
    flip: bool = False

    def distribution(self, images):
        """The teachers' distribution for a uint8 batch ``(B, S, S, C)`` (graph op): each teacher's softmax output,
        flip-averaged with ``flip``, averaged over the teachers, then softened by the temperature."""
        import tensorflow as tf

        x = tf.convert_to_tensor(images)
        if self.flip:  # one call on the batch and its mirror image
            x = tf.concat([x, tf.reverse(x, axis=[2])], axis=0)
        outputs = [tf.cast(m(x, training=False), tf.float32) for m in self.models]
        p = outputs[0] if len(outputs) == 1 else tf.add_n(outputs) / float(len(outputs))
        if self.flip:
            plain, mirrored = tf.split(p, 2, axis=0)
            p = (plain + mirrored) / 2.0
        return soften(p, self.temperature)

    def relabel(self, images, votes):
        """The mixed target of a batch (graph op): :func:`mix_targets` of ``votes`` and :meth:`distribution`."""
        return mix_targets(votes, self.distribution(images), self.weight)

    def predict_arrays(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """:meth:`distribution` of uint8 faces (converted to the teachers' input as training converts them), in
        input order, as a NumPy array: the teachers' targets of un-augmented data, computed once."""
        import tensorflow as tf

        from ferlite.training.pipeline import make_dataset

        ds = make_dataset(images, np.zeros((len(images), 1), np.float32), batch_size=batch_size,
                          input_size=self.input_size, channels=self.channels)
        ds = ds.map(lambda x, _: self.distribution(x), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return np.concatenate([p.numpy() for p in ds]) if len(images) else np.zeros((0, len(self.classes)),
                                                                                        np.float32)

    def check_classes(self, classes: Sequence[str]) -> None:
        """Raise ValueError, naming both, unless the teachers predict exactly ``classes`` (the student's), in order."""
        if tuple(classes) != self.classes:
            raise ValueError(f"--teacher {', '.join(self.names)} predicts {len(self.classes)} classes "
                             f"({', '.join(self.classes)}), the student {len(classes)} ({', '.join(classes)}): a "
                             "teacher must predict the student's classes in the same order (choose --num-classes / "
                             "--target-mode or a teacher to match)")

    def record(self) -> dict:
        """What the run was distilled from, for the sidecar and ``state.json``."""
        return {"teachers": [{"model": n, "file": str(f), "sha256": d}
                             for n, f, d in zip(self.names, self.files, self.sha256, strict=True)],
                "distill_weight": self.weight, "temperature": self.temperature, "teacher_flip": self.flip,
                "target": "(1 - distill_weight) * votes + distill_weight * teachers' distribution at temperature "
                          "(computed on each augmented batch)"}


def _load_one(name: str) -> tuple:
    """One teacher: ``(model, file, (input_size, channels, classes))``, checked against its sidecar."""
    from ferlite.sidecar import check_signature, model_info
    from ferlite.training.quantnoise import load_checkpoint
    from ferlite.weights import resolve_model

    try:
        path = resolve_model(name)
        model = load_checkpoint(path)
        signature = check_signature(path, model_info(path), model.input_shape, model.output_shape)
    except (FileNotFoundError, ValueError) as exc:  # say which option named it
        raise type(exc)(f"--teacher {name}: {exc}") from exc
    model.trainable = False
    return model, path, signature


def load_teachers(names: Sequence[str | os.PathLike], *, input_size: int, channels: int, weight: float = 0.5,
                  temperature: float = 1.0, flip: bool = False) -> Teachers:
    """Load and freeze teacher models (registered names or ``.keras`` files) for a student taking
    ``input_size x input_size x channels`` images.

    Raises:
        FileNotFoundError: a teacher is neither a file nor a registered name.
        ValueError: a teacher that is not a loadable ``.keras`` classifier, whose input is not the student's (the
            message names both), or teachers that disagree on their classes; bad ``weight`` or ``temperature``.
    """
    from ferlite.weights import file_sha256

    if not names:
        raise ValueError("no teacher given")
    if not 0 < weight <= 1:
        raise ValueError(f"distill_weight must be in (0, 1], got {weight}")
    if not 0 < temperature < float("inf"):
        raise ValueError(f"temperature must be > 0, got {temperature}")
    models, files, classes = [], [], None
    for name in names:
        model, path, (size, chans, its_classes) = _load_one(str(name))
        if (size, chans) != (input_size, channels):
            raise ValueError(f"--teacher {name} takes {size}x{size}x{chans} images, the student's data is "
                             f"{input_size}x{input_size}x{channels} (--img-size {input_size}, --channels {channels}): "
                             "a teacher must take the student's input")
        if classes is not None and its_classes != classes:
            raise ValueError(f"--teacher {name} predicts {', '.join(its_classes)}, --teacher {names[0]} "
                             f"{', '.join(classes)}: an ensemble's teachers must predict the same classes in the "
                             "same order")
        models.append(model)
        files.append(path)
        classes = its_classes
    return Teachers(models, [str(n) for n in names], files, [file_sha256(f) for f in files], tuple(classes),
                    input_size, channels, float(weight), float(temperature), bool(flip))
