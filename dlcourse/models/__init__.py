"""Reference models of the course, one module per architecture family (torchvision style).

  lenet -- LeNet-1, LeNet-4, LeNet-5 (modern and 1998), boosted LeNet-4
"""
from dlcourse.models.lenet import (BoostedLeNet4, LeNet, LeNet5_1998, lenet1, lenet4, lenet5,
                                   lenet5_1998)

__all__ = ["BoostedLeNet4", "LeNet", "LeNet5_1998", "lenet1", "lenet4", "lenet5", "lenet5_1998"]
