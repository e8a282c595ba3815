"""Distribution strategies for training: one device, several devices of one host, several hosts.

``ferlite-train --strategy`` picks one of :data:`STRATEGIES`:

* ``auto``: ``MirroredStrategy`` over the GPUs when more than one is visible, else the default strategy;
* ``default``: TensorFlow's default strategy (one device);
* ``mirrored``: ``MirroredStrategy`` over every visible GPU, or every logical CPU device when there is
  no GPU;
* ``multiworker``: ``MultiWorkerMirroredStrategy``, configured by the standard ``TF_CONFIG`` cluster
  spec, so any launcher that sets it (a Kubernetes TFJob, a batch scheduler, a loop over hosts) works.

``--batch-size`` is always the global batch, split over the replicas. :func:`scaled_lr` is the linear
scaling rule, applied only with ``--scale-lr``.
"""

from __future__ import annotations

import json
import os

__all__ = ["STRATEGIES", "BASE_BATCH", "make_strategy", "is_chief", "worker_id", "scaled_lr"]

STRATEGIES = ("auto", "default", "mirrored", "multiworker")
BASE_BATCH = 128  # the global batch the default learning rate was chosen for


def make_strategy(name: str = "auto"):
    """The ``tf.distribute.Strategy`` called ``name`` (one of :data:`STRATEGIES`).

    Raises:
        ValueError: an unknown name, or ``multiworker`` without a valid ``TF_CONFIG``.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    if name == "multiworker":  # before any other TensorFlow call: collective ops are configured at start-up
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if name == "auto":
        return tf.distribute.MirroredStrategy(gpus) if len(gpus) > 1 else tf.distribute.get_strategy()
    return tf.distribute.MirroredStrategy(gpus or [d.name for d in tf.config.list_logical_devices("CPU")])


def _check_tf_config() -> None:
    raw = os.environ.get("TF_CONFIG")
    expected = ('expected e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                '"task": {"type": "worker", "index": 0}}')
    if not raw:
        raise ValueError(f"--strategy multiworker needs the TF_CONFIG environment variable; {expected}")
    try:
        spec = json.loads(raw)
        ok = isinstance(spec["cluster"], dict) and {"type", "index"} <= set(spec["task"])
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ValueError(f"TF_CONFIG is not a valid cluster spec, got {raw!r}; {expected}")


def worker_id(strategy) -> tuple[str | None, int]:
    """``(task type, task index)`` of this process in a multi-worker cluster, ``(None, 0)`` otherwise."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy) -> bool:
    """Whether this process writes the run's files: the ``chief`` task, or worker 0 when there is no chief."""
    task_type, task_id = worker_id(strategy)
    if task_type is None or task_type == "chief":
        return True
    has_chief = "chief" in strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def scaled_lr(lr: float, global_batch: int, base_batch: int = BASE_BATCH) -> float:
    """The linear scaling rule (Goyal et al. 2017): ``lr * global_batch / base_batch``."""
    return lr * global_batch / base_batch
