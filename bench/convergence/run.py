"""Calibration of the hidden convergence tests: the grader's run on its glyph task, seed by seed.

Each assignment's `test_convergence` trains a fresh network with the student's code on a task
the grader draws from the submission's secret seed (`autograder.glyphs`: ten classes of random
glyphs) and compares the held-out accuracy with the notebook's `_GLYPH_TARGET`; a10's trains a
character model on a text written from the secret seed (`autograder.sequences`) and compares its
held-out perplexity, as a fraction of the unigram model's, with `_PPL_RATIO` (lower is better); a11's trains
a detector on scenes of glyph classes drawn from the secret seed (`autograder.scenes`) and compares its
held-out mAP@0.5 with `_MAP50`; a12's trains a U-Net on segmentation scenes of such classes and compares the
held-out mean IoU over the object classes with `_MIOU`; a13's trains a GAN on a ring of Gaussians drawn from the
secret seed and compares the fraction of high-quality samples of the trained generator with `_QUALITY` (and
the modes it covers, printed in the last column, with `_MODES`). This grades the
reference solution, exactly as `autograder grade` would (sandboxed kernel, tests in this
process, fast profile, one thread), once per secret seed, and prints the accuracy each run
reached (the hidden test prints it into the graded notebook's output), the worst run and its
margin over the target. a07 also prints the ratio of the batch-norm network's final training
loss to the plain network's, which its test compares with `LOSS_RATIO`.

Usage: python bench/convergence/run.py [--seeds 101 202 303] [--only a03-lenet a07-batchnorm] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("DLCOURSE_THREADS", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

ASSIGNMENTS = ["a03-lenet", "a04-alexnet", "a05-vgg", "a06-googlenet", "a07-batchnorm", "a08-resnet", "a09-densenet",
               "a10-rnn", "a11-detection", "a12-segmentation", "a13-gans"]


def one_run(assignment: str, seed: int) -> dict:
    import nbformat

    from autograder.grade import grade_here

    source = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    release = nbformat.read(REPO / "assignments" / assignment / f"{assignment}.ipynb", as_version=4)
    test_source = next(c.source for c in source.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_convergence")
    target = float(re.search(r"(?:_GLYPH_TARGET|_PPL_RATIO|_MAP50|_MIOU|_QUALITY) = ([0-9.]+)", test_source).group(1))
    lower_is_better = "_PPL_RATIO" in test_source
    t0 = time.monotonic()
    ex = grade_here(source, source, release, assignment=assignment, secret_seed=seed)
    test = next(t for t in ex.tests if t.grade_id == "test_convergence")
    cell = next(c for c in ex.notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_convergence")
    text = "".join(o.get("text", "") for o in cell.get("outputs", []))
    acc = re.search(r"the grader's run: ([0-9.]+) held-out accuracy", text) or \
        re.search(r"the grader's run: [0-9.]+ held-out perplexity, ([0-9.]+) of the unigram", text) or \
        re.search(r"the grader's run: mAP@0.5 ([0-9.]+)", text) or \
        re.search(r"the grader's run: mean IoU ([0-9.]+)", text) or \
        re.search(r"the grader's run: [0-9]+ of 8 modes covered, high quality ([0-9.]+)", text)
    ratio = re.search(r"batch-norm / plain training loss ([0-9.]+)", text) or re.search(r"the grader's run: ([0-9]+) of 8 modes", text)
    return {"assignment": assignment, "seed": seed, "target": target, "status": test.status, "message": test.message[:160],
            "accuracy": float(acc.group(1)) if acc else None, "lower": lower_is_better, "ratio": float(ratio.group(1)) if ratio else None,
            "seconds": time.monotonic() - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 202, 303])
    ap.add_argument("--only", nargs="+", default=ASSIGNMENTS)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    jobs = [(a, s) for a in args.only for s in args.seeds]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(one_run, *zip(*jobs)))
    # "measure": held-out accuracy, for a10 the held-out perplexity over the unigram model's, for a11 mAP@0.5, for a12 mean IoU,
    # for a13 the high-quality fraction (and, under "ratio", the modes covered)
    print(f"{'assignment':<16} {'seed':>6} {'measure':>9} {'target':>7} {'status':<8} {'ratio':>6} {'seconds':>8}")
    for r in results:
        acc = f"{r['accuracy']:.4f}" if r["accuracy"] is not None else "-"
        ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else ""
        print(f"{r['assignment']:<16} {r['seed']:>6} {acc:>9} {r['target']:>7.2f} {r['status']:<8} {ratio:>6} {r['seconds']:>8.1f}"
              + ("" if r["status"] == "passed" else f"  {r['message']}"))
    print()
    print(f"{'assignment':<16} {'worst':>7} {'mean':>7} {'target':>7} {'margin':>7}")
    for a in args.only:
        accs = [r["accuracy"] for r in results if r["assignment"] == a and r["accuracy"] is not None]
        target = next(r["target"] for r in results if r["assignment"] == a)
        lower = next(r["lower"] for r in results if r["assignment"] == a)
        if accs:   # the margin is how far the worst run stays on the right side of the target
            worst = max(accs) if lower else min(accs)
            margin = target - worst if lower else worst - target
            print(f"{a:<16} {worst:>7.4f} {sum(accs) / len(accs):>7.4f} {target:>7.2f} {margin:>+7.4f}")
    return 0 if all(r["status"] == "passed" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
