"""The data layer: datasets as float32 tensors in [0, 1], the space where smoothing noise is added.

Every loader returns images in raw pixel space scaled to [0, 1]; normalisation
happens inside the model (:class:`smoothcert.models.NormalizeLayer`) so that
sigma is always expressed in [0, 1] pixel units.

Datasets and the layouts found under ``root`` (the CLI's ``--data-root``):

* ``digits``: scikit-learn's 8x8 digits (no files; ``root`` ignored).
* ``mnist`` / ``fashion-mnist``: the four idx files, plain or ``.gz``, in ``root``
  or a known sub-folder (``mnist/``, ``MNIST/raw/``, ``FashionMNIST/raw/``, ...).
* ``mnist-7x7`` / ``fashion-mnist-7x7``: the same files, 4x4 average-pooled to 7x7 (d = 49).
* ``swiss-roll``: Levine et al.'s 2-D problem from scikit-learn (no files; points, not images).
* ``cifar10``: the python batches ``data_batch_1..5`` / ``test_batch`` (in ``root``
  or a ``cifar*`` sub-folder such as ``cifar-10-batches-py/``), else PNGs named
  ``cifar10_<index>_<label>.png`` (test split only, ordered by index).
* ``imagenet``: ``root/{train,val}/<wnid>/*.JPEG``; ``x`` is a :class:`LazyImages`.
* ``image-folder`` (the user's own images): ``root/<class>/<image>`` or
  ``root/{train,test}/<class>/<image>``, 8-bit grayscale or RGB, one size
  (:mod:`smoothcert.data.user_folder`).
* ``npz`` (the user's own arrays): ``root`` is a ``.npz`` with ``x`` and ``y``
  (:mod:`smoothcert.data.user_arrays`).

The last two are in :data:`USER_DATASETS`: their shape and classes come from the
files (``split.input_shape``, ``split.num_classes``, ``split.classes``).

Importing this package registers every loader.
"""
# Imported to register the loaders.
from . import cifar, digits, idx, imagenet, pooled, swiss_roll, user_arrays, user_folder  # noqa: F401
from .cifar import read_cifar_batch
from .idx import FASHION_MNIST_DEFAULT_ROOT, read_idx
from .images import LazyImages, imagenet_transform, resize_center_crop
from .registry import (_INFO, DATASET_STATS, DATASETS, SPLITS, USER_DATASETS, Split, dataset_stats, input_shape,
                       load_dataset, num_classes, register_dataset)

__all__ = ["Split", "DATASETS", "DATASET_STATS", "SPLITS", "USER_DATASETS", "register_dataset", "load_dataset",
           "input_shape", "num_classes", "dataset_stats", "read_idx", "read_cifar_batch", "LazyImages",
           "imagenet_transform", "resize_center_crop", "FASHION_MNIST_DEFAULT_ROOT", "_INFO"]
