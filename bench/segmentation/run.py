"""The chapter 12 segmentation networks trained on the shapes scenes: parameters, time and mean IoU.

Trains the small FCN-8s, SegNet, U-Net and FC-DenseNet of `dlcourse.models.segmentation` with
Adam and per-pixel cross-entropy on generated scenes (`dlcourse.datasets.shapes_segmentation`,
4 classes: background, square, circle, triangle) and scores each on held-out scenes with
`dlcourse.metrics.pixel_accuracy` and `mean_iou` (checked against torchmetrics in
tests/test_segmentation_metrics.py). The fast profile is what a CPU does in a minute or less
per network; the full profile trains on more and larger scenes for longer (a GPU when there is
one). Prints one row per network and seed. For scale: predicting "background" everywhere
scores a pixel accuracy of about 0.86 and a mean IoU of about 0.21 (dlcourse.metrics).

Usage: python bench/segmentation/run.py [--profile fast|full] [--seeds 0 1 2] [--threads 1] [--models fcn8s unet]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dlcourse.datasets.shapes import shapes_segmentation  # noqa: E402
from dlcourse.metrics import mean_iou, pixel_accuracy  # noqa: E402
from dlcourse.models import segmentation as S  # noqa: E402

PROFILES = {  # scenes to train on, held-out scenes, image size, objects per scene, epochs, batch
    "fast": dict(train=512, test=128, size=64, objects=3, epochs=4, batch=16),
    "full": dict(train=4096, test=512, size=96, objects=5, epochs=20, batch=32),
}
MODELS = {  # the small configurations, sized for the 64 x 64 scenes
    "fcn8s": lambda k: S.fcn8s(k, cfg="small"),
    "segnet": lambda k: S.segnet(k, cfg="small"),
    "unet": lambda k: S.unet(k, cfg="unet_small", in_channels=3),
    "fc-densenet": lambda k: S.fc_densenet("small", k),
}


def run(name: str, seed: int, p: dict, device: str) -> dict:
    train = shapes_segmentation(p["train"], size=p["size"], max_objects=p["objects"], seed=seed)
    test = shapes_segmentation(p["test"], size=p["size"], max_objects=p["objects"], seed=10_000 + seed)
    train_y, test_y = train.semantic_masks(), test.semantic_masks()                 # (N, H, W) class per pixel
    k = len(train.classes)
    torch.manual_seed(seed)
    model = MODELS[name](k).to(device)
    params = sum(q.numel() for q in model.parameters() if q.requires_grad)
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], 2e-3)
    t0 = time.perf_counter()
    for _ in range(p["epochs"]):
        model.train()
        for i in range(0, p["train"], p["batch"]):
            images, target = train.images[i:i + p["batch"]].to(device), train_y[i:i + p["batch"]].to(device)
            loss = F.cross_entropy(model(images), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(test.images[i:i + 64].to(device)).argmax(1).cpu() for i in range(0, p["test"], 64)])
    return {"model": name, "seed": seed, "params": params, "seconds": seconds,
            "accuracy": pixel_accuracy(pred, test_y), "miou": mean_iou(pred, test_y, k)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="fast", choices=list(PROFILES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    p = PROFILES[args.profile]
    print(f"profile {args.profile} on {device} ({args.threads} CPU threads): {p}")
    print(f"{'model':<12} {'seed':>4} {'params':>9} {'train s':>8} {'pixel acc':>9} {'mIoU':>6}")
    for name in args.models:
        for seed in args.seeds:
            r = run(name, seed, p, device)
            print(f"{r['model']:<12} {r['seed']:>4} {r['params']:>9,} {r['seconds']:>8.1f} {r['accuracy']:>9.3f} "
                  f"{r['miou']:>6.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
