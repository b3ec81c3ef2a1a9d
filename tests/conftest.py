"""Shared test settings: deterministic hypothesis profile, seeded torch."""

import os
import tempfile

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    max_examples=60,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# A compiled S2 backward kernel built on this machine (snn-singlestep build-kernel) would change
# gradients by an ulp or two between runs; the tests use none unless they build their own
# (tests/core/test_kernel.py). Subprocesses (CLI tests) inherit this.
os.environ["SNN_SINGLESTEP_KERNEL_DIR"] = tempfile.mkdtemp(prefix="snn-singlestep-kernels-")


@pytest.fixture
def one_thread():
    """Torch on one thread for the test, restored after it.

    Tiny tensors run several times faster on one thread than on two, and on a busy 2-core
    machine two spinning OpenMP threads slow a run down tenfold.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)
    yield
