"""Training loop, models, firing rates, output files and exact resume."""

import json
import math
import os
import re
from itertools import pairwise

import pytest
import torch
from torch import nn

from snn_singlestep import S2Neuron
from snn_singlestep.app.checkpoint import load_checkpoint
from snn_singlestep.app.data import load_dataset
from snn_singlestep.app.distributed import DistContext
from snn_singlestep.errors import CheckpointError, ConfigError
from snn_singlestep.app.models import build_model
from snn_singlestep.models import FRAMEWORKS, SingleStepMLP, make_neuron
from snn_singlestep.monitor import FiringRateMonitor
from snn_singlestep.app.train import (
    TrainConfig,
    _train_loader,
    evaluate,
    evaluate_model,
    fit,
    model_from_checkpoint,
    train,
)

# Tiny nets: one thread is fastest and immune to other processes on a 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(**overrides) -> TrainConfig:
    settings = dict(limit=200, hidden=(16,), channels=(4, 8), epochs=3, batch_size=32, lr=0.01,
                    progress=False, device="cpu")
    settings.update(overrides)
    return TrainConfig(**settings)


def _without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "field,value,message",
    [
        ("epochs", 0, "epochs must be an int >= 1, got 0"),
        ("batch_size", -3, "batch_size must be an int >= 1, got -3"),
        ("batch_size", 2.5, "batch_size must be an int >= 1, got 2.5 of type float"),
        ("lr", 0.0, "lr must be > 0, got 0.0"),
        ("lr", math.nan, "lr must be finite, got nan"),
        ("lr", math.inf, "lr must be finite, got inf"),
        ("lr", "0.1", "lr must be a real number (float or int), got '0.1' of type str"),
        ("hidden", (), "hidden must be a non-empty list of positive integers"),
        ("hidden", (8, 0), "hidden[1] must be an int >= 1, got 0"),
        ("channels", "16", "channels must be a non-empty list"),
        ("limit", 0, "limit must be an int >= 1 (samples per split), got 0"),
        ("workers", -1, "workers must be an int >= 0 (DataLoader worker processes), got -1"),
        ("seed", 1.5, "seed must be an integer"),
        ("dataset", "svhn", "dataset must be one of digits, mnist, fashion-mnist, cifar10; "
                            "got 'svhn'"),
        ("model", "vgg", "model must be one of mlp, cnn, preact-resnet; got 'vgg'"),
        ("framework", "keras", "framework must be one of torch, snntorch, spikingjelly; "
                               "got 'keras'"),
    ],
)
def test_config_rejects_bad_values(field, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainConfig(**{field: value})


def test_config_to_dict_is_plain():
    d = TrainConfig(hidden=(8, 4)).to_dict()
    assert d["hidden"] == [8, 4] and d["channels"] == [16, 32] and isinstance(d["lr"], float)
    assert json.loads(json.dumps(d)) == d


# ----------------------------------------------------------------------------- firing rates
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_firing_rate_monitor_counts_spikes(framework):
    net = nn.Sequential(nn.Identity(), make_neuron(framework, threshold=1.0), nn.Flatten(),
                        nn.Identity())
    x = torch.tensor([[0.5, 1.0, 2.0, -1.0], [3.0, 0.0, 0.0, 0.0]])  # v = θ spikes
    with FiringRateMonitor(net) as monitor:
        net(x)
        net(x[:1])
    (row,) = monitor.layers()
    assert row == {"layer": "1", "neurons": 4, "spikes": 3 + 2, "rate": 5 / 12}
    assert monitor.overall() == 5 / 12
    net(x)  # hooks are gone after the block
    assert monitor.layers()[0]["spikes"] == 5
    monitor.reset()
    assert monitor.layers() == [] and monitor.overall() == 0.0


def test_firing_rate_monitor_handles_tuple_outputs_and_feature_maps():
    net = nn.Sequential(nn.Identity())
    net.add_module("lif", S2Neuron(threshold=0.5))  # init_hidden=False: returns (spk, mem)
    with FiringRateMonitor(net) as monitor:
        net[0](torch.zeros(1))
        spk, mem = net.lif(torch.full((2, 3, 4, 5), 0.75))
    assert monitor.layers() == [{"layer": "lif", "neurons": 60, "spikes": 120, "rate": 1.0}]


def test_evaluate_model_reports_accuracy_loss_and_rates():
    torch.manual_seed(0)
    train_set, test_set, _ = load_dataset("digits", limit=100)
    net = build_model("cnn", in_shape=(1, 8, 8), num_classes=10, channels=(4, 8))
    net.train()
    report = evaluate_model(net, test_set, batch_size=33)
    assert net.training  # mode restored
    assert report["samples"] == 100
    energy = report["energy"]
    assert energy["macs_per_sample"] > 0 and energy["synops_per_sample"] >= 0
    assert energy["energy_nj_per_sample"] == pytest.approx(
        (energy["macs_per_sample"] * 4.6 + energy["synops_per_sample"] * 0.9) / 1e3
    )
    assert report["accuracy"] == evaluate(net, test_set)
    x = torch.stack([test_set[i][0] for i in range(100)])
    y = torch.stack([test_set[i][1] for i in range(100)])
    with torch.no_grad():
        net.eval()
        out = net(x)
        assert math.isclose(report["loss"], float(nn.functional.cross_entropy(out, y)),
                            rel_tol=1e-5)
        spikes1 = net.features[:3](x)
        spikes2 = net.features[:7](x)
    layers = report["firing_rates"]["layers"]
    assert [r["layer"] for r in layers] == ["features.2", "features.6"]
    assert [r["neurons"] for r in layers] == [4 * 8 * 8, 8 * 4 * 4]
    assert math.isclose(layers[0]["rate"], float(spikes1.mean()))
    assert math.isclose(layers[1]["rate"], float(spikes2.mean()))
    total = spikes1.sum() + spikes2.sum()
    assert math.isclose(report["firing_rates"]["overall"],
                        float(total / (spikes1.numel() + spikes2.numel())))


# ----------------------------------------------------------------------------- fit / train
def test_fit_history_and_cosine_schedule():
    torch.manual_seed(0)
    train_set, test_set, _ = load_dataset("digits", limit=64)
    net = SingleStepMLP(64, 10, hidden=(8,), in_shape=(1, 8, 8))
    result = fit(net, train_set, test_set, epochs=4, batch_size=16, lr=0.1, progress=False)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    lrs = [r["lr"] for r in result.history]
    assert lrs == pytest.approx([0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])
    assert result.test_accuracy == result.history[-1]["test_accuracy"] == evaluate(net, test_set)
    assert result.model is net and result.test_samples == 64


def test_fit_trains_a_cnn_on_torchvision_fake_data():
    from torchvision.datasets import FakeData
    from torchvision.transforms import ToTensor

    data = FakeData(size=24, image_size=(3, 32, 32), num_classes=10, transform=ToTensor(),
                    random_offset=0)
    torch.manual_seed(0)
    net = build_model("cnn", in_shape=(3, 32, 32), num_classes=10, channels=(4, 4))
    before = [p.detach().clone() for p in net.parameters()]
    # (batch 4 keeps the surrogate's tensors under the size that triggers torch.compile)
    result = fit(net, data, data, epochs=4, batch_size=4, lr=0.01, progress=False)
    assert len(result.history) == 4
    losses = [r["train_loss"] for r in result.history]
    assert all(math.isfinite(v) for v in losses)
    # The 24 images have random labels: only a net whose weights the trainer really updates
    # memorizes them. The loss falls every epoch (from ~ln 10 to less than half of it) and
    # the last epoch's train accuracy is far above chance (10 %); a frozen net stays at both.
    assert losses[0] > 2.0 and all(b < a for a, b in pairwise(losses)), losses
    assert losses[-1] < 0.5 * losses[0], losses
    assert result.history[-1]["train_accuracy"] >= 0.5, result.history
    assert all(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_a_lone_last_sample_is_dropped_for_batchnorm():
    cfg = _tiny(limit=33, epochs=1)  # 33 = 32 + 1: BatchNorm cannot train on one sample
    result = train(cfg)
    assert result.history[0]["epoch"] == 1
    loader, sampler = _train_loader(load_dataset("digits", limit=33)[0], DistContext(), 32, 0, 0)
    assert loader.drop_last and len(loader) == 1


def test_too_few_training_samples():
    with pytest.raises(ConfigError, match="at least 2 samples per process .* got 1 for 1"):
        train(_tiny(limit=1))


def test_global_batch_must_split_evenly_over_processes():
    data = load_dataset("digits", limit=10)[0]
    two = DistContext(rank=1, world_size=2)
    loader, sampler = _train_loader(data, two, 8, 0, 0)
    assert loader.batch_size == 4 and sampler.num_replicas == 2 and sampler.rank == 1
    with pytest.raises(ConfigError, match="batch_size 9 .* divisible by the number of "
                                          "processes, 2"):
        _train_loader(data, two, 9, 0, 0)


def test_dataloader_workers_do_not_change_the_result():
    alone = train(_tiny(epochs=1))
    with_workers = train(_tiny(epochs=1, workers=1))
    assert _without_time(with_workers.history) == _without_time(alone.history)


@pytest.mark.parametrize("rank,local_rank", [(0, 0), (1, 1), (2, 0)])
def test_download_happens_once_per_machine(monkeypatch, rank, local_rank):
    import snn_singlestep.app.train as train_module

    events = []
    monkeypatch.setattr(train_module, "barrier", lambda ctx: events.append("barrier"))
    monkeypatch.setattr(train_module, "load_dataset",
                        lambda name, **kw: events.append(f"load download={kw['download']}"))
    ctx = DistContext(rank=rank, world_size=4, local_rank=local_rank)
    train_module._load_data(TrainConfig(dataset="mnist", download=True), ctx)
    if local_rank == 0:
        assert events == ["load download=True", "barrier"]
    else:
        assert events == ["barrier", "load download=False"]
    events.clear()
    train_module._load_data(TrainConfig(dataset="mnist", data_root="d"), ctx)
    assert events == ["load download=False"]


def test_train_without_out_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = train(_tiny(epochs=1))
    assert result.checkpoint is None and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_glues_train_identically():
    results = {fw: train(_tiny(framework=fw, epochs=2)) for fw in FRAMEWORKS}
    for fw in FRAMEWORKS[1:]:
        assert _without_time(results[fw].history) == _without_time(results["torch"].history)
        for a, b in zip(results[fw].model.parameters(), results["torch"].model.parameters()):
            assert torch.equal(a, b)


def test_out_directory_files(tmp_path):
    out = tmp_path / "run"
    result = train(_tiny(model="cnn", epochs=2, out=str(out)))
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt", "config.json", "curves.png", "metrics.jsonl"
    ]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows == result.history and [r["epoch"] for r in rows] == [1, 2]
    assert set(rows[0]) == {"epoch", "train_loss", "train_accuracy", "test_loss",
                            "test_accuracy", "lr", "seconds"}
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "cnn" and config["in_shape"] == [1, 8, 8] and config["world_size"] == 1
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plain = torch.load(out / "checkpoint.pt", weights_only=True)
    assert plain["epoch"] == 2 and plain["config"] == config
    assert plain["history"] == result.history
    for key, value in result.model.state_dict().items():
        assert torch.equal(plain["model"][key], value)
    model, data = model_from_checkpoint(out / "checkpoint.pt")
    _, test_set, _ = load_dataset("digits", limit=200)
    assert evaluate(model, test_set) == result.test_accuracy


class _Interrupt:
    """Raise KeyboardInterrupt at the n-th optimizer step (a crash in the middle of an epoch)."""

    def __init__(self, monkeypatch, at_step: int):
        self.count, self.at_step = 0, at_step
        real_step = torch.optim.Adam.step

        def step(opt, *args, **kwargs):
            self.count += 1
            if self.count == self.at_step:
                raise KeyboardInterrupt
            return real_step(opt, *args, **kwargs)

        monkeypatch.setattr(torch.optim.Adam, "step", step)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_resumed_run_ends_exactly_like_an_uninterrupted_one(tmp_path, monkeypatch, model):
    whole = train(_tiny(model=model, out=str(tmp_path / "whole")))
    rng_whole = torch.get_rng_state()

    # 200 samples in batches of 32: 7 steps per epoch; stop in the middle of epoch 3.
    _Interrupt(monkeypatch, at_step=7 * 2 + 4)
    with pytest.raises(KeyboardInterrupt):
        train(_tiny(model=model, out=str(tmp_path / "cut")))
    monkeypatch.undo()
    cut = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert cut["epoch"] == 2  # the last completed epoch survived the crash
    torch.manual_seed(1234)  # whatever the process did since, resume restores the RNG
    resumed = train(_tiny(model=model, out=str(tmp_path / "cut"),
                          resume=str(tmp_path / "cut" / "checkpoint.pt")))

    assert _without_time(resumed.history) == _without_time(whole.history)
    assert torch.equal(torch.get_rng_state(), rng_whole)
    a = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for i, state in a["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][i][key]), (i, key)
    assert a["scheduler"] == b["scheduler"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    metrics = [_without_time([json.loads(line) for line in
                              (tmp_path / run / "metrics.jsonl").read_text().splitlines()])
               for run in ("whole", "cut")]
    assert metrics[0] == metrics[1] and len(metrics[0]) == 3


def test_resume_of_a_finished_run_changes_nothing(tmp_path):
    out = tmp_path / "run"
    first = train(_tiny(epochs=1, out=str(out)))
    before = (out / "checkpoint.pt").read_bytes()
    again = train(_tiny(epochs=1, out=str(out), resume=str(out / "checkpoint.pt")))
    assert again.history == first.history and again.test_accuracy == first.test_accuracy
    assert (out / "checkpoint.pt").read_bytes() == before


@pytest.mark.parametrize(
    "change,message",
    [
        ({"lr": 0.02}, "lr is 0.01 in the checkpoint but 0.02 now"),
        ({"hidden": (17,)}, "hidden is [16] in the checkpoint but [17] now"),
        ({"epochs": 2}, "epochs is 1 in the checkpoint but 2 now"),
        ({"framework": "torch"}, "framework is 'snntorch' in the checkpoint but 'torch' now"),
        ({"seed": 5}, "seed is 0 in the checkpoint but 5 now"),
    ],
)
def test_resume_refuses_a_checkpoint_of_another_run(tmp_path, change, message):
    path = tmp_path / "run" / "checkpoint.pt"
    train(_tiny(epochs=1, out=str(path.parent)))
    with pytest.raises(CheckpointError) as info:
        train(_tiny(**{"epochs": 1, **change, "resume": str(path)}))
    assert str(path) in str(info.value) and message in str(info.value)


def test_resume_from_a_corrupt_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(CheckpointError, match="checkpoint.pt is not a readable checkpoint"):
        train(_tiny(resume=str(path)))


def test_resume_needs_the_training_state(tmp_path):
    from snn_singlestep.app.checkpoint import save_checkpoint

    out = tmp_path / "run"
    train(_tiny(epochs=1, out=str(out)))
    data = load_checkpoint(out / "checkpoint.pt")
    del data["optimizer"]
    save_checkpoint(out / "weights-only.pt", data)
    with pytest.raises(CheckpointError, match="weights-only.pt cannot resume training: missing "
                                              "or mismatched optimizer"):
        train(_tiny(epochs=1, resume=str(out / "weights-only.pt")))


@pytest.mark.slow
def test_preact_resnet_trains_on_digits(tmp_path):
    result = train(_tiny(model="preact-resnet", depth=8, width=4, epochs=6, out=str(tmp_path)))
    losses = [r["train_loss"] for r in result.history]
    assert all(math.isfinite(v) for v in losses)
    assert os.path.exists(tmp_path / "checkpoint.pt")
    # It learns: the train loss falls every epoch, by more than 0.3 nats in all, and the
    # accuracies end above the 10 % of chance (200 test digits: chance is 10 ± 2 %).
    assert all(b < a for a, b in pairwise(losses)), losses
    assert losses[-1] < losses[0] - 0.3, losses
    assert result.history[-1]["train_accuracy"] > 0.25, result.history
    assert result.test_accuracy > 0.15, result.history
    # the saved state is the trained state: reloaded, it scores the same on the test split
    model, _ = model_from_checkpoint(tmp_path / "checkpoint.pt")
    _, test_set, _ = load_dataset("digits", limit=200)
    assert evaluate(model, test_set) == result.test_accuracy
