"""Shared fixtures of the collapse tests."""

import warnings

import pytest

from snn_singlestep.core import set_fused_backward


@pytest.fixture(autouse=True)
def _eager_backward():
    # The fused S2 backward compiles with torch.compile on first use (10-20 s on a 2-core
    # CPU); these tests check conversion, not the kernel, so they use the eager backward.
    previous = set_fused_backward("off")
    yield
    set_fused_backward(previous)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every conversion test on one thread (the tensors here are tiny, batch 2)."""


@pytest.fixture(autouse=True)
def _quiet_host_warnings():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*CUDA.*")
        warnings.filterwarnings("ignore", message=".*[Ii]nhibition.*")
        yield
