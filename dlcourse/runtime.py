"""Where code runs and how reproducibly: device choice, seeding and CPU thread budgets.

Every notebook of the course starts with `dlcourse.setup(PROFILE, DEVICE, SEED)`, which
calls the three functions below. They are separate so that tests and the grader can use
them one at a time.

Why a thread budget: PyTorch starts one thread per core by default. Two notebooks
executing side by side on a 2-core machine then fight over the cores and ran 28 times
slower than with one thread each. Every process that runs notebooks in parallel (the
book build, the grader's workers) therefore sets `DLCOURSE_THREADS` for its children,
and `set_thread_budget` honours it.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")
PROFILES = ("fast", "full")
THREADS_ENV = "DLCOURSE_THREADS"
DEVICE_ENV = "DLCOURSE_DEVICE"


def choose_device(preference: str | None = "auto") -> torch.device:
    """Return the device to compute on.

    "auto" (the default) picks CUDA when a GPU is visible and the CPU otherwise; the
    environment variable DLCOURSE_DEVICE overrides "auto" (useful on a shared GPU box).
    Asking for "cuda" on a machine without one is an error rather than a silent fallback,
    so that a "full" run never quietly takes hours on a CPU.
    """
    pref = (preference or "auto").lower()
    if pref == "auto":
        pref = os.environ.get(DEVICE_ENV, "auto").lower()
    if pref not in DEVICE_CHOICES and not pref.startswith("cuda:"):
        raise ValueError(f"device must be one of {DEVICE_CHOICES} (or 'cuda:N'), got {preference!r}")
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {pref!r} was requested but no CUDA GPU is visible; use 'auto' or 'cpu'")
    return torch.device(pref)


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a torch.Generator seeded alike.

    With `deterministic=True` PyTorch is asked for deterministic algorithms where that
    costs little (cuDNN autotuning off), so that two runs with one seed agree.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic and torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def set_thread_budget(threads: int | None = None) -> int:
    """Limit this process to `threads` CPU threads for PyTorch (and BLAS); return the number.

    Without an argument the budget comes from DLCOURSE_THREADS, else all cores. Call it
    before heavy work: PyTorch's inter-op pool can only be sized before its first use,
    so that part is best effort.
    """
    if threads is None:
        env = os.environ.get(THREADS_ENV)
        threads = int(env) if env else (os.cpu_count() or 1)
    threads = max(1, int(threads))
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:
        pass  # already started: intra-op threads are what matter for these workloads
    return threads


@dataclass(frozen=True)
class RunConfig:
    """What a notebook's parameters cell resolved to."""

    profile: str
    device: torch.device
    seed: int
    threads: int

    @property
    def fast(self) -> bool:
        return self.profile == "fast"


def setup(profile: str = "fast", device: str = "auto", seed: int = 0, threads: int | None = None,
          assignment: str | None = None) -> RunConfig:
    """Validate a notebook's parameters, then seed, pick the device and set the thread budget.

    An assignment notebook names itself (`assignment="a03-lenet"`): the library modules
    that hold its answers are then withheld in this kernel (see `dlcourse.answers`).
    """
    if assignment is not None:
        from dlcourse.answers import block

        block(assignment)
    if profile not in PROFILES:
        raise ValueError(f"PROFILE must be one of {PROFILES}, got {profile!r}")
    n = set_thread_budget(threads)
    dev = choose_device(device)
    seed_everything(seed)
    return RunConfig(profile=profile, device=dev, seed=seed, threads=n)
