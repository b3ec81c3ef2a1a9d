"""The AOT-compiled S² backward (snn_singlestep.core.kernel): same gradients, chosen when built."""

import os
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

from snn_singlestep import S2Cell
from snn_singlestep.core import fused, kernel
from snn_singlestep.core import surrogate as sg
from snn_singlestep.errors import ConfigError, SingleStepWarning


@pytest.fixture
def kernel_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SNN_SINGLESTEP_KERNEL_DIR", str(tmp_path))
    kernel._reset()
    yield tmp_path
    kernel._reset()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One build for the module (20–40 s on a fresh machine; the inductor cache helps after)."""
    path = tmp_path_factory.mktemp("kernel") / "s2.pt2"
    try:
        kernel.build_kernel(path)
    except ConfigError as err:  # no C++ compiler here: the eager path is all there is
        pytest.skip(f"cannot build the kernel here: {err}")
    return path


@pytest.fixture
def with_kernel(built, kernel_dir):
    """The built kernel in place and loaded; returns the list of shapes it was run on."""
    kernel.kernel_path().write_bytes(built.read_bytes())
    run = kernel.loaded_kernel()
    assert run is not None
    calls = []
    kernel._Loaded.run = lambda args: calls.append(tuple(args[1].shape)) or run(args)
    return calls


def _ulps(a: torch.Tensor, b: torch.Tensor) -> int:
    """Largest distance in units in the last place between two float32 tensors of equal sign."""
    return int((a.view(torch.int32).long() - b.view(torch.int32).long()).abs().max())


def test_no_kernel_means_none(kernel_dir):
    assert not kernel.kernel_path().exists()
    assert kernel.loaded_kernel() is None
    v = torch.randn(64, 8)
    assert kernel.backward(torch.ones_like(v), v, 0.5, 4.0, 1.0) is None


def test_kernel_path_follows_the_environment(kernel_dir):
    path = kernel.kernel_path()
    assert path.parent == kernel_dir and path.suffix == ".pt2"
    assert torch.__version__ not in path.name  # a hash of formula, torch and machine instead


def test_build_refuses_a_path_without_pt2(kernel_dir):
    with pytest.raises(ConfigError, match=r"\.pt2"):
        kernel.build_kernel(kernel_dir / "kernel.bin")


def test_failed_build_names_the_cause_and_leaves_nothing(kernel_dir, monkeypatch):
    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", no_compiler)
    with pytest.raises(ConfigError, match="no C\\+\\+ compiler found"):
        kernel.build_kernel()
    assert list(kernel_dir.iterdir()) == []


def test_corrupt_package_warns_once_and_keeps_the_eager_path(kernel_dir):
    kernel.kernel_path().write_bytes(b"not a package")
    with pytest.warns(SingleStepWarning, match="could not load the S2 backward kernel"):
        assert kernel.loaded_kernel() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernel.loaded_kernel() is None  # looked for once per process
    v = torch.randn(40, 5, requires_grad=True)
    S2Cell(0.2)(v).sum().backward()
    assert torch.equal(v.grad, sg.s2_grad(v.detach() - 0.2))


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(2,), (64, 256), (3, 5, 9), (1000, 300)], ids=str)
@pytest.mark.parametrize(
    "threshold, alpha, beta",
    [(0.5, 4.0, 1.0), (torch.tensor(0.3), 3.3, 0.7), (-1.0, torch.tensor(2.0), torch.tensor(0.5)),
     (torch.tensor(0.25, dtype=torch.float64), 1e4, 1e-4)],
)
def test_kernel_equals_the_eager_backward_to_two_ulps(with_kernel, shape, threshold, alpha, beta):
    g = torch.Generator().manual_seed(1)
    v = torch.randn(shape, generator=g) * 3
    v.view(-1)[: min(4, v.numel())] = torch.tensor([0.5, 0.3, -1.0, 0.25])[: min(4, v.numel())]
    grad = torch.randn(shape, generator=g)
    got = kernel.backward(grad, v, threshold, alpha, beta)
    want = sg._s2_backward_lean(grad, v - threshold, alpha, beta)
    assert got is not None and got.shape == want.shape and got.dtype == torch.float32
    assert _ulps(got, want) <= 2


@pytest.mark.slow
def test_s2fire_uses_the_kernel_for_every_first_order_float32_backward(with_kernel):
    calls = with_kernel
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(12, 40), nn.BatchNorm1d(40), S2Cell(0.3), nn.Linear(40, 3))
    x = torch.randn(33, 12)
    net(x).pow(2).sum().backward()
    assert calls == [(33 * 40,)]  # flattened
    with_kernel_grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    previous = sg.set_fused_backward("off")  # "off": eager only
    try:
        net(x).pow(2).sum().backward()
    finally:
        sg.set_fused_backward(previous)
    assert calls == [(33 * 40,)]
    for got, want in zip(with_kernel_grads, (p.grad for p in net.parameters())):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_s2_spike_uses_the_kernel_too(with_kernel):
    """s2_spike / S2Surrogate (e.g. snnTorch's spike_grad=) share the kernel, with θ = 0."""
    x = (torch.randn(50, 30) * 2).requires_grad_()
    grad = torch.randn(50, 30)
    sg.s2_spike(x, 3.0, 0.8).backward(grad)
    assert with_kernel == [(50 * 30,)]
    want = sg._s2_backward_lean(grad, x.detach(), 3.0, 0.8)
    assert _ulps(x.grad, want) <= 2


@pytest.mark.slow
@pytest.mark.parametrize("case", ["float64", "per-feature threshold", "double backward",
                                  "channels-last", "one element"])
def test_kernel_is_not_used_where_it_does_not_apply(with_kernel, case):
    dtype = torch.float64 if case == "float64" else torch.float32
    v = torch.randn(6, 4, 3, 3, dtype=dtype) if case != "one element" else torch.randn(1, 1)
    if case == "channels-last":
        v = v.to(memory_format=torch.channels_last)
    v.requires_grad_()
    theta = torch.tensor([0.1, 0.2, 0.3, 0.4]).view(4, 1, 1) if case == "per-feature threshold" \
        else 0.1
    s = fused.fire(v, theta, sg.s2_spike)
    if case == "double backward":
        (g,) = torch.autograd.grad(s.sum(), v, create_graph=True)
        assert g.grad_fn is not None
        got = g
    else:
        s.sum().backward()
        got = v.grad
    assert with_kernel == []
    want = sg.s2_grad(v.detach() - theta)
    torch.testing.assert_close(got, want.to(got.dtype), rtol=0, atol=0)


@pytest.mark.slow
def test_a_new_process_loads_the_kernel_and_prints_nothing(built, kernel_dir):
    """Built once, used by every later process: the point of keeping it on disk."""
    kernel.kernel_path().write_bytes(built.read_bytes())
    code = (
        "import torch\n"
        "from snn_singlestep import S2Cell\n"
        "from snn_singlestep.core import kernel\n"
        "v = torch.randn(64, 8, requires_grad=True)\n"
        "S2Cell(0.1)(v).sum().backward()\n"
        "print(kernel.loaded_kernel() is not None)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    assert done.stderr == ""  # no log line of torch's about CUDA_HOME or inductor
