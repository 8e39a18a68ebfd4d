"""Tests for dlcourse.runtime: device choice, seeding and thread budgets."""
import os
import subprocess
import sys

import pytest
import torch

from dlcourse import runtime


def test_auto_device_is_cpu_without_cuda(monkeypatch):
    monkeypatch.delenv(runtime.DEVICE_ENV, raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.choose_device("auto").type == expected


def test_env_overrides_auto(monkeypatch):
    monkeypatch.setenv(runtime.DEVICE_ENV, "cpu")
    assert runtime.choose_device("auto").type == "cpu"


def test_bad_device_is_rejected():
    with pytest.raises(ValueError, match="device must be one of"):
        runtime.choose_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_an_error():
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        runtime.choose_device("cuda")


def test_seeding_reproduces_all_generators():
    import random

    import numpy as np

    runtime.seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(3))
    runtime.seed_everything(123)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    runtime.seed_everything(124)
    assert not torch.equal(torch.rand(3), a[2])


def test_seed_must_be_int():
    with pytest.raises(TypeError):
        runtime.seed_everything("7")


def test_thread_budget_from_env_in_fresh_process():
    code = "import dlcourse, torch; n = dlcourse.set_thread_budget(); print(n, torch.get_num_threads())"
    env = dict(os.environ, DLCOURSE_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]


def test_setup_validates_profile():
    with pytest.raises(ValueError, match="PROFILE"):
        runtime.setup(profile="medium")
    cfg = runtime.setup(profile="fast", device="cpu", seed=3, threads=1)
    assert cfg.fast and cfg.device.type == "cpu" and cfg.threads == 1 and torch.get_num_threads() == 1
