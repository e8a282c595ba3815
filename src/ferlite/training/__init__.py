"""The training wing of ferlite (``pip install "ferlite[train]"``): TensorFlow / Keras 3 are imported only here.

From the ground up, each module importing only from the runtime (the top-level modules of ``ferlite``) and
from the layers below it:

1. :mod:`~ferlite.training.models` (the model registry: ``create_model``, ``list_models``, one file per
   architecture) and :mod:`~ferlite.training.metrics` (the Keras counterparts of :mod:`ferlite.metrics`);
2. :mod:`~ferlite.training.augment` (the augmentation presets) and :mod:`~ferlite.training.pipeline` (the
   ``tf.data`` soft-label pipeline);
3. :mod:`~ferlite.training.loop` (the training loop, checkpoints and resume), :mod:`~ferlite.training.distill`
   (distillation), :mod:`~ferlite.training.quantnoise` (int8-aware training) and
   :mod:`~ferlite.training.distribute` (``tf.distribute`` strategies);
4. :mod:`~ferlite.training.export` (TFLite export and int8 calibration).

Importing this package, :mod:`~ferlite.training.augment`, :mod:`~ferlite.training.loop` or
:mod:`~ferlite.training.distribute` imports no TensorFlow (the command line reads their option lists); the
other modules import Keras when they are imported, or TensorFlow when they run.
"""
