"""grader.lab.data: IDX files, the data folder, errors a user can act on, Batches, and the real MNIST."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grader.lab import data
from grader.lab.data import Batches, DataError, load_mnist, read_idx

ROOT = Path(__file__).resolve().parent.parent
LEARNKD = Path(sys.executable).with_name("learnkd")
# MNIST's published first labels (LeCun et al.'s files, as every MNIST tutorial prints them).
FIRST_TRAIN_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
FIRST_TEST_LABELS = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


# ---------------------------------------------------------------------------------------------------
# small IDX files written here


def idx_bytes(values: torch.Tensor) -> bytes:
    """An IDX file of unsigned bytes: 0 0 8 ndim, one big-endian uint32 per dimension, the values."""
    header = bytes([0, 0, 0x08, values.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in values.shape)
    return header + values.to(torch.uint8).contiguous().numpy().tobytes()


def write_idx(path: Path, values: torch.Tensor, compress: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = idx_bytes(values)
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def fake_mnist(root: Path, split: str = "train", n: int = 10, compress: bool = True, seed: int = 0):
    """A tiny split of MNIST-format files in ``root/MNIST/raw``; returns the images and labels written."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=g, dtype=torch.uint8)
    image_name, label_name, _ = data.SPLITS[split]
    raw = root / "MNIST" / "raw"
    write_idx(raw / image_name, images, compress)
    write_idx(raw / label_name, labels, compress)
    return images, labels


@pytest.fixture(autouse=True)
def fresh_cache():
    """load_raw keeps each split in memory; tests that write files must not see another test's."""
    data.load_raw.cache_clear()
    yield
    data.load_raw.cache_clear()


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain"])
def test_read_idx_gives_the_shape_and_values_written(tmp_path, compress):
    values = torch.arange(2 * 3 * 4, dtype=torch.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "x-idx3-ubyte", values, compress)
    got = read_idx(path)
    assert got.dtype == torch.uint8 and tuple(got.shape) == (2, 3, 4)
    assert torch.equal(got, values)


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain"])
def test_load_mnist_shapes_dtypes_and_normalisation(tmp_path, compress):
    images, labels = fake_mnist(tmp_path, "test", n=7, compress=compress)
    x, y = load_mnist("test", data_dir=tmp_path)
    assert x.dtype == torch.float32 and tuple(x.shape) == (7, 1, 28, 28)
    assert y.dtype == torch.int64 and tuple(y.shape) == (7,)
    assert y.tolist() == labels.tolist()
    # independent of grader.lab.data: scale to [0, 1], then standardise with MNIST's training mean and std
    want = (images.double() / 255.0 - 0.1307) / 0.3081
    assert torch.allclose(x[:, 0].double(), want, atol=1e-5)
    x3, y3 = load_mnist("test", data_dir=tmp_path, limit=3)
    assert tuple(x3.shape) == (3, 1, 28, 28) and torch.equal(x3, x[:3]) and torch.equal(y3, y[:3])


def test_load_mnist_returns_tensors_the_caller_may_change(tmp_path):
    fake_mnist(tmp_path, "test", n=4)
    x, y = load_mnist("test", data_dir=tmp_path)
    x_before, y_before = x.clone(), y.clone()
    x += 100
    y += 1
    x2, y2 = load_mnist("test", data_dir=tmp_path)  # served from the in-memory cache
    assert torch.equal(x2, x_before) and torch.equal(y2, y_before)


def test_unknown_split_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_mnist("validation", data_dir=tmp_path)


# ---------------------------------------------------------------------------------------------------
# which folder


def test_data_folder_order_argument_then_environment_then_user_cache(tmp_path, monkeypatch):
    explicit, env, cache = tmp_path / "explicit", tmp_path / "env", tmp_path / "cache"
    fake_mnist(explicit, "test", n=3, seed=1)
    fake_mnist(env, "test", n=4, seed=2)
    import platformdirs

    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda appname: str(cache / appname))
    fake_mnist(cache / "learnkd" / "data", "test", n=5, seed=3)

    monkeypatch.setenv("LEARNKD_DATA", str(env))
    assert data.resolve_data_dir(explicit) == (explicit, "from --data-dir")
    assert len(load_mnist("test", data_dir=explicit)[1]) == 3
    assert data.resolve_data_dir(None)[0] == env
    assert "LEARNKD_DATA" in data.resolve_data_dir(None)[1]
    assert len(load_mnist("test")[1]) == 4
    monkeypatch.delenv("LEARNKD_DATA")
    assert data.default_data_dir() == cache / "learnkd" / "data"
    assert data.resolve_data_dir(None)[0] == cache / "learnkd" / "data"
    assert len(load_mnist("test")[1]) == 5


def test_data_folder_argument_expands_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.resolve_data_dir("~/mnist")[0] == tmp_path / "mnist"


# ---------------------------------------------------------------------------------------------------
# broken files and no data: DataError, one paragraph, naming the file


def assert_one_paragraph(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message, message


def test_truncated_plain_file_names_the_file(tmp_path):
    fake_mnist(tmp_path, "test", n=5, compress=False)
    labels = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-2])
    with pytest.raises(DataError) as info:
        load_mnist("test", data_dir=tmp_path)
    message = str(info.value)
    assert str(labels) in message and "truncated" in message and "(5,)" in message
    assert_one_paragraph(message)


def test_truncated_gzip_file_names_the_file(tmp_path):
    fake_mnist(tmp_path, "test", n=50, compress=True)
    images = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
    with pytest.raises(DataError) as info:
        load_mnist("test", data_dir=tmp_path)
    assert str(images) in str(info.value) and "corrupt or truncated" in str(info.value)
    assert_one_paragraph(str(info.value))


def test_garbage_in_a_gzip_file_names_the_file(tmp_path):
    fake_mnist(tmp_path, "test", n=5, compress=True)
    images = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(DataError) as info:
        load_mnist("test", data_dir=tmp_path)
    assert str(images) in str(info.value)
    assert_one_paragraph(str(info.value))


def test_a_file_that_is_not_idx_names_the_file(tmp_path):
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(DataError, match="not an IDX file") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_images_and_labels_of_different_lengths_are_an_error(tmp_path):
    fake_mnist(tmp_path, "test", n=5)
    write_idx(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", torch.zeros(4, dtype=torch.uint8), True)
    with pytest.raises(DataError, match="do not match"):
        load_mnist("test", data_dir=tmp_path)


def test_the_files_are_checked_as_loading_checks_them_without_pytorch(tmp_path, mnist_dir):
    """`learnkd check` checks the data with check_split before the judge starts: the errors of load_raw, word for
    word, and no PyTorch in the command's own process (it would take seconds to load there for nothing)."""
    def errors(root: Path, split: str = "test") -> list[str | None]:
        """What check_split and load_raw raise on the same files (None: nothing)."""
        found = []
        for read in (data.check_split, data.load_raw):
            data.load_raw.cache_clear()
            try:
                read(split, root, "", False)
                found.append(None)
            except DataError as err:
                found.append(str(err))
        return found

    raw = Path("MNIST") / "raw"
    fake_mnist(tmp_path / "good", "test", n=5, compress=False)
    assert errors(tmp_path / "good") == [None, None]
    fake_mnist(tmp_path / "lengths", "test", n=5, compress=False)
    write_idx(tmp_path / "lengths" / raw / "t10k-labels-idx1-ubyte", torch.zeros(4, dtype=torch.uint8), False)
    fake_mnist(tmp_path / "truncated", "test", n=5, compress=False)
    images = tmp_path / "truncated" / raw / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:100])
    fake_mnist(tmp_path / "empty", "test", n=0, compress=False)
    for case, words in (("lengths", "do not match"), ("truncated", "truncated"), ("empty", "holds no values"),
                        ("good", "download is off")):
        split = "train" if case == "good" else "test"
        checked, loaded = errors(tmp_path / case, split)
        assert checked == loaded and words in checked, (case, checked, loaded)
    script = ("import sys; from grader.grading import check_data; check_data(sys.argv[1]); "
              "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    proc = subprocess.run([sys.executable, "-c", script, str(mnist_dir)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def failing_mnist(*args, **kwargs):
    """torchvision.datasets.MNIST offline: its download gives up with this kind of error."""
    raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://ossci-datasets.s3.amazonaws.com/"
                       "mnist/, got:\n<urlopen error [Errno -3] Temporary failure in name resolution>")


def test_no_data_and_no_internet_says_where_it_looked_and_how_to_fix_it(tmp_path, monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "MNIST", failing_mnist)
    with pytest.raises(DataError) as info:
        load_mnist("train", data_dir=tmp_path / "empty")
    message = str(info.value)
    assert_one_paragraph(message)
    assert str(tmp_path / "empty" / "MNIST" / "raw") in message and "from --data-dir" in message
    assert "train-images-idx3-ubyte" in message and "download" in message
    assert "--data-dir" in message and "LEARNKD_DATA" in message and "internet" in message
    assert "Temporary failure in name resolution" in message  # the reason, not only "Error downloading F:"


def test_no_data_from_the_environment_variable_says_so(tmp_path, monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "MNIST", failing_mnist)
    monkeypatch.setenv("LEARNKD_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="from the environment variable LEARNKD_DATA") as info:
        load_mnist("test")
    assert str(tmp_path / "nowhere") in str(info.value)


def test_no_data_with_download_off_is_an_error_without_network(tmp_path):
    with pytest.raises(DataError, match="download is off"):
        load_mnist("test", data_dir=tmp_path, download=False)


# ---------------------------------------------------------------------------------------------------
# Batches


def numbered(n: int):
    """x holds each example's index, so a batch says which examples it holds."""
    return torch.arange(n, dtype=torch.float32).reshape(n, 1), torch.arange(n)


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_give_every_example_once_per_epoch(shuffle):
    x, y = numbered(10)
    batches = Batches(x, y, batch_size=4, shuffle=shuffle, seed=3)
    for _ in range(2):
        seen = [(xb[:, 0].long().tolist(), yb.tolist()) for xb, yb in batches]
        assert [len(yb) for _, yb in seen] == [4, 4, 2]  # the last batch is partial
        assert all(xs == ys for xs, ys in seen)  # x and y stay paired
        assert sorted(i for _, ys in seen for i in ys) == list(range(10))


def test_batches_len_counts_the_partial_batch():
    x, y = numbered(10)
    assert len(Batches(x, y, batch_size=4)) == 3
    assert len(Batches(x, y, batch_size=5)) == 2
    assert len(Batches(x, y, batch_size=128)) == 1
    assert len(list(Batches(x, y, batch_size=4))) == len(Batches(x, y, batch_size=4))


def test_batches_without_shuffle_keep_the_order():
    x, y = numbered(10)
    assert [yb.tolist() for _, yb in Batches(x, y, batch_size=4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def epoch_orders(batches, epochs=2):
    return [[i for _, yb in batches for i in yb.tolist()] for _ in range(epochs)]


def test_shuffling_is_reproducible_and_epochs_differ():
    x, y = numbered(100)
    first = epoch_orders(Batches(x, y, batch_size=16, shuffle=True, seed=7))
    again = epoch_orders(Batches(x, y, batch_size=16, shuffle=True, seed=7))
    other = epoch_orders(Batches(x, y, batch_size=16, shuffle=True, seed=8))
    assert first == again  # same seed, same run
    assert first[0] != first[1]  # a new order every epoch
    assert first[0] != list(range(100))  # actually shuffled
    assert first != other


def test_shuffling_does_not_touch_the_global_random_state():
    x, y = numbered(50)
    torch.manual_seed(0)
    want = torch.rand(3)
    torch.manual_seed(0)
    list(Batches(x, y, batch_size=8, shuffle=True, seed=1))
    assert torch.equal(torch.rand(3), want)


def test_batches_reject_x_and_y_of_different_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        Batches(torch.zeros(3, 1), torch.zeros(4))


# ---------------------------------------------------------------------------------------------------
# the real MNIST


@pytest.fixture(scope="module")
def real_train(mnist_dir):
    return load_mnist("train", data_dir=mnist_dir)


def test_real_training_set(real_train):
    x, y = real_train
    assert tuple(x.shape) == (60_000, 1, 28, 28) and x.dtype == torch.float32
    assert tuple(y.shape) == (60_000,) and y.dtype == torch.int64
    assert y[:10].tolist() == FIRST_TRAIN_LABELS
    assert torch.bincount(y).tolist()[:2] == [5923, 6742]  # the training set's counts of 0s and 1s
    # normalised with the training set's own mean and std: mean ~0, std ~1 (to the 4 digits of 0.1307, 0.3081)
    assert abs(x.mean().item()) < 2e-3 and abs(x.std().item() - 1) < 2e-3
    assert x.min().item() == pytest.approx(-0.1307 / 0.3081, abs=1e-5)
    assert x.max().item() == pytest.approx((1 - 0.1307) / 0.3081, abs=1e-5)


def test_real_test_set(mnist_dir):
    x, y = load_mnist("test", data_dir=mnist_dir)
    assert tuple(x.shape) == (10_000, 1, 28, 28) and tuple(y.shape) == (10_000,)
    assert y[:10].tolist() == FIRST_TEST_LABELS
    assert sorted(set(y.tolist())) == list(range(10))


def test_real_batches_cover_the_training_set(real_train):
    x, y = real_train
    batches = Batches(x, y, batch_size=128)  # shuffled coverage is tested above on small data
    assert len(batches) == 469  # 468 full batches of 128 and one of 96
    sizes, total = [], torch.zeros(10, dtype=torch.long)
    for xb, yb in batches:
        sizes.append(len(yb))
        total += torch.bincount(yb, minlength=10)
    assert sizes[-1] == 96 and set(sizes[:-1]) == {128}
    assert torch.equal(total, torch.bincount(y, minlength=10))


# ---------------------------------------------------------------------------------------------------
# what a user sees: the real command, in a process of its own


def run_learnkd(args, cwd, **env):
    environment = {k: v for k, v in os.environ.items() if k != "LEARNKD_DATA"}
    environment.update(env)
    return subprocess.run([str(LEARNKD), *args], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def project(tmp_path):
    """A learner's folder: a copy of exercises/ (so nothing is written into the repository)."""
    shutil.copytree(ROOT / "exercises", tmp_path / "exercises", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


@pytest.mark.slow
def test_cli_without_data_and_offline_exits_2_with_the_paragraph(project):
    # offline here: torchvision's download fails for real (takes a few seconds)
    empty = project / "empty"
    empty.mkdir()
    proc = run_learnkd(["check", "all", "--data-dir", str(empty)], project)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    assert "MNIST was not found and could not be downloaded" in out
    assert str(empty.resolve() / "MNIST" / "raw") in out and "--data-dir" in out and "LEARNKD_DATA" in out


def test_cli_with_a_truncated_data_file_exits_2_naming_it(project, mnist_dir):
    raw = project / "data" / "MNIST" / "raw"
    shutil.copytree(Path(mnist_dir) / "MNIST" / "raw", raw)
    broken = raw / "t10k-labels-idx1-ubyte.gz"
    broken.chmod(0o644)
    broken.write_bytes(broken.read_bytes()[:1000])
    proc = run_learnkd(["check", "all", "--data-dir", str(project / "data")], project)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    assert str(broken.resolve()) in out and "truncated" in out
