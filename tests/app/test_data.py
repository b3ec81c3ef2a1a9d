"""Datasets: bundled digits and torchvision's on-disk formats, read from fake files."""

import math

import numpy as np
import _fake_datasets as fake
import pytest
import torch

from snn_singlestep.app.data import (
    DATASETS,
    ImageTensorDataset,
    dataset_spec,
    load_dataset,
    load_digits_split,
)
from snn_singlestep.errors import ConfigError




@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    fake.block_network(monkeypatch)


def _pixels(x: torch.Tensor, name: str) -> np.ndarray:
    """Undo the normalization: back to the uint8 values in the file."""
    spec = dataset_spec(name)
    mean = torch.tensor(spec.mean).view(-1, 1, 1)
    std = torch.tensor(spec.std).view(-1, 1, 1)
    return torch.round((x * std + mean) * 255).to(torch.uint8).numpy()


def test_dataset_names_and_shapes():
    assert DATASETS == ("digits", "mnist", "fashion-mnist", "cifar10")
    assert dataset_spec("digits").in_shape == (1, 8, 8) and dataset_spec("digits").bundled
    assert dataset_spec("mnist").in_shape == (1, 28, 28)
    assert dataset_spec("fashion-mnist").in_shape == (1, 28, 28)
    assert dataset_spec("cifar10").in_shape == (3, 32, 32)
    assert all(dataset_spec(n).num_classes == 10 for n in DATASETS)


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="digits, mnist, fashion-mnist, cifar10; got 'svhn'"):
        dataset_spec("svhn")
    with pytest.raises(ConfigError, match="got 'svhn'"):
        load_dataset("svhn")


def test_digits_images_are_the_flat_digits_reshaped():
    flat_train, flat_test = load_digits_split(seed=3)
    train, test, spec = load_dataset("digits", seed=3)
    assert spec.name == "digits" and len(train) == 1437 and len(test) == 360
    x, y = train[5]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.long
    assert torch.equal(x.flatten(), flat_train[5][0]) and int(y) == int(flat_train[5][1])
    assert torch.equal(test[359][0].flatten(), flat_test[359][0])
    assert float(train.tensors[0].max()) == 1.0 and float(train.tensors[0].min()) == 0.0


def test_digits_split_depends_on_seed_only():
    a, _, _ = load_dataset("digits", seed=0)
    b, _, _ = load_dataset("digits", seed=0)
    c, _, _ = load_dataset("digits", seed=1)
    assert torch.equal(a.tensors[0], b.tensors[0])
    assert not torch.equal(a.tensors[0], c.tensors[0])


def test_limit_keeps_the_first_samples():
    full, full_test, _ = load_dataset("digits")
    train, test, _ = load_dataset("digits", limit=10)
    assert len(train) == 10 and len(test) == 10
    assert torch.equal(train[9][0], full[9][0]) and torch.equal(test[3][0], full_test[3][0])
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match=r"limit must be an int >= 1 \(samples per split"):
            load_dataset("digits", limit=bad)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_mnist_idx_files_are_read_pixel_for_pixel(name, tmp_path):
    arrays = fake.write_mnist(tmp_path, name, n_train=12, n_test=7)
    train, test, spec = load_dataset(name, root=tmp_path)
    assert (len(train), len(test)) == (12, 7) and spec.in_shape == (1, 28, 28)
    for data, split in ((train, "train"), (test, "t10k")):
        for i in (0, len(data) - 1):
            x, y = data[i]
            assert x.shape == (1, 28, 28) and x.dtype == torch.float32
            np.testing.assert_array_equal(_pixels(x, name)[0], arrays[f"{split}_images"][i])
            assert int(y) == int(arrays[f"{split}_labels"][i])


def test_mnist_normalization_constants(tmp_path):
    fake.write_mnist(tmp_path, "mnist", n_train=2, n_test=2)
    train, _, _ = load_dataset("mnist", root=tmp_path)
    images = train.images.clone()
    images[0].fill_(0)
    images[1].fill_(255)
    train.images = images
    assert torch.allclose(train[0][0], torch.full((1, 28, 28), (0 - 0.1307) / 0.3081))
    assert torch.allclose(train[1][0], torch.full((1, 28, 28), (1 - 0.1307) / 0.3081))


def test_cifar10_pickle_batches_are_read_in_channel_order(tmp_path, monkeypatch):
    arrays = fake.write_cifar10(tmp_path, per_batch=3, n_test=4)
    fake.patch_cifar10_md5(monkeypatch, tmp_path)
    train, test, spec = load_dataset("cifar10", root=tmp_path)
    assert (len(train), len(test)) == (15, 4) and spec.in_shape == (3, 32, 32)
    # Sample 4 is the second row of data_batch_2; rows hold the R, G and B planes in turn.
    data, labels = arrays["data_batch_2"]
    x, y = train[4]
    assert x.shape == (3, 32, 32)
    np.testing.assert_array_equal(_pixels(x, "cifar10"), data[1].reshape(3, 32, 32))
    assert int(y) == labels[1]
    data, labels = arrays["test_batch"]
    np.testing.assert_array_equal(_pixels(test[3][0], "cifar10"), data[3].reshape(3, 32, 32))
    assert int(test[3][1]) == labels[3]


def test_cifar10_files_that_fail_the_checksum_are_refused(tmp_path):
    fake.write_cifar10(tmp_path, per_batch=2, n_test=2)  # md5 table not patched
    with pytest.raises(ConfigError, match=r"cifar10 train split not found or corrupted under "
                                          r".*cifar-10-batches-py; pass --download"):
        load_dataset("cifar10", root=tmp_path)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_non_bundled_dataset_needs_a_root_or_download(name):
    with pytest.raises(ConfigError, match=f"dataset '{name}' is not bundled: give its directory "
                                          "with --data-root"):
        load_dataset(name)


def test_missing_files_say_where_they_were_looked_for(tmp_path):
    with pytest.raises(ConfigError, match=r"mnist train split not found or corrupted under "
                                          r".*MNIST/raw; pass --download to fetch it"):
        load_dataset("mnist", root=tmp_path)


def test_corrupt_idx_file_is_a_clear_error(tmp_path):
    fake.write_mnist(tmp_path, "mnist", n_train=4, n_test=4)
    (tmp_path / "MNIST/raw/train-images-idx3-ubyte").write_bytes(b"\x00\x00\x00\x00garbage")
    with pytest.raises(ConfigError, match=r"cannot read mnist from .*MNIST/raw"):
        load_dataset("mnist", root=tmp_path)


def test_image_tensor_dataset_checks_its_input():
    with pytest.raises(ConfigError, match="uint8 tensor"):
        ImageTensorDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2))
    with pytest.raises(ConfigError, match=r"targets must have shape \[2\]"):
        ImageTensorDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3))
    ds = ImageTensorDataset(torch.full((1, 2, 1, 1), 51, dtype=torch.uint8), torch.tensor([7]))
    x, y = ds[0]  # no mean/std: plain [0, 1] pixels
    assert torch.allclose(x.flatten(), torch.tensor([0.2, 0.2])) and int(y) == 7
    assert math.isclose(float(x[0, 0, 0]), 51 / 255, rel_tol=1e-6)
