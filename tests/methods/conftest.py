"""Fixtures for the method tests: a tiny synthetic record dataset and a stand-in accelerator."""

from __future__ import annotations

import contextlib
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)  # tiny models: threads only add contention on a shared CPU


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    from handsynth.methods.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("ahdata"), n=4, size=128)


class StubAccelerator:
    """What AttentionHandTask.build/loss use of an Accelerator, for single-process unit tests."""

    device = torch.device("cpu")
    mixed_precision = "no"

    def unwrap_model(self, model):
        return model

    def autocast(self):
        return contextlib.nullcontext()


@pytest.fixture()
def stub_accelerator():
    return StubAccelerator()
