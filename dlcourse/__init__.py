"""dlcourse: the library that the course's book chapters and assignments import.

One idea per module:
  runtime      -- device choice, seeding, per-process CPU thread budget, notebook setup
  conv         -- convolution arithmetic: output size, parameters, cost, receptive field,
                  a readable loop convolution and pooling (chapter 1)
  explorer     -- the ipywidgets convolution explorer that also works in the static book
  sampling_explorer -- chapter 10's explorer of a language model's sampling temperature and prefix
  nms_explorer -- chapter 11's explorer of what a score threshold and NMS keep of a detector's boxes
  tconv_explorer -- chapter 12's explorer of a transposed convolution's output size and overlap
  level_diagram -- chapter 12's encoder-decoder networks drawn by resolution level from their forward pass
  activations  -- activations, their derivatives, stable cross-entropy, dropout, hinge (chapter 2)
  datasets     -- verified data sets (MNIST, digits, The Time Machine) and synthetic ones
  text         -- the character pipeline: vocabulary, batches for truncated BPTT, clipping by
                  global norm, language-model training and sampling (chapter 10)
  metrics      -- evaluation metrics with their baselines (perplexity, chapter 10)
  gan          -- chapter 13's game: the players' losses, one alternating step, mode coverage, receptive field, cycle loss
  train, plots, summary, models -- the training toolkit and reference models (chapter 3 on)
Submodules are imported on demand (`from dlcourse import conv`), so that importing the
package stays cheap.
"""
from dlcourse.runtime import choose_device, seed_everything, set_thread_budget, setup

__all__ = ["choose_device", "seed_everything", "set_thread_budget", "setup"]
__version__ = "0.1.0"
