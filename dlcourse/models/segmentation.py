"""Semantic segmentation networks (chapter 12) built from the same few blocks: FCN, SegNet, U-Net
and a fully convolutional DenseNet; and Mask R-CNN's mask branch, which sits beside the box
head of chapter 11's two-stage detector.

All four networks map an image (N, C_in, H, W) to class scores (N, K, H, W): an encoder halves
the resolution D times (2 x 2 max pooling), a decoder brings it back. They differ in how the
decoder recovers what pooling threw away:

- FCN (Long, Shelhamer, Darrell 2015): class scores at the coarsest map, upsampled by learned
  transposed convolutions initialised to bilinear interpolation, and summed with class scores
  read from finer pooling outputs ("skips"): FCN-32s none, FCN-16s pool4's, FCN-8s pool4's and
  pool3's, so the last upsampling is by 32, 16 or 8.
- SegNet (Badrinarayanan, Kendall, Cipolla 2017): the decoder mirrors the encoder; each
  max-unpooling puts the values back where the encoder's pooling found its maxima (the
  pooling indices, a few bits per pixel instead of the whole feature map); nothing in the
  upsampling is learned, the decoder's convolutions densify the sparse maps.
- U-Net (Ronneberger, Fischer, Brox 2015): each decoder level upsamples by a 2 x 2 transposed
  convolution that halves the channels and concatenates the encoder's map of the same
  resolution (the skip), so the decoder's convolutions see fine detail and context together.
- FC-DenseNet (Jegou et al. 2017, "The one hundred layers tiramisu"): chapter 9's dense blocks
  (`dlcourse.models.densenet.DenseBlock`) on both paths; going up, only the new maps of a block
  are upsampled (its input is already in the skip), which keeps the width from exploding.

Sizes that are not multiples of the total stride 2^D: each model says what its paper does and
what it does here. In short, FCN, U-Net and FC-DenseNet pad the input at the bottom and right
to the next multiple and crop the scores back; SegNet unpools to the sizes it recorded before
each pooling and needs no padding, but at least 2^D pixels a side (its deepest map must keep one).

Convolutions here are "same" 3 x 3 convolutions followed by batch norm (which none of FCN,
U-Net or the original SegNet paper's first version had; SegNet's released model has it): they
keep every map aligned with the input and make the small versions train in seconds.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dlcourse.boxes import roi_align
from dlcourse.models.densenet import DenseBlock
from dlcourse.upsample import bilinear_kernel

__all__ = ["ConvBlock", "FCN", "SegNet", "UNet", "FCDenseNet", "MaskHead", "cfgs", "dense_cfgs", "fcn32s", "fcn16s",
           "fcn8s", "segnet", "unet", "fc_densenet", "mask_targets", "mask_loss", "paste_masks"]


# Encoder stages as (width, 3 x 3 convolutions), each followed by 2 x 2 max pooling (for U-Net the
# last entry is the bottom of the "U", with no pooling after it).
cfgs: dict[str, tuple[tuple[int, int], ...]] = {
    # VGG16's 13 convolutions in 5 stages: FCN-VGG16's and SegNet's encoder
    "vgg16": ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)),
    # Ronneberger et al., Figure 1: 4 levels of two convolutions, the bottom at 1024 channels
    "unet": ((64, 2), (128, 2), (256, 2), (512, 2), (1024, 2)),
    # for the 64 x 64 shapes scenes: VGG's five stages at a quarter of the width, one conv each
    "small": ((16, 1), (32, 1), (64, 1), (64, 1), (64, 1)),
    # a U-Net for the shapes scenes: 3 levels (stride 8) and the bottom
    "unet_small": ((8, 2), (16, 2), (32, 2), (64, 2)),
}


class ConvBlock(nn.Sequential):
    """`convs` times (3 x 3 conv, padding 1 - batch norm - ReLU): (N, C_in, H, W) -> (N, C_out, H, W).

    The convolutions keep their bias, as VGG16's (so that an encoder's convolutions hold exactly
    VGG16's 14,714,688 parameters, the "14.7M" of SegNet's encoder), although batch norm makes it redundant."""

    def __init__(self, in_channels: int, out_channels: int, convs: int = 2):
        layers = []
        for i in range(convs):
            layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1),
                       nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
        super().__init__(*layers)


def _encoder(in_channels: int, stages) -> nn.ModuleList:
    blocks, c = [], in_channels
    for width, convs in stages:
        blocks.append(ConvBlock(c, width, convs))
        c = width
    return nn.ModuleList(blocks)


def _pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "constant") -> torch.Tensor:
    """x padded at the bottom and right so that H and W are multiples of `multiple`."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "replicate"                 # a mirror needs more pixels than it adds; tiny inputs repeat the edge
    return F.pad(x, (0, pw, 0, ph), mode=mode)


# ---------------------------------------------------------------- FCN
class FCN(nn.Module):
    """FCN-(2^(D - skips))s: (N, C_in, H, W) -> (N, K, H, W) class scores.

    Encoder: the D stages of `stages`, each followed by 2 x 2 max pooling (pool1 ... poolD).
    Head: VGG's fully connected layers fc6 and fc7 as convolutions; here a 3 x 3 then a 1 x 1
    convolution of `head_width` channels (the paper's fc6 is 7 x 7 x 4096, VGG's fc6 reshaped,
    and both have dropout; omitted). Scores: a 1 x 1 convolution to K classes at poolD, and at
    each of the `skips` finer pooling outputs (pool(D-1), pool(D-2)); each is added to the
    coarser scores upsampled 2x by a transposed convolution (kernel 4, stride 2, padding 1)
    initialised to bilinear interpolation and learned; the sum is upsampled by f = 2^(D - skips)
    to the input by a transposed convolution (kernel 2f, stride f, padding f / 2) fixed to
    bilinear interpolation (as the paper fixes its last one). The skip score layers start at
    zero, so training starts from the coarser net's output (the paper's initialisation).

    Sizes: the paper pads its input by 100 pixels (in conv1_1) so that any image survives the
    32x reduction, and crops each upsampled map to the skip it is added to and the final scores
    to the input ("crop" layers with computed offsets). Here the convolutions keep the size, so
    the input is padded with zeros at the bottom and right to a multiple of 2^D: every pooled map
    is then exactly half of the previous, the upsampled scores fit their skips with no offset,
    and the scores are cropped back to H x W.
    """

    def __init__(self, stages=cfgs["vgg16"], num_classes: int = 21, skips: int = 2, head_width: int | None = None,
                 in_channels: int = 3):
        super().__init__()
        if not 0 <= skips < len(stages):
            raise ValueError(f"skips must be in [0, {len(stages)}), got {skips}")
        self.depth, self.skips = len(stages), skips
        widths = [w for w, _ in stages]
        head_width = head_width or 2 * widths[-1]
        self.encoder = _encoder(in_channels, stages)
        self.head = nn.Sequential(nn.Conv2d(widths[-1], head_width, 3, padding=1), nn.ReLU(inplace=True),     # "fc6"
                                  nn.Conv2d(head_width, head_width, 1), nn.ReLU(inplace=True))               # "fc7"
        self.score = nn.Conv2d(head_width, num_classes, 1)
        # pool(D-1), pool(D-2), ...: the finer pooling outputs, deepest first
        self.score_skips = nn.ModuleList(nn.Conv2d(widths[-2 - i], num_classes, 1) for i in range(skips))
        self.up2 = nn.ModuleList(nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
                                 for _ in range(skips))
        f = 2 ** (self.depth - skips)
        self.up_final = nn.ConvTranspose2d(num_classes, num_classes, 2 * f, stride=f, padding=f // 2, bias=False)
        with torch.no_grad():
            for up in self.up2:
                up.weight.copy_(bilinear_kernel(num_classes, 2))
            self.up_final.weight.copy_(bilinear_kernel(num_classes, f))
            for s in self.score_skips:
                s.weight.zero_()
                s.bias.zero_()
        self.up_final.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = _pad_to_multiple(x, 2 ** self.depth)
        pooled = []
        for block in self.encoder:
            x = F.max_pool2d(block(x), 2)
            pooled.append(x)                                   # pool1 ... poolD: strides 2 ... 2^D
        scores = self.score(self.head(x))                      # (N, K, H / 2^D, W / 2^D)
        for i in range(self.skips):
            scores = self.up2[i](scores) + self.score_skips[i](pooled[-2 - i])   # fuse at stride 2^(D - 1 - i)
        return self.up_final(scores)[..., :h, :w]              # (N, K, H, W): the padding cropped


def fcn32s(num_classes: int = 21, cfg: str = "vgg16", **kwargs) -> FCN:
    """FCN-32s: scores at pool5 only, upsampled 32x (on cfg "vgg16")."""
    return FCN(cfgs[cfg], num_classes, skips=0, **kwargs)


def fcn16s(num_classes: int = 21, cfg: str = "vgg16", **kwargs) -> FCN:
    """FCN-16s: pool5's scores upsampled 2x plus pool4's, upsampled 16x."""
    return FCN(cfgs[cfg], num_classes, skips=1, **kwargs)


def fcn8s(num_classes: int = 21, cfg: str = "vgg16", **kwargs) -> FCN:
    """FCN-8s: pool5's, pool4's and pool3's scores fused, upsampled 8x."""
    return FCN(cfgs[cfg], num_classes, skips=2, **kwargs)


# ---------------------------------------------------------------- SegNet
class SegNet(nn.Module):
    """Encoder-decoder with pooling indices: (N, C_in, H, W) -> (N, K, H, W).

    Encoder: the D stages of `stages`, each followed by 2 x 2 max pooling that records where
    each maximum was. Decoder, deepest first: max-unpool with that stage's indices to the size
    the stage had before pooling, then a ConvBlock with as many convolutions as the encoder
    stage, ending at the width of the stage above (the paper's decoder keeps the width until the
    stage's last convolution; here the first one changes it, the encoder's block read backwards).
    A 1 x 1 convolution gives the K class scores (the paper's "trainable soft-max classifier").

    Sizes: the paper's Caffe model unpools to a size given to each upsampling layer (the
    encoder's size before pooling); so does this one (`output_size=`), for any H, W >= 2^D. A
    row or column that floor pooling dropped comes back as zeros for the decoder to fill.
    """

    def __init__(self, stages=cfgs["vgg16"], num_classes: int = 12, in_channels: int = 3):
        super().__init__()
        widths = [w for w, _ in stages]
        self.encoder = _encoder(in_channels, stages)
        # decoder[i] undoes encoder stage D-1-i: width w_(D-1-i) -> w_(D-2-i) (the first stage keeps its width)
        self.decoder = nn.ModuleList(
            ConvBlock(widths[i], widths[max(i - 1, 0)], convs) for i, (_, convs) in reversed(list(enumerate(stages))))
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        record = []
        for block in self.encoder:
            x = block(x)
            size = x.shape[-2:]
            x, idx = F.max_pool2d(x, 2, return_indices=True)          # idx: flat positions in the (size) map
            record.append((idx, size))
        for block, (idx, size) in zip(self.decoder, reversed(record)):
            x = block(F.max_unpool2d(x, idx, 2, output_size=size))   # sparse: one value per 2 x 2 window
        return self.classifier(x)


def segnet(num_classes: int = 12, cfg: str = "vgg16", **kwargs) -> SegNet:
    """SegNet with a VGG16 encoder (cfg "vgg16"); 12 classes as the paper's CamVid (11 and void)."""
    return SegNet(cfgs[cfg], num_classes, **kwargs)


# ---------------------------------------------------------------- U-Net
class UNet(nn.Module):
    """U-Net: (N, C_in, H, W) -> (N, K, H, W), skip connections by concatenation.

    Contracting path: stages[:-1], each a ConvBlock followed by 2 x 2 max pooling, keeping its
    output as the skip; bottom: stages[-1]. Expanding path, per level from the deepest: a 2 x 2
    transposed convolution with stride 2 ("up-conv") to the skip's width (half the channels),
    concatenation [skip, upsampled] (twice the skip's width), a ConvBlock back to the skip's
    width. A 1 x 1 convolution gives the K scores.

    Sizes: the paper uses unpadded ("valid") 3 x 3 convolutions, so each map loses 2 pixels per
    convolution; the skip is cropped to the centre of the smaller upsampled map, the output
    (388 x 388 for a 572 x 572 input) is smaller than the input, large images are segmented in
    overlapping tiles, and the missing context at the image border is "extrapolated by
    mirroring the input image". Here the convolutions are padded, so nothing needs cropping
    when H and W are multiples of 2^D; other sizes are padded by mirroring (as the paper fills
    the border) at the bottom and right to the next multiple, and the scores cropped back.
    """

    def __init__(self, stages=cfgs["unet"], num_classes: int = 2, in_channels: int = 1):
        super().__init__()
        widths = [w for w, _ in stages]
        self.depth = len(stages) - 1
        self.down = _encoder(in_channels, stages[:-1])
        self.bottom = ConvBlock(widths[-2], widths[-1], stages[-1][1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                for i in reversed(range(self.depth)))
        self.decode = nn.ModuleList(ConvBlock(2 * widths[i], widths[i], stages[i][1]) for i in reversed(range(self.depth)))
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = _pad_to_multiple(x, 2 ** self.depth, mode="reflect")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)                                            # (N, w_i, H / 2^i, W / 2^i)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, block, skip in zip(self.up, self.decode, reversed(skips)):
            x = block(torch.cat([skip, up(x)], dim=1))                 # concatenate, never add
        return self.classifier(x)[..., :h, :w]


def unet(num_classes: int = 2, cfg: str = "unet", in_channels: int = 1, **kwargs) -> UNet:
    """U-Net (cfg "unet": 64 ... 1024 channels; one input channel and two classes as the paper's cell images)."""
    return UNet(cfgs[cfg], num_classes, in_channels, **kwargs)


# ---------------------------------------------------------------- fully convolutional DenseNet
class TransitionDown(nn.Sequential):
    """BN-ReLU-1 x 1 conv (same width)-2 x 2 max pooling (the paper has dropout 0.2 after the
    conv; omitted). Chapter 9's Transition compresses and average-pools; the tiramisu does neither."""

    def __init__(self, channels: int):
        super().__init__(nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 1, bias=False),
                         nn.MaxPool2d(2))


# name -> (growth rate k, dense layers per block on the way down, at the bottleneck), Jegou et al. Table 2
# (the way up mirrors the way down); the stem is a 3 x 3 conv to 48 maps
dense_cfgs: dict[str, tuple[int, tuple[int, ...], int]] = {
    "fc_densenet56": (12, (4, 4, 4, 4, 4), 4),
    "fc_densenet67": (16, (5, 5, 5, 5, 5), 5),
    "fc_densenet103": (16, (4, 5, 7, 10, 12), 15),
    "small": (6, (2, 2, 2), 2),
}


class FCDenseNet(nn.Module):
    """The tiramisu: (N, C_in, H, W) -> (N, K, H, W).

    Stem 3 x 3 conv; down: per block, a DenseBlock (its output, input included, is the skip)
    and a TransitionDown; bottleneck DenseBlock; up: per level, a 3 x 3 transposed convolution
    with stride 2 of only the previous block's new k L maps, concatenation with the skip, a
    DenseBlock; the last block's whole output goes to a 1 x 1 classifier.

    The dense layers are chapter 9's (`DenseBlock` of `DenseLayer`): DenseNet-B's
    BN-ReLU-1 x 1 conv (4k)-BN-ReLU-3 x 3 conv (k), where the tiramisu's layer is BN-ReLU-3 x 3
    conv (k)-dropout; the bottleneck makes the parameter counts differ from the paper's.

    Sizes: the paper's code crops the upsampled map to the skip's size (centre crop) before
    concatenating; here the input is padded with zeros at the bottom and right to a multiple of
    2^D and the scores cropped back, so the maps always fit.
    """

    def __init__(self, growth_rate: int = 16, down_blocks=(4, 5, 7, 10, 12), bottleneck: int = 15,
                 num_classes: int = 12, stem: int = 48, in_channels: int = 3):
        super().__init__()
        k = growth_rate
        self.depth = len(down_blocks)
        self.stem = nn.Conv2d(in_channels, stem, 3, padding=1)
        self.down, self.transitions, skip_channels, c = nn.ModuleList(), nn.ModuleList(), [], stem
        for layers in down_blocks:
            block = DenseBlock(layers, c, k)
            self.down.append(block)
            c = block.out_channels                                       # c + L k: the skip's width
            skip_channels.append(c)
            self.transitions.append(TransitionDown(c))
        self.bottleneck = DenseBlock(bottleneck, c, k)
        self.up, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        new = bottleneck * k                                             # only the new maps go up
        for layers, skip in zip(reversed(down_blocks), reversed(skip_channels)):
            self.up.append(nn.ConvTranspose2d(new, new, 3, stride=2, padding=1, output_padding=1))   # exactly 2x
            self.up_blocks.append(DenseBlock(layers, new + skip, k))
            new = layers * k
        self.out_channels = self.up_blocks[-1].out_channels
        self.classifier = nn.Conv2d(self.out_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = self.stem(_pad_to_multiple(x, 2 ** self.depth))
        skips = []
        for block, down in zip(self.down, self.transitions):
            x = block(x)
            skips.append(x)
            x = down(x)
        block = self.bottleneck
        x = block(x)
        for up, next_block, skip in zip(self.up, self.up_blocks, reversed(skips)):
            new = x[:, block.in_channels:]                               # the block's own k L maps, not its input
            x = next_block(torch.cat([up(new), skip], dim=1))
            block = next_block
        return self.classifier(x)[..., :h, :w]


def fc_densenet(name: str = "fc_densenet103", num_classes: int = 12, **kwargs) -> FCDenseNet:
    """A tiramisu from `dense_cfgs` (FC-DenseNet56, 67, 103 of Jegou et al., or "small")."""
    k, down, bottleneck = dense_cfgs[name]
    kwargs.setdefault("stem", 48 if name != "small" else 12)
    return FCDenseNet(k, down, bottleneck, num_classes, **kwargs)


# ---------------------------------------------------------------- Mask R-CNN's mask branch
# Mask R-CNN (He, Gkioxari, Dollar, Girshick 2017) adds a third output to Faster R-CNN's second
# stage: beside the class and the box of each region (dlcourse.models.detection.RoIHead), a
# small fully convolutional network on the region's RoI-aligned features predicts an m x m mask
# for each of the K classes. The class head decides the class; the mask of that class is read,
# so the masks do not compete (a sigmoid per pixel and class, not a softmax over classes). Its
# loss is the mean binary cross-entropy of the ground-truth class's mask only, on positive
# regions only; the target is the region's object mask cropped to the region and resized to m x m.
# RoI align (not RoI pooling) is what makes the masks line up with the pixels.


class MaskHead(nn.Module):
    """RoI align to pool x pool cells of the shared features, `convs` 3 x 3 convolutions of `width`
    channels with ReLU, a 2 x 2 transposed convolution with stride 2 and ReLU, and a 1 x 1
    convolution to K mask logits: (R, K, 2 pool, 2 pool). The paper's head (ResNet-FPN version):
    pool 14, four 256-channel convolutions, 28 x 28 masks. Mask of class c (labels 1..K) is
    channel c - 1: the background has none."""

    def __init__(self, in_channels: int, num_classes: int, pool: int = 14, width: int = 256, convs: int = 4,
                 spatial_scale: float = 1 / 8):
        super().__init__()
        self.pool, self.spatial_scale, self.num_classes = pool, spatial_scale, num_classes
        layers, c = [], in_channels
        for _ in range(convs):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True)]
            c = width
        layers += [nn.ConvTranspose2d(width, width, 2, stride=2), nn.ReLU(inplace=True), nn.Conv2d(width, num_classes, 1)]
        self.net = nn.Sequential(*layers)

    @property
    def mask_size(self) -> int:
        return 2 * self.pool

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """rois (R, 5): (batch index, x0, y0, x1, y1) in pixels, as RoIHead's -> mask logits (R, K, m, m)."""
        return self.net(roi_align(features, rois, (self.pool, self.pool), self.spatial_scale, sampling_ratio=2))


def mask_targets(boxes: torch.Tensor, masks: torch.Tensor, size: int) -> torch.Tensor:
    """(R, size, size) bool targets: each region's object mask (R, H, W) cropped to the region's
    box (R, 4), resized by RoI align (bilinear, pixel centres aligned) and thresholded at 1/2."""
    if len(boxes) == 0:
        return torch.zeros(0, size, size, dtype=torch.bool)
    rois = torch.cat([torch.arange(len(boxes), dtype=torch.float32)[:, None], boxes.float()], dim=1)
    return roi_align(masks[:, None].float(), rois, (size, size), 1.0, sampling_ratio=2)[:, 0] >= 0.5


def mask_loss(mask_logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel binary cross-entropy of each positive region's ground-truth-class mask.

    mask_logits (R, K, m, m); labels (R,) in 0..K (0: background, no mask loss); targets
    (R, m, m) from `mask_targets`. The other K - 1 masks of a region get no gradient. Zero (with
    a graph) when no region is positive."""
    fg = labels > 0
    if not fg.any():
        return mask_logits.sum() * 0.0
    chosen = mask_logits[fg, labels[fg] - 1]                                    # (P, m, m)
    return F.binary_cross_entropy_with_logits(chosen, targets[fg].to(chosen.dtype))


def paste_masks(mask_probs: torch.Tensor, boxes: torch.Tensor, image_size: tuple[int, int],
                threshold: float = 0.5) -> torch.Tensor:
    """Inference's last step: each (m, m) mask probability resized bilinearly onto the pixels of
    its box (R, 4), rounded out to whole pixels, and thresholded: (R, H, W) bool image masks."""
    height, width = image_size
    out = torch.zeros(len(boxes), height, width, dtype=torch.bool, device=mask_probs.device)
    for r, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        x0, y0 = max(math.floor(x0), 0), max(math.floor(y0), 0)
        x1, y1 = min(math.ceil(x1), width), min(math.ceil(y1), height)
        if x1 > x0 and y1 > y0:
            resized = F.interpolate(mask_probs[r][None, None], (y1 - y0, x1 - x0), mode="bilinear", align_corners=False)
            out[r, y0:y1, x0:x1] = resized[0, 0] >= threshold
    return out
