"""Reference models of the course, one module per architecture family (torchvision style).

  lenet -- LeNet-1, LeNet-4, LeNet-5 (modern and 1998), boosted LeNet-4
  alexnet -- AlexNet (one stream, two streams, torchvision's), ZFNet, LRN from the paper
  vgg -- VGG configurations A, A-LRN, B, C, D, E; per-layer memory and parameter table
  googlenet -- NiN, naive and dimension-reduced inception modules, GoogLeNet with auxiliary heads
  resnet -- ResNet-18/34/50/101/152, pre-activation, Wide ResNet, ResNeXt, stochastic depth, CIFAR ResNets
  densenet -- DenseNet-121/169/201 and a small DenseNet-BC
  rnn -- RNN, LSTM and GRU cells and layers from their equations, weights from nn.RNN/LSTM/GRU, a character LM
  detection -- a YOLO-style grid detector and its loss; Faster R-CNN's RPN and RoI head in a small two-stage detector
  segmentation -- FCN-32s/16s/8s, SegNet, U-Net, FC-DenseNet (the tiramisu) and Mask R-CNN's mask head
  gan -- DCGAN's generator and discriminator for 28x28 images, pix2pix's 70x70 PatchGAN

`from dlcourse.models import vgg16` imports only the module that defines it (PEP 562): a
page about VGG does not pay for every model, and while an assignment is graded the module
that holds its answers is withheld (`dlcourse.answers`) without breaking the others.

Two modules share their name with a builder they define (`alexnet`, `googlenet`). The package
attribute is always the builder, whatever was imported before: `from dlcourse.models import
alexnet` gives the function even after `dlcourse.models.alexnet` (the module) was loaded. The
module is reached by its path: `from dlcourse.models.alexnet import cfgs` or
`importlib.import_module("dlcourse.models.alexnet")`; `import dlcourse.models.alexnet as m`
binds the builder (Python resolves that form by attribute), so do not write it
(tests/test_models_namespace.py checks the repository for it).
"""
from __future__ import annotations

import importlib
import sys
import types

# name -> module that defines it
_EXPORTS = {
    "lenet": ["BoostedLeNet4", "LeNet", "LeNet5_1998", "lenet1", "lenet4", "lenet5", "lenet5_1998"],
    "alexnet": ["AlexNet", "LocalResponseNorm", "alexnet", "alexnet_small", "alexnet_torchvision",
                "alexnet_two_stream", "zfnet"],
    "vgg": ["VGG", "vgg11", "vgg11_lrn", "vgg13", "vgg16", "vgg16_c", "vgg19", "vgg_small"],
    "googlenet": ["GoogLeNet", "Inception", "NaiveInception", "NiN", "NiNBlock", "googlenet", "googlenet_torchvision",
                  "inception_small", "nin", "nin_small"],
    "densenet": ["DenseNet", "densenet121", "densenet_small"],
    "resnet": ["ResNet", "cifar_resnet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"],
    "rnn": ["CharLM", "GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell", "char_lm", "from_torch",
            "load_torch_weights"],
    "detection": ["RPNHead", "RoIHead", "TwoStageDetector", "YOLOGrid"],
    "segmentation": ["FCDenseNet", "FCN", "MaskHead", "SegNet", "UNet", "fc_densenet", "fcn16s", "fcn32s", "fcn8s",
                     "segnet", "unet"],
    "gan": ["DCGANDiscriminator", "DCGANGenerator", "PatchGAN", "RingDiscriminator", "RingGenerator"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'dlcourse.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dlcourse.models.{module}"), name)


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Models(types.ModuleType):
    """The package, refusing to let a loaded submodule shadow a public name.

    After loading `dlcourse.models.alexnet` the import system sets the module as the
    package's attribute `alexnet`; once set, `__getattr__` (which finds the builder) is no
    longer consulted, and the name would mean the module or the function depending on
    what happened to be imported first. The binding is dropped here, so the name always
    resolves through `__getattr__`. Nothing is cached, so a module that `dlcourse.answers`
    withholds later cannot be reached through a stale attribute.
    """

    def __setattr__(self, name, value):
        if name in _WHERE and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Models
