"""The model layer: the in-model normalisation layer, the architecture zoo and checkpoints.

* :mod:`.layers` -- :class:`NormalizeLayer` (noise is added before it, in [0, 1] pixels);
* :mod:`.small` -- :class:`TinyMLP` (8x8 digits), :class:`LeNet` (28x28) and :class:`SmallConvNet` (7x7);
* :mod:`.resnets` -- CIFAR ResNet-20/56/110, ResNet-18, WRN-40-2, ImageNet ResNet-50;
* :mod:`.zoo` -- the architecture registry and :func:`build_model`;
* :mod:`.checkpoint` -- certifiable checkpoints with their metadata;
* :mod:`.user_model` -- the classifier of ``smoothcert certify`` (checkpoint, zoo state_dict,
  ``--model-factory`` or a ``torch.export`` program, :mod:`.exported`) and ``--normalize``.
"""
from . import resnets
from .checkpoint import CHECKPOINT_FORMAT, checkpoint_info, load_checkpoint, save_checkpoint
from .exported import ExportedModel, load_exported
from .layers import NormalizeLayer
from .resnets import CifarResNet, ResNet18, ResNet50, WideResNet
from .small import LeNet, SmallConvNet, TinyMLP
from .user_model import LoadedModel, load_cli_model, parse_normalize
from .zoo import ARCHITECTURES, build_model, count_parameters, register_architecture

__all__ = [
    "NormalizeLayer", "TinyMLP", "LeNet", "SmallConvNet", "CifarResNet", "ResNet18", "WideResNet",
    "ResNet50", "ARCHITECTURES", "register_architecture", "build_model",
    "count_parameters", "save_checkpoint", "load_checkpoint", "checkpoint_info",
    "CHECKPOINT_FORMAT", "ExportedModel", "load_exported", "LoadedModel", "load_cli_model", "parse_normalize",
]
