"""dlcourse: the library that the course's book chapters and assignments import.

One idea per module:
  runtime  -- device choice, seeding, per-process CPU thread budget, notebook setup
Further modules (convolution arithmetic, data sets, training, models) are added by the
chapters that need them and documented in their own docstrings.
"""
from dlcourse.runtime import choose_device, seed_everything, set_thread_budget, setup

__all__ = ["choose_device", "seed_everything", "set_thread_budget", "setup"]
__version__ = "0.1.0"
