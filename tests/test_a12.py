"""Assignment a12 (semantic segmentation): the hidden tests reject subtly wrong solutions (each
mutant below is a plausible student mistake) and keep full marks for correct answers written other
valid ways.

Thresholds (fast profile: UNet(3, 4, widths=(12, 24, 48)), 66,508 parameters; 4 epochs of 512 scenes
of 48x48 pixels in minibatches of 8, 256 Adam updates from learning rate 0.003 down a cosine, one CPU thread),
measured with the reference solution:

The notebook's own run, mean IoU over the four classes (background included) on 128 held-out shapes
scenes (generated from 10,000 + SEED), SEED = 0..4 (19.4 to 24.1 s per run of the whole notebook,
one run at a time):
    0.999, 1.000, 0.998, 0.998, 0.998      worst 0.998 against TARGET = 0.8 (a margin of 0.198)
The notebook generates its scenes, so a student offline runs the same notebook with the same TARGET.

The grader's run (`bench/convergence/run.py --only a12-segmentation`): the student's train_segmenter
trains a fresh UNet on 512 scenes drawn from the secret seed (`autograder.scenes.glyph_scenes(...,
masks=True)`: three classes of glyphs no network has seen, painted like the shapes, 16 to 28 pixels
wide); the grader loads the trained weights into `dlcourse.models.segmentation.UNet` (finding the
student's blocks by their shapes, `autograder.testkit.match_units`) and computes the mean IoU over
the three object classes with `dlcourse.metrics.iou_per_class` (equal to torchmetrics',
tests/test_segmentation_metrics.py) on 256 held-out scenes. Secret seeds 101, 202, ..., 1515
(SEED = 0), 35.5 to 46.5 s per grading of the whole notebook with two gradings side by side:
    0.988 0.995 0.998 0.996 0.990 0.994 0.990 0.997 0.990 0.998 0.995 0.999 0.984 0.875 0.980
worst 0.875, mean 0.985 against _MIOU = 0.7 (a margin of 0.175).

Why the cosine learning rate and these widths (measured the same way, same fifteen seeds): with
widths (8, 16, 32) and a constant rate of 0.003 the grader's run scored 0.50 to 0.99, often with one
class of the three lost where the last steps had thrown the weights; the cosine raised the worst
to 0.69, and the notebook's SEED 4 still never learned the triangles (mean IoU 0.47). With widths
(12, 24, 48) and the cosine, every run above settled.

Weights brought from elsewhere earn nothing: a train_segmenter that trains on the notebook's own
shapes scenes whatever scenes it is given (the mutant `trained_on_the_notebooks_scenes` below)
brings the grader a U-Net of squares, circles and triangles, which cannot tell the grader's glyph
classes apart (tests/test_scenes.py measures it matched to them as well as it can be).
"""
import pathlib

import pytest

from mutation_helpers import grade_group, run_mutated

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAME = "a12-segmentation"
SOURCE = ROOT / "solutions" / NAME / f"{NAME}.ipynb"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("a12")]

# the prediction helper and the training run call the student's functions or models: the run lives in the kernel
WELL_FORMED = dict(kernel_only=())  # tests/test_assignments.py checks the source with these


# (solution text, wrong replacement, graded cell that must now fail[, a fragment of the failure
# message that shows the mutant's own effect]). Each group runs as one notebook; within a group the
# mutants target different tests.
SIZES_UPSAMPLING_METRICS_MODEL = {
    "output_size_without_output_padding": (
        "    return (size - 1) * stride - 2 * padding + kernel_size + output_padding\n",
        "    return (size - 1) * stride - 2 * padding + kernel_size\n",
        "test_output_size"),
    "padding_removed_from_one_end_only": (
        "    out = canvas[:, :, p:canvas.shape[2] - p, p:canvas.shape[3] - p]\n",
        "    out = canvas[:, :, :canvas.shape[2] - 2 * p, :canvas.shape[3] - 2 * p]\n",
        "test_conv_transpose", "differs from F.conv_transpose2d"),
    "tent_centred_on_a_tap": (   # 1 - |t - f| / f: the peak on tap f, not between the middle two
        "    tent = 1 - (t - (factor - 0.5)).abs() / factor                       # (2f,)\n",
        "    tent = 1 - (t - factor).abs() / factor                               # (2f,)\n",
        "test_bilinear", "the tent"),
    "unpooling_ignores_the_indices": (   # every value back at its window's top-left corner
        "    out = values.new_zeros(n, c, output_size[0] * output_size[1])\n"
        "    out.scatter_(2, indices.reshape(n, c, -1), values.reshape(n, c, -1))\n"
        "    return out.view(n, c, *output_size)\n",
        "    out = values.new_zeros(n, c, *output_size)\n"
        "    out[:, :, 0:2 * values.shape[2]:2, 0:2 * values.shape[3]:2] = values\n"
        "    return out\n",
        "test_unpool", "max_unpool_2x2"),
    "absent_classes_counted_as_zero": (
        "    present = union > 0\n",
        "    present = torch.ones_like(union, dtype=torch.bool)\n    union = union.clamp(min=1)\n",
        "test_metrics", "left out of the mean"),
    "skip_added_instead_of_concatenated": (
        "        self.decode = nn.ModuleList(block(2 * widths[i], widths[i]) for i in reversed(range(self.depth)))\n",
        "        self.decode = nn.ModuleList(block(widths[i], widths[i]) for i in reversed(range(self.depth)))\n",
        "test_unet", "parameters"),
}
# the same parts, other mistakes: the mean IoU over pixels rather than classes, the skips joined in
# the wrong order of levels (the shallowest map meets the deepest upsampling), the transposed
# convolution taken from PyTorch, and pooling indices that pick the last of equal values
PIXELS_LEVELS_TIES = {
    "miou_averaged_over_pixels": (   # sum of intersections over sum of unions: dominated by the background
        "    return float((tp[present] / union[present]).mean())\n",
        "    return float(tp[present].sum() / union[present].sum())\n",
        "test_metrics", "mean_iou"),
    "skip_taken_from_the_wrong_level": (
        "        for up, block, skip in zip(self.up, self.decode, reversed(skips)):\n",
        "        for up, block, skip in zip(self.up, self.decode, skips):\n",
        "test_unet"),
    "transposed_convolution_from_the_library": (   # what the part forbids, seen in what the call ran
        "    n, c_in, h, w = x.shape\n",
        "    return F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)\n    n, c_in, h, w = x.shape\n",
        "test_conv_transpose", "which this task forbids"),
    "last_of_equal_values_wins": (
        "    values, offset = windows.reshape(n, c, h // 2, w // 2, 4).max(dim=-1)      # first maximum wins\n",
        "    values, offset = windows.reshape(n, c, h // 2, w // 2, 4).flip(-1).max(dim=-1)\n"
        "    offset = 3 - offset\n",
        "test_unpool", "first in row-major order"),
}
# the background dropped inconsistently (and, in the same notebook, pooling taken from PyTorch): the mean IoU leaves class 0 out, and the training loss
# ignores background pixels (the network is never told what background is, so everything becomes
# an object); the grader's own run, which alone decides convergence here, must catch the second
BACKGROUND = {
    "miou_without_the_background": (
        "    present = union > 0\n",
        "    present = union > 0\n    present[0] = False\n",
        "test_metrics", "mean_iou"),
    "pooling_from_the_library": (
        "    n, c, h, w = x.shape\n    windows = ",
        "    return F.max_pool2d(x, 2, return_indices=True)\n    n, c, h, w = x.shape\n    windows = ",
        "test_unpool", "which this task forbids"),
    "background_ignored_by_the_loss": (
        "            loss = F.cross_entropy(model(images[idx].to(device)), masks[idx].to(device))\n",
        "            loss = F.cross_entropy(model(images[idx].to(device)), masks[idx].to(device), ignore_index=0)\n",
        "test_convergence", "reaches a held-out mean IoU"),
}
# a training loop that shuffles the images but reads the class maps in their stored order: every
# image is trained against another scene's map
SHUFFLE = {
    "masks_of_other_scenes": (
        "            loss = F.cross_entropy(model(images[idx].to(device)), masks[idx].to(device))\n",
        "            loss = F.cross_entropy(model(images[idx].to(device)), masks[start:start + batch_size].to(device))\n",
        "test_convergence", "reaches a held-out mean IoU"),
}
# weights that know other scenes earn nothing: a train_segmenter that trains on the notebook's own
# shapes scenes (the kernel's train_set) whatever it is given brings the grader a U-Net of squares,
# circles and triangles, which cannot tell the grader's glyph classes apart
ELSEWHERE = {
    "trained_on_the_notebooks_scenes": (
        "    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=updates)\n",
        "    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=updates)\n"
        "    images, masks = train_set.images, train_masks\n",
        "test_convergence", "reaches a held-out mean IoU"),
}
GROUPS = {
    "sizes-upsampling-metrics-model": (SIZES_UPSAMPLING_METRICS_MODEL, set()),
    "pixels-levels-ties": (PIXELS_LEVELS_TIES, set()),
    "background": (BACKGROUND, set()),
    "shuffle": (SHUFFLE, set()),
    "elsewhere": (ELSEWHERE, set()),
}


@pytest.mark.mutation
@pytest.mark.parametrize("group", list(GROUPS))
def test_wrong_solutions_fail_their_graded_cell(tmp_path, group):
    grade_group(SOURCE, tmp_path, GROUPS[group])


# Correct answers written other valid ways keep full marks: the output size by placing the kernel's
# copies, the transposed convolution through F.fold (col2im: a sum of patches, not a convolution),
# the bilinear kernel as an identity times the tent, pooling by comparing the four corners of the
# windows in turn, unpooling by indexing a flat view, the metrics with loops and index_put_, a U-Net
# registered level by level (each level's up-convolution beside its block, functional ReLUs kept out
# of the blocks' parameters), padding computed with math.ceil, and a training loop with a while
# loop, split minibatches, the cosine learning rate set by hand, gradients set to None by hand and
# float(loss).
OTHER_WAYS = {
    "output_size": (
        "    return (size - 1) * stride - 2 * padding + kernel_size + output_padding\n",
        "    covered = max(i * stride + t for i in range(size) for t in range(kernel_size)) + 1\n"
        "    return covered + output_padding - 2 * padding\n",
        None),
    "conv_transpose": (
        """    n, c_in, h, w = x.shape
    _, c_out, kh, kw = weight.shape
    s, p, a = stride, padding, output_padding
    canvas = x.new_zeros(n, c_out, (h - 1) * s + kh + a, (w - 1) * s + kw + a)
    for u in range(kh):
        for v in range(kw):
            # tap (u, v) of every input pixel's copy lands on a strided grid of the canvas
            stamp = torch.einsum("nchw,co->nohw", x, weight[:, :, u, v])           # (N, C_out, H, W)
            canvas[:, :, u:u + (h - 1) * s + 1:s, v:v + (w - 1) * s + 1:s] += stamp
    out = canvas[:, :, p:canvas.shape[2] - p, p:canvas.shape[3] - p]
    return out if bias is None else out + bias.view(1, -1, 1, 1)
""",
        """    N, C, H, W = x.shape
    kh, kw = weight.shape[2:]
    big_h = (H - 1) * stride + kh + output_padding
    big_w = (W - 1) * stride + kw + output_padding
    cols = (x.flatten(2).transpose(1, 2) @ weight.flatten(1)).transpose(1, 2)     # (N, C_out*kh*kw, H*W)
    canvas = F.fold(cols, (big_h, big_w), (kh, kw), stride=stride)
    y = canvas[..., padding:big_h - padding, padding:big_w - padding]
    if bias is not None:
        y = y + bias[None, :, None, None]
    return y
""",
        None),
    "bilinear": (
        """    weight = torch.zeros(channels, channels, 2 * factor, 2 * factor)
    for c in range(channels):
        weight[c, c] = tent[:, None] * tent[None, :]
    return weight
""",
        """    return torch.eye(channels)[:, :, None, None] * torch.outer(tent, tent)
""",
        None),
    "max_pool": (
        """    n, c, h, w = x.shape
    windows = x[:, :, :h // 2 * 2, :w // 2 * 2].unfold(2, 2, 2).unfold(3, 2, 2)   # (N, C, h, w, 2, 2)
    values, offset = windows.reshape(n, c, h // 2, w // 2, 4).max(dim=-1)      # first maximum wins
    rows = torch.arange(h // 2).view(-1, 1) * 2 + offset // 2
    cols = torch.arange(w // 2).view(1, -1) * 2 + offset % 2
    return values, rows * w + cols
""",
        """    H, W = x.shape[-2:]
    oh, ow = H // 2, W // 2
    r = torch.arange(oh).view(-1, 1) * 2
    q = torch.arange(ow).view(1, -1) * 2
    best = x[..., 0:2 * oh:2, 0:2 * ow:2]
    where = (r * W + q).expand(best.shape).clone()
    for dr, dq in ((0, 1), (1, 0), (1, 1)):
        cand = x[..., dr:2 * oh:2, dq:2 * ow:2]
        better = cand > best                                 # strictly: the first of equal values stays
        best = torch.where(better, cand, best)
        where = torch.where(better, (r + dr) * W + (q + dq), where)
    return best, where.long()
""",
        None),
    "unpool": (
        """    out = values.new_zeros(n, c, output_size[0] * output_size[1])
    out.scatter_(2, indices.reshape(n, c, -1), values.reshape(n, c, -1))
    return out.view(n, c, *output_size)
""",
        """    flat = torch.zeros(n * c, output_size[0] * output_size[1], dtype=values.dtype)
    rows = torch.arange(n * c).view(-1, 1).expand(-1, indices[0, 0].numel())
    flat[rows.reshape(-1), indices.reshape(-1)] = values.reshape(-1)
    return flat.reshape(n, c, output_size[0], output_size[1])
""",
        None),
    "confusion_matrix": (
        """    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    return torch.bincount(target * num_classes + pred, minlength=num_classes ** 2).view(num_classes, num_classes)
""",
        """    m = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for t, p in zip(target.flatten().tolist(), pred.flatten().tolist()):
        if ignore_index is not None and t == ignore_index:
            continue
        m[t, p] += 1
    return m
""",
        None),
    "mean_iou": (
        """    m = confusion_matrix(pred, target, num_classes, ignore_index).double()
    tp = m.diag()
    union = m.sum(0) + m.sum(1) - tp
    present = union > 0
    if ignore_index is not None and 0 <= ignore_index < num_classes:
        present[ignore_index] = False
    return float((tp[present] / union[present]).mean())
""",
        """    m = confusion_matrix(pred, target, num_classes, ignore_index).tolist()
    ious = []
    for c in range(num_classes):
        if c == ignore_index:
            continue
        tp = m[c][c]
        fp = sum(m[r][c] for r in range(num_classes)) - tp
        fn = sum(m[c]) - tp
        if tp + fp + fn:
            ious.append(tp / (tp + fp + fn))
    return sum(ious) / len(ious)
""",
        None),
    "unet": (
        """        def block(c_in, c_out):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                                 nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())

        self.depth = len(widths) - 1
        ins = [in_channels, *widths[:-2]]
        self.down = nn.ModuleList(block(c_in, w) for c_in, w in zip(ins, widths[:-1]))
        self.bottom = block(widths[-2], widths[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(self.depth)))
        self.decode = nn.ModuleList(block(2 * widths[i], widths[i]) for i in reversed(range(self.depth)))
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        h, w = x.shape[-2:]
        m = 2 ** self.depth
        x = F.pad(x, (0, -w % m, 0, -h % m), mode="reflect")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)                                  # (N, w_i, H / 2^i, W / 2^i)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, block, skip in zip(self.up, self.decode, reversed(skips)):
            x = block(torch.cat([skip, up(x)], dim=1))
        return self.classifier(x)[..., :h, :w]
""",
        """        class Block(nn.Module):
            def __init__(self, i, o):
                super().__init__()
                self.conv1, self.bn1 = nn.Conv2d(i, o, kernel_size=3, padding=1), nn.BatchNorm2d(o)
                self.conv2, self.bn2 = nn.Conv2d(o, o, kernel_size=3, padding=1), nn.BatchNorm2d(o)

            def forward(self, x):
                return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))

        self.levels = len(widths) - 1
        self.encoders = nn.ModuleList()
        c = in_channels
        for wd in widths[:-1]:
            self.encoders.append(Block(c, wd))
            c = wd
        self.middle = Block(widths[-2], widths[-1])
        self.decoders = nn.ModuleList()      # deepest first, each level's up-convolution beside its block
        for i in range(self.levels - 1, -1, -1):
            self.decoders.append(nn.ModuleDict({"up": nn.ConvTranspose2d(widths[i + 1], widths[i], 2, 2),
                                                "block": Block(2 * widths[i], widths[i])}))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        H, W = x.shape[2], x.shape[3]
        mult = 2 ** self.levels
        x = F.pad(x, [0, math.ceil(W / mult) * mult - W, 0, math.ceil(H / mult) * mult - H], mode="reflect")
        kept = []
        for enc in self.encoders:
            x = enc(x)
            kept.append(x)
            x = nn.functional.max_pool2d(x, kernel_size=2, stride=2)
        x = self.middle(x)
        for level in self.decoders:
            x = level["block"](torch.cat((kept.pop(), level["up"](x)), 1))
        return self.head(x)[:, :, :H, :W]
""",
        None),
    "train_segmenter": (
        """    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    updates = epochs * math.ceil(len(images) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=updates)
    losses = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(images), generator=g)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(model(images[idx].to(device)), masks[idx].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
    return losses
""",
        """    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator()
    gen.manual_seed(seed)
    total = epochs * -(-images.size(0) // batch_size)          # updates in the whole run
    losses, epoch = [], 0
    while epoch < epochs:
        model.train()
        for batch in torch.randperm(images.size(0), generator=gen).split(batch_size):
            for group in opt.param_groups:                      # the cosine, written by hand
                group["lr"] = lr * (1 + math.cos(math.pi * len(losses) / total)) / 2
            scores = model(images[batch].to(params[0].device))
            loss = F.cross_entropy(scores, masks[batch].to(params[0].device), reduction="mean")
            for p in params:
                p.grad = None
            loss.backward()
            opt.step()
            losses.append(float(loss))
        epoch += 1
    return losses
""",
        None),
}


@pytest.mark.variants
def test_other_valid_answers_keep_full_marks(tmp_path):
    messages = {}
    failed = run_mutated(SOURCE, tmp_path, OTHER_WAYS, messages, train=True)
    assert not any(failed.values()), {gid: messages[gid] for gid, err in failed.items() if err}
