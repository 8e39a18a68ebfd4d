"""dlcourse.models.segmentation: output shapes of FCN, SegNet, U-Net and FC-DenseNet for several
input and batch sizes (sizes that are not multiples of the total stride included), the size
policy each states, what makes each network what it is (FCN's bilinear upsampling and zero
skips at start, SegNet's sparse unpooled maps, U-Net's concatenated skips, the tiramisu's
widths), the paper-sized networks on the meta device, a few training steps on the shapes
scenes; and Mask R-CNN's mask branch: shapes beside RoIHead, targets, the per-RoI loss against
a loop, and masks pasted back."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcourse.datasets.shapes import shapes_segmentation
from dlcourse.models import detection as D
from dlcourse.models import segmentation as S
from dlcourse.models.densenet import DenseBlock
from dlcourse.upsample import bilinear_upsample

SMALL = {
    "fcn8s": lambda k: S.fcn8s(k, cfg="small"),
    "fcn16s": lambda k: S.fcn16s(k, cfg="small"),
    "fcn32s": lambda k: S.fcn32s(k, cfg="small"),
    "segnet": lambda k: S.segnet(k, cfg="small"),
    "unet": lambda k: S.unet(k, cfg="unet_small", in_channels=3),
    "fc_densenet": lambda k: S.fc_densenet("small", k),
}
# 64: the scenes; 48: a multiple of 16 but not of 32; 37 x 50 and 33 x 71: of nothing (>= 32 for SegNet's 5 poolings)
SIZES = [(2, 64, 64), (1, 48, 48), (1, 37, 50), (1, 33, 71)]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_scores_have_the_input_size_for_every_size(name):
    torch.manual_seed(0)
    model = SMALL[name](4).eval()
    with torch.no_grad():
        for n, h, w in SIZES:
            out = model(torch.rand(n, 3, h, w))
            assert out.shape == (n, 4, h, w), (name, (n, h, w), out.shape)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("build,channels,classes", [(S.fcn8s, 3, 21), (S.fcn32s, 3, 21), (S.segnet, 3, 12),
                                                    (S.unet, 1, 2), (S.fc_densenet, 3, 12)])
def test_paper_sized_networks_on_the_meta_device(build, channels, classes):
    with torch.device("meta"):                                          # shapes only: no memory, no arithmetic
        model = build()
        assert model(torch.empty(2, channels, 100, 132)).shape == (2, classes, 100, 132)     # 100 = 3 * 32 + 4


def test_segnet_encoder_is_vgg16s_convolutions_14_7m():
    # SegNet's paper: removing VGG16's fully connected layers takes the encoder from 134M to 14.7M
    # parameters; the chapter's VGG16 (dlcourse.models.vgg) has the same convolutions
    from dlcourse.models import vgg16

    with torch.device("meta"):
        encoder = S.segnet().encoder
        vgg_features = vgg16().features
    count = lambda mods: sum(p.numel() for m in mods if isinstance(m, nn.Conv2d) for p in m.parameters())  # noqa: E731
    assert count(encoder.modules()) == count(vgg_features.modules()) == 14_714_688
    assert [m.out_channels for m in encoder.modules() if isinstance(m, nn.Conv2d)] == \
           [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


# ---------------------------------------------------------------- the size policies
def test_fcn_and_unet_pad_to_a_multiple_and_crop_as_they_say():
    torch.manual_seed(1)
    x = torch.rand(1, 3, 37, 50)
    fcn, unet = SMALL["fcn8s"](4).eval(), SMALL["unet"](4).eval()
    with torch.no_grad():
        # FCN: zeros at the bottom and right to 64 x 64 (a multiple of 2^5), scores cropped back
        torch.testing.assert_close(fcn(x), fcn(F.pad(x, (0, 14, 0, 27)))[..., :37, :50])
        # U-Net: a mirror to 40 x 56 (a multiple of 2^3)
        torch.testing.assert_close(unet(x), unet(F.pad(x, (0, 6, 0, 3), mode="reflect"))[..., :37, :50])
        assert not torch.allclose(unet(x), unet(F.pad(x, (0, 6, 0, 3)))[..., :37, :50])   # not zeros


def test_segnet_unpools_to_the_recorded_sizes():
    model = SMALL["segnet"](4).eval()
    sizes = []
    hooks = [block.register_forward_pre_hook(lambda m, args: sizes.append(tuple(args[0].shape[-2:]))) for block in model.decoder]
    with torch.no_grad():
        model(torch.rand(1, 3, 37, 50))
    for h in hooks:
        h.remove()
    # floor pooling: 37 -> 18 -> 9 -> 4 -> 2 -> 1, 50 -> 25 -> 12 -> 6 -> 3 -> 1; unpooled back up the same sizes
    assert sizes == [(2, 3), (4, 6), (9, 12), (18, 25), (37, 50)]


# ---------------------------------------------------------------- what makes each network
def test_fcn_upsampling_is_bilinear_and_skips_start_at_zero():
    model = SMALL["fcn8s"](3)
    assert not model.up_final.weight.requires_grad                     # the last upsampling is fixed
    assert all(u.weight.requires_grad for u in model.up2)              # the 2x ones are learned
    assert all(float(s.weight.detach().abs().sum()) == 0 for s in model.score_skips)
    # so at initialisation FCN-8s is pool5's scores upsampled 2x, 2x and 8x: bilinear away from the border
    coarse = {}
    model.score.register_forward_hook(lambda m, args, out: coarse.setdefault("s", out))
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
        s = coarse["s"]                                                # (1, 3, 2, 2)
        up = model.up_final(model.up2[1](model.up2[0](s)))
        torch.testing.assert_close(out, up)
        ref = bilinear_upsample(bilinear_upsample(bilinear_upsample(s, (4, 4)), (8, 8)), (64, 64))
        torch.testing.assert_close(out[..., 28:36, 28:36], ref[..., 28:36, 28:36])


def test_segnet_decoder_reads_sparse_maps_one_value_per_window():
    model = SMALL["segnet"](4).eval()
    inputs = []
    model.decoder[-1].register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
    with torch.no_grad():
        model(torch.rand(2, 3, 64, 64))
    x = inputs[0]                                                      # (2, 16, 64, 64), unpooled
    per_window = (x != 0).float().view(2, 16, 32, 2, 32, 2).sum(dim=(3, 5))
    # at most one value per 2 x 2 window (fewer: a maximum of ReLU outputs may itself be 0)
    assert per_window.max() == 1 and per_window.mean() > 0.2


def test_unet_concatenates_the_skip_before_the_upsampled_map():
    model = SMALL["unet"](4).eval()
    skips, decoded = [], []
    for block in model.down:
        block.register_forward_hook(lambda m, args, out: skips.append(out))
    for block in model.decode:
        block.register_forward_pre_hook(lambda m, args: decoded.append(args[0]))
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 64))
    assert len(decoded) == 3
    for skip, joined in zip(reversed(skips), decoded):
        c = skip.shape[1]
        assert joined.shape[1] == 2 * c                                 # [skip, up-conv output (half the channels below)]
        assert torch.equal(joined[:, :c], skip)


def test_fc_densenet103_widths_follow_the_tiramisu_and_reuse_chapter_9s_blocks():
    with torch.device("meta"):
        model = S.fc_densenet("fc_densenet103")
    assert all(isinstance(b, DenseBlock) for b in [*model.down, model.bottleneck, *model.up_blocks])
    # down: 48 + 4 * 16 = 112, + 5 * 16 = 192, + 7 * 16 = 304, + 10 * 16 = 464, + 12 * 16 = 656
    assert [b.out_channels for b in model.down] == [112, 192, 304, 464, 656]
    # bottleneck: 15 * 16 = 240 new maps, the only ones upsampled
    assert model.bottleneck.out_channels == 896 and model.up[0].in_channels == 240
    # up: 240 + 656 skip + 12 * 16 = 1088; 192 + 464 + 160 = 816; 160 + 304 + 112 = 576; 112 + 192 + 80 = 384; 80 + 112 + 64 = 256
    assert [b.out_channels for b in model.up_blocks] == [1088, 816, 576, 384, 256]
    assert [u.in_channels for u in model.up] == [240, 192, 160, 112, 80]
    assert model.classifier.in_channels == 256


# ---------------------------------------------------------------- training on the shapes scenes
@pytest.mark.parametrize("name", ["fcn8s", "segnet", "unet"])
def test_a_few_steps_lower_the_loss_on_the_shapes_scenes(name):
    data = shapes_segmentation(4, seed=5)
    images, target = data.images, data.semantic_masks()
    torch.manual_seed(0)
    model = SMALL[name](4)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-2)
    losses = []
    for _ in range(6):
        loss = F.cross_entropy(model(images), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


# ---------------------------------------------------------------- Mask R-CNN's mask branch
@pytest.fixture(scope="module")
def scene():
    data = shapes_segmentation(4, seed=2)
    return data


def test_mask_head_beside_the_box_head(scene):
    torch.manual_seed(0)
    backbone = D.tiny_backbone(8)                                      # stride 8, 32 channels
    features = backbone(scene.images)
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(n)), b], dim=1) for n, b in enumerate(scene.boxes)])
    boxes_head = D.RoIHead(32, num_classes=3, pool=4, hidden=16)
    masks_head = S.MaskHead(32, num_classes=3, pool=7, width=16, convs=2)
    logits, deltas = boxes_head(features, rois)
    masks = masks_head(features, rois)
    r = len(rois)
    assert logits.shape == (r, 4) and deltas.shape == (r, 4, 4)
    assert masks.shape == (r, 3, 14, 14) and masks_head.mask_size == 14
    # the paper's head: 14 x 14 RoI align, four 256-channel convs, 28 x 28 masks
    paper = S.MaskHead(256, num_classes=80)
    assert paper.mask_size == 28 and sum(isinstance(m, nn.Conv2d) for m in paper.net) == 5


def test_mask_targets_crop_the_object_and_paste_back(scene):
    masks, boxes, labels = scene.masks[0], scene.boxes[0], scene.labels[0]
    t = S.mask_targets(boxes, masks, 28)
    assert t.shape == (len(boxes), 28, 28)
    for k, label in enumerate(labels.tolist()):
        if label == 1:                                                 # a square fills its tight box
            assert t[k].all()
        pasted = S.paste_masks(t[k][None].float(), boxes[k][None], masks.shape[-2:])[0]
        iou = (pasted & masks[k]).sum() / (pasted | masks[k]).sum()
        assert iou > 0.9, (label, float(iou))
        assert not pasted[~_box_region(boxes[k], masks.shape[-2:])].any()  # nothing outside the box


def _box_region(box, size):
    region = torch.zeros(size, dtype=torch.bool)
    x0, y0, x1, y1 = (int(v) for v in box.tolist())
    region[y0:y1, x0:x1] = True
    return region


def test_mask_loss_reads_only_the_true_class_of_positive_regions():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(5, 3, 6, 6, generator=g, requires_grad=True)
    labels = torch.tensor([2, 0, 1, 3, 0])                             # regions 1 and 4 are background
    targets = torch.rand(5, 6, 6, generator=g) > 0.5
    loss = S.mask_loss(logits, labels, targets)
    # written region by region: mean BCE of each positive region's class mask, averaged over them
    per_region = []
    for r in range(5):
        if labels[r] > 0:
            p = torch.sigmoid(logits[r, labels[r] - 1])
            t = targets[r].float()
            per_region.append(-(t * p.log() + (1 - t) * (1 - p).log()).mean())
    torch.testing.assert_close(loss, torch.stack(per_region).mean())
    (grad,) = torch.autograd.grad(loss, logits)
    used = torch.zeros(5, 3, dtype=torch.bool)
    used[0, 1], used[2, 0], used[3, 2] = True, True, True
    assert grad[~used].abs().sum() == 0 and (grad[used].abs().sum(dim=(1, 2)) > 0).all()
    # no positive region: zero, still differentiable
    zero = S.mask_loss(logits, torch.zeros(5, dtype=torch.int64), targets)
    assert zero.item() == 0.0 and zero.requires_grad


def test_mask_head_learns_the_masks_of_the_true_boxes(scene):
    torch.manual_seed(0)
    backbone, head = D.tiny_backbone(8), S.MaskHead(32, num_classes=3, pool=7, width=16, convs=2)
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(n)), b], dim=1) for n, b in enumerate(scene.boxes)])
    labels = torch.cat(scene.labels)
    targets = torch.cat([S.mask_targets(b, m, 14) for b, m in zip(scene.boxes, scene.masks)])
    opt = torch.optim.Adam([*backbone.parameters(), *head.parameters()], 1e-2)
    losses = []
    for _ in range(15):
        loss = S.mask_loss(head(backbone(scene.images), rois), labels, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses
