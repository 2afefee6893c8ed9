"""Shared fixtures: a small slice of the real library and a tiny model trained on it."""

from dataclasses import replace

import pytest
import torch

from probstar.data import load_split
from probstar.train import PRESETS, train


@pytest.fixture(scope="session")
def train_stars():
    return load_split("train").select(slice(0, 600))


@pytest.fixture(scope="session")
def test_stars():
    return load_split("test").select(slice(0, 200))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, train_stars, test_stars):
    """A 2-epoch smoke-preset run folder (seconds on a CPU)."""
    run = tmp_path_factory.mktemp("run")
    cfg = replace(PRESETS["smoke"], epochs=2, batch_size=128)
    train(cfg, train_stars, test_stars.select(slice(0, 100)), run, progress=False)
    return run


@pytest.fixture(autouse=True)
def _no_global_state_change():
    """Importing or using probstar must not flip torch's global switches."""
    before = torch.distributions.Distribution._validate_args, torch.is_grad_enabled()
    yield
    assert (torch.distributions.Distribution._validate_args, torch.is_grad_enabled()) == before
