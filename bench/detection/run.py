"""The chapter 11 detectors trained on the shapes scenes: time and mAP per profile and seed.

Trains `dlcourse.models.detection.YOLOGrid` and `TwoStageDetector` with Adam on generated scenes
(`dlcourse.datasets.shapes_detection`) and scores each on held-out scenes with
`dlcourse.metrics.mean_average_precision` (COCO's AP, checked against pycocotools in
tests/test_detection_metrics.py). The fast profile is what a CPU does in about a minute per
detector; the full profile uses larger scenes, more objects and longer training (a GPU when
there is one). Prints one row per detector and seed.

Usage: python bench/detection/run.py [--profile fast|full] [--seeds 0 1 2] [--threads 1]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dlcourse.datasets.shapes import shapes_detection  # noqa: E402
from dlcourse.metrics import mean_average_precision  # noqa: E402
from dlcourse.models import detection as D  # noqa: E402

PROFILES = {  # scenes to train on, held-out scenes, image size, objects per scene, epochs, batch
    "fast": dict(train=512, test=128, size=64, objects=3, epochs=4, batch=16),
    "full": dict(train=4096, test=512, size=96, objects=5, epochs=20, batch=32),
}


def run(name: str, seed: int, p: dict, device: str) -> dict:
    train = shapes_detection(p["train"], size=p["size"], max_objects=p["objects"], seed=seed)
    test = shapes_detection(p["test"], size=p["size"], max_objects=p["objects"], seed=10_000 + seed)
    torch.manual_seed(seed)
    grid = p["size"] // 8
    model = (D.TwoStageDetector(image_size=p["size"]) if name == "two-stage" else D.YOLOGrid()).to(device)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    t0 = time.perf_counter()
    for _ in range(p["epochs"]):
        model.train()
        for i in range(0, p["train"], p["batch"]):
            idx = range(i, min(i + p["batch"], p["train"]))
            images = train.images[i:i + len(idx)].to(device)
            if name == "two-stage":
                loss = sum(model(images, [{"boxes": train.boxes[k], "labels": train.labels[k]} for k in idx]).values())
            else:
                target = D.yolo_targets([train.boxes[k] for k in idx], [train.labels[k] for k in idx], grid, 3, p["size"])
                loss = D.yolo_loss(model(images), target.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        out = model(test.images.to(device))
        dets = out if name == "two-stage" else D.yolo_decode(out, 2, p["size"])
    scores = mean_average_precision([{k: v.cpu() for k, v in d.items()} for d in dets],
                                    [{"boxes": b, "labels": lab} for b, lab in zip(test.boxes, test.labels)])
    return {"detector": name, "seed": seed, "seconds": seconds, "map_50": scores["map_50"], "map": scores["map"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="fast", choices=list(PROFILES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    p = PROFILES[args.profile]
    print(f"profile {args.profile} on {device} ({args.threads} CPU threads): {p}")
    print(f"{'detector':<10} {'seed':>4} {'train s':>8} {'mAP@0.5':>8} {'mAP@[.5:.95]':>13}")
    for name in ("yolo", "two-stage"):
        for seed in args.seeds:
            r = run(name, seed, p, device)
            print(f"{r['detector']:<10} {r['seed']:>4} {r['seconds']:>8.1f} {r['map_50']:>8.3f} {r['map']:>13.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
