"""Contract shared by every neuron class we ship, as listed by the registry.

Each test runs once per registered neuron class (``registry.neuron_kinds()``: the single-step
neurons S2Cell / S2Neuron / S2Node, the collapsed neurons ``collapse`` builds and the T=N IF
neurons of ``to_multistep``), on the instance its record's ``example()`` builds. A property
that means something for one role only runs over that role's classes.
"""

import copy
import io

import pytest
import torch
from torch import Tensor, nn

import snn_singlestep  # importing it fills the registry (core, snnTorch, SpikingJelly)
from snn_singlestep import S2Cell, S2Neuron, S2Node, s2_grad
from snn_singlestep.core import registry
from snn_singlestep.core.noise import MembraneNoise, noise_modules, set_noise_std

KINDS = registry.neuron_kinds()
IDS = [k.cls.__name__ for k in KINDS]
SINGLE_STEP_ROLES = ("single-step", "collapsed")
# Properties that hold for one role only are parametrized over that role's classes: a
# stateful T=N IF neuron's noise_std is a conversion parameter, not training noise, and it
# carries its membrane between calls.
STEPLESS = [k for k in KINDS if k.role in SINGLE_STEP_ROLES]
STATEFUL = [k for k in KINDS if k.role == "if"]


def _over(kinds):
    return pytest.mark.parametrize("kind", kinds, ids=[k.cls.__name__ for k in kinds])


@pytest.fixture(params=KINDS, ids=IDS)
def kind(request):
    return request.param


def _spikes(out):
    """The spike tensor of a neuron's output (CollapsedStateLeaky returns ``(spk, mem)``)."""
    return out[0] if isinstance(out, tuple) else out


def _x(seed: int = 0, shape=(3, 4), dtype=torch.float32) -> Tensor:
    """An input every example accepts (``[B, 4]``: RLeaky/StateLeaky examples have 4 features)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) + 1.0).to(dtype)


def _set_threshold(m: nn.Module, kind, value: float) -> None:
    """Change the threshold through the registry's ``threshold_attr`` (tensor or float)."""
    current = getattr(m, kind.threshold_attr)
    if isinstance(current, Tensor):
        with torch.no_grad():
            current.fill_(value)
    else:
        setattr(m, kind.threshold_attr, value)


# --- the registry itself -------------------------------------------------------------------


def test_registry_lists_every_kind_of_neuron():
    names = {k.cls.__name__ for k in KINDS}
    assert {"S2Cell", "S2Neuron", "S2Node", "ConvertedIF"} <= names, names
    collapsed = {(k.framework, k.cls.__name__) for k in registry.neuron_kinds(role="collapsed")}
    assert ("snntorch", "CollapsedLeaky") in collapsed, collapsed
    assert any(fw == "spikingjelly" for fw, _ in collapsed), collapsed
    assert len(IDS) == len(set(IDS)), "class names must be unique test ids"
    assert {k.cls.__name__ for k in STATEFUL} >= {"ConvertedIF", "ConvertedIFNeuron", "ConvertedIFNode"}
    assert len(STEPLESS) + len(STATEFUL) == len(KINDS)


def test_example_builds_an_instance_of_its_class(kind):
    m = kind.example()
    assert type(m) is kind.cls and registry.neuron_kind(m) is kind


# --- membrane noise ------------------------------------------------------------------------


@_over(STEPLESS)
def test_membrane_noise_in_train_mode_only(kind):
    m = kind.example()
    x = _x()
    net = nn.Sequential(m)
    net.eval()
    noiseless = _spikes(net(x))

    assert set_noise_std(net, 5.0, seed=0) == ["0"]
    assert isinstance(m.noise, MembraneNoise) and m.noise.std == 5.0
    assert [path for path, _ in noise_modules(net)] == ["0.noise"]

    net.train()
    first, second = _spikes(net(x)), _spikes(net(x))
    assert not torch.equal(first, second), "train-mode calls with sigma=5 must differ"

    net.eval()
    a, b = _spikes(net(x)), _spikes(net(x))
    assert torch.equal(a, b) and torch.equal(a, noiseless)

    assert set_noise_std(net, 0.0) == ["0"] and m.noise is None
    net.train()
    assert torch.equal(_spikes(net(x)), _spikes(net(x)))


@_over(STATEFUL)
def test_if_neurons_take_no_membrane_noise(kind):
    m = kind.example()
    sigma = m.noise_std
    assert set_noise_std(nn.Sequential(m), 5.0) == []
    assert m.noise_std == sigma and not isinstance(getattr(m, "noise", None), MembraneNoise)


# --- dtype ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str
)
def test_output_follows_input_dtype(kind, dtype):
    assert _spikes(kind.example()(_x(dtype=dtype))).dtype == dtype


# --- pickling ------------------------------------------------------------------------------


def test_torch_save_roundtrip(kind):
    m = kind.example().eval()
    x = _x()
    buffer = io.BytesIO()
    torch.save(m, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert type(loaded) is kind.cls
    torch.testing.assert_close(_spikes(loaded(x)), _spikes(m(x)), rtol=0, atol=0)


# --- no state between calls -----------------------------------------------------------------


@_over(STEPLESS)
def test_calls_are_independent(kind):
    m = kind.example()
    a, b = _x(0), _x(1, shape=(5, 4)) * 3.0
    first = _spikes(m(a))
    m(b)  # another batch size and other values in between
    assert torch.equal(_spikes(m(a)), first)


@_over(STATEFUL)
def test_if_neurons_repeat_after_reset(kind):
    m = kind.example()
    seq = [_x(0), _x(1), _x(0)]
    first = [_spikes(m(x)).clone() for x in seq]
    kind.reset(m)  # the record's reset, as MultiStepNet.reset uses it
    assert all(torch.equal(_spikes(m(x)), ref) for x, ref in zip(seq, first))


# --- threshold and state_dict -----------------------------------------------------------------

#: Thresholds that ``state_dict`` does not carry, and why (checked below, so the list is true).
NOT_IN_STATE_DICT = {
    "spikingjelly": "SpikingJelly's v_threshold is a plain float attribute; ConvertedIFNode "
    "keeps theta in a non-persistent buffer that to_multistep rebuilds from the source neuron",
}


def test_threshold_state_dict_roundtrip(kind):
    m = kind.example()
    default = float(registry.threshold_of(m))
    _set_threshold(m, kind, 0.625)
    assert float(registry.threshold_of(m)) == 0.625
    state = m.state_dict()
    fresh = kind.example()
    fresh.load_state_dict(state)
    if kind.framework in NOT_IN_STATE_DICT:
        # What is true: the threshold is not saved, the fresh example keeps its own.
        assert kind.threshold_attr not in state
        current = getattr(m, kind.threshold_attr)
        assert not isinstance(current, Tensor) or kind.threshold_attr in m._non_persistent_buffers_set
        assert float(registry.threshold_of(fresh)) == default
    else:
        assert kind.threshold_attr in state
        assert float(registry.threshold_of(fresh)) == 0.625


# --- spike rule, surrogate and compile (single-step neurons) -----------------------------------


@_over(STEPLESS)
def test_spike_rule(kind):
    m = kind.example()
    _set_threshold(m, kind, 0.5)
    x = torch.tensor([[0.0, 0.49, 0.5, 3.0], [-1.0, 0.51, 0.7, 0.2]])
    spikes = _spikes(m(x))
    membrane = x if kind.role == "single-step" else m.membrane(x)
    theta = registry.threshold_of(m)
    assert torch.equal(spikes, (membrane >= theta).to(spikes.dtype))  # v >= threshold fires


@pytest.mark.parametrize(
    "make",
    [
        lambda: S2Cell(threshold=0.5),
        lambda: S2Neuron(threshold=0.5, init_hidden=True),
        lambda: S2Node(v_threshold=0.5),
    ],
    ids=["S2Cell", "S2Neuron", "S2Node"],
)
def test_s2_surrogate_gradient(make):
    neuron = make()
    x = torch.tensor([0.0, 0.49, 0.5, 0.51, 3.0], requires_grad=True)
    spikes = neuron(x)
    assert spikes.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    spikes.sum().backward()
    torch.testing.assert_close(x.grad, s2_grad(x.detach() - 0.5))


@_over([k for k in KINDS if k.role == "single-step"])  # the compiler is slow: one per glue
def test_torch_compile_smoke(kind):
    net = nn.Sequential(nn.Linear(6, 4), kind.example(), nn.Linear(4, 3))
    x = torch.randn(4, 6, requires_grad=True)
    compiled = torch.compile(copy.deepcopy(net), backend="aot_eager")
    out = compiled(x)
    torch.testing.assert_close(out, net(x))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


# --- collapsed nets train with noise ------------------------------------------------------------


def _source(framework: str) -> nn.Module:
    if framework == "snntorch":
        import snntorch

        return nn.Sequential(
            nn.Linear(4, 16),
            snntorch.Leaky(beta=0.9, init_hidden=True),
            nn.Linear(16, 8),
            snntorch.Synaptic(0.8, 0.9, init_hidden=True),
        )
    from spikingjelly.activation_based import neuron

    return nn.Sequential(nn.Linear(4, 16), neuron.LIFNode(tau=2.0), nn.Linear(16, 8), neuron.IFNode())


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly"])
def test_collapsed_net_draws_noise_in_train_mode_only(framework):
    torch.manual_seed(0)
    src = _source(framework)
    x = torch.randn(5, 4) * 3.0
    registry.reset_all(src)
    reference = src(x).detach()  # the source's first step from its reset state
    net = snn_singlestep.collapse(src)
    assert all(registry.is_neuron(net[i], role="collapsed") for i in (1, 3))

    assert set_noise_std(net, 5.0, seed=0) == ["1", "3"]
    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), reference) and torch.equal(net(x), reference)
