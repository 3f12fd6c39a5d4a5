"""The training and prediction CLIs end to end, on the embedded sample and small files."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygraph as tg
from models import data as datasets
from models import network, predict, train
from models.init import init_params

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_train(*args: str) -> int:
    return train.main([*args, "--no-progress"])


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> Path:
    """A Kaggle-style train.csv of 600 real MNIST digits from the embedded sample."""
    sample = datasets.load("sample")
    images, labels = sample.train_images[::10][:600], sample.train_labels[::10][:600]
    path = tmp_path_factory.mktemp("kaggle") / "train.csv"
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    rows = [f"{y}," + ",".join(map(str, x.reshape(-1))) for x, y in zip(images, labels)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_network_gradient_is_right_for_every_activation():
    rng = np.random.default_rng(0)
    params = init_params((20, 8, 6, 3), method="xavier", seed=1)
    x, y = rng.random((5, 20)), rng.integers(0, 3, 5)
    for activation in network.ACTIVATIONS:
        tg.check_grads(lambda p, a=activation: network.loss(p, x, y, a), params, mode="full")
    assert network.layer_sizes(params) == (20, 8, 6, 3)


def test_tuned_run_on_the_sample_writes_every_output(tmp_path):
    out = tmp_path / "run"
    assert run_train("--epochs", "2", "--out", str(out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["preset"] == "tuned" and metrics["config"]["data"] == "sample"
    assert metrics["layer_sizes"] == [784, 64, 10]
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    keys = {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"}
    assert keys <= set(metrics["epochs"][0])
    assert metrics["test_accuracy"] > 0.8 and metrics["wall_seconds"] > 0
    assert metrics["epochs"][1]["train_loss"] < metrics["epochs"][0]["train_loss"]
    for name in ("curves.png", "confusion.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    assert "accuracy" in (out / "confusion.txt").read_text()
    assert "cluster_hidden" in (out / "graph.dot").read_text()
    if shutil.which("dot"):
        assert "sigmoid" in (out / "graph.svg").read_text()
    with np.load(out / "params.npz") as npz:
        assert npz["W1"].shape == (784, 64) and npz["W1"].dtype == np.float32
    assert not list(out.glob("*.tmp*")) and not list(out.glob(".*"))


def test_paper_preset_is_the_papers_setup(tmp_path):
    out = tmp_path / "paper"
    assert run_train("--preset", "paper", "--epochs", "2", "--out", str(out)) == 0
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert config | {"epochs": 100} == config | {
        "epochs": 100, "batch_size": 0, "lr": 0.01, "optimizer": "sgd", "init": "normal",
        "init_scale": 1.0, "activation": "sigmoid", "hidden": [64], "val_fraction": 0.2,
        "augment": "none", "schedule": "constant"}
    epochs = json.loads((out / "metrics.json").read_text())["epochs"]
    assert epochs[0]["val_accuracy"] is not None


def test_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch, capsys):
    common = ["--epochs", "3", "--batch-size", "256", "--seed", "5"]
    assert run_train(*common, "--out", str(tmp_path / "whole")) == 0

    real_save, saves = train.save_checkpoint, []

    def save_then_interrupt(*args, **kwargs):  # Ctrl-C right after epoch 2's checkpoint
        real_save(*args, **kwargs)
        saves.append(1)
        if len(saves) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train, "save_checkpoint", save_then_interrupt)
    assert run_train(*common, "--out", str(tmp_path / "part")) == 130
    assert (capsys.readouterr().err.strip() == "interrupted: continue the run after epoch 2 "
            f"with --resume {tmp_path / 'part'}")
    monkeypatch.setattr(train, "save_checkpoint", real_save)
    assert run_train("--resume", str(tmp_path / "part")) == 0
    with np.load(tmp_path / "whole" / "params.npz") as a, \
            np.load(tmp_path / "part" / "params.npz") as b:
        for key in ("W1", "b1", "W2", "b2"):
            assert np.array_equal(a[key], b[key])
    resumed = json.loads((tmp_path / "part" / "metrics.json").read_text())
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2, 3]


def test_kaggle_train_csv_has_no_test_split(tmp_path, small_csv):
    out = tmp_path / "kaggle"
    assert run_train("--data", str(small_csv), "--epochs", "1", "--val-fraction", "0.2",
                     "--out", str(out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] is None
    assert metrics["epochs"][0]["val_accuracy"] is not None
    assert "validation split" in (out / "confusion.txt").read_text()


@pytest.mark.parametrize("args, message", [
    (["--data", "imagenet"], "unknown data source 'imagenet'"),
    (["--data", "/no/such/dir/train.csv"], "no such file or directory"),
    (["--lr", "0"], "--lr must be a finite number > 0"),
    (["--val-fraction", "1.5"], "--val-fraction must be in [0, 1)"),
])
def test_bad_settings_are_one_line_errors(tmp_path, capsys, args, message):
    assert run_train(*args, "--epochs", "1", "--out", str(tmp_path / "x")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_unwritable_output_directory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert run_train("--epochs", "1", "--out", str(blocker / "run")) == 2
    assert "cannot write to output directory" in capsys.readouterr().err


def test_resume_errors(tmp_path, capsys):
    assert run_train("--resume", str(tmp_path)) == 2
    assert "no checkpoint.npz" in capsys.readouterr().err
    (tmp_path / "checkpoint.npz").write_bytes(b"not a zip")
    assert run_train("--resume", str(tmp_path)) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    out = tmp_path / "run"
    assert run_train("--epochs", "1", "--batch-size", "512", "--out", str(out)) == 0
    assert run_train("--resume", str(out), "--hidden", "32", "--epochs", "2") == 2
    err = capsys.readouterr().err
    assert "cannot continue with --hidden 32 (was 64)" in err


def test_module_entry_point_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "models.train", "--epochs", "1", "--batch-size", "1024",
         "--out", str(tmp_path / "cli")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and "epoch" in result.stderr  # tqdm's bar


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained")
    assert run_train("--epochs", "2", "--out", str(out)) == 0
    return out / "params.npz"


def test_predict_kaggle_test_csv_writes_a_submission(tmp_path, trained, capsys):
    sample = datasets.load("sample")
    csv = tmp_path / "test.csv"
    header = ",".join(f"pixel{i}" for i in range(784))
    rows = [",".join(map(str, x.reshape(-1))) for x in sample.test_images[:50]]
    csv.write_text(header + "\n" + "\n".join(rows) + "\n")
    out = tmp_path / "submission.csv"
    assert predict.main(["--params", str(trained), "--data", str(csv), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "ImageId,Label" and len(lines) == 51 and lines[1].startswith("1,")
    labels = np.array([int(line.split(",")[1]) for line in lines[1:]])
    assert np.mean(labels == sample.test_labels[:50]) > 0.7


def test_predict_labelled_sources_print_accuracy(tmp_path, trained, small_csv, capsys):
    out = tmp_path / "pred.csv"
    assert predict.main(["--params", str(trained), "--data", str(small_csv),
                         "--out", str(out)]) == 0
    assert "accuracy 0." in capsys.readouterr().out


def test_predict_png_images(tmp_path, trained, capsys):
    from PIL import Image

    sample = datasets.load("sample")
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(5):  # dark ink on white paper, larger than MNIST, as a photo would be
        picture = Image.fromarray(255 - sample.test_images[i]).resize((84, 84))
        picture.convert("RGB").save(folder / f"digit{i}.png")
    out = tmp_path / "pred.csv"
    assert predict.main(["--params", str(trained), "--data", str(folder), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "File,Label,Error" and lines[1].startswith("digit0.png,")
    guesses = np.array([int(line.split(",")[1]) for line in lines[1:]])
    assert np.mean(guesses == sample.test_labels[:5]) >= 0.6


def test_predict_errors(tmp_path, trained, capsys):
    assert predict.main(["--params", str(tmp_path / "none.npz"), "--data", ".", "--out",
                         str(tmp_path / "o.csv")]) == 2
    (tmp_path / "bad.npz").write_bytes(b"junk")
    assert predict.main(["--params", str(tmp_path / "bad.npz"), "--data", ".", "--out",
                         str(tmp_path / "o.csv")]) == 2
    assert predict.main(["--params", str(trained), "--data", str(tmp_path / "nothing"),
                         "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert not (tmp_path / "o.csv").exists()


def test_full_mnist_one_epoch(tmp_path, mnist_dir):
    out = tmp_path / "mnist"
    assert run_train("--data", str(mnist_dir), "--epochs", "1", "--augment", "none",
                     "--out", str(out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.90


def test_traced_training_equals_eager_training(tmp_path):
    for flag in ("--trace", "--no-trace"):
        assert run_train("--epochs", "1", "--batch-size", "500", flag,
                         "--out", str(tmp_path / flag)) == 0
    with np.load(tmp_path / "--trace" / "params.npz") as a, \
            np.load(tmp_path / "--no-trace" / "params.npz") as b:
        for key in ("W1", "b1", "W2", "b2"):
            assert np.array_equal(a[key], b[key])


def test_an_existing_run_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_train("--epochs", "1", "--batch-size", "1000", "--out", str(out)) == 0
    before = (out / "metrics.json").read_bytes()
    assert run_train("--epochs", "1", "--out", str(out)) == 2
    assert "holds a run already: continue it with --resume" in capsys.readouterr().err
    assert (out / "metrics.json").read_bytes() == before


def test_missing_models_extra_is_one_line(monkeypatch, capsys, tmp_path):
    import models

    monkeypatch.setitem(models.EXTRA, "no_such_module_for_tinygraph", "no-such-package")
    for main in (train.main, predict.main):
        args = ["--params", "p", "--data", "d", "--out", "o"] if main is predict.main else []
        assert main(args) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["error: the models tools need no-such-package; install them with "
                   "pip install -e '.[models]'"] * 2


def test_pickled_npz_is_refused_without_numpys_advice(tmp_path, capsys):
    bad = tmp_path / "params.npz"
    np.savez(bad, W1=np.array([{"a": 1}], dtype=object))
    assert predict.main(["--params", str(bad), "--data", ".", "--out",
                         str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "holds Python objects, which are never loaded" in err and "allow_pickle" not in err


def test_the_next_epoch_is_made_in_a_second_thread_in_order_and_errors_surface():
    """Issue 10 (the tuned preset end to end): epoch k+1's images are shuffled and augmented
    while epoch k trains. Same items in the same order, an error of the maker raised at its
    item, and no thread left behind when the loop ends or is left early."""
    import threading

    from models.train import prefetched

    def workers():
        return [t for t in threading.enumerate() if t.name.startswith("tinygraph-data")]

    made_in = []

    def make(item):
        made_in.append(threading.current_thread().name)
        return item * item

    assert list(prefetched(make, range(3, 7))) == [(3, 9), (4, 16), (5, 25), (6, 36)]
    assert all(name.startswith("tinygraph-data") for name in made_in)
    assert list(prefetched(make, range(0))) == [] and not workers()

    def failing(item):
        if item == 2:
            raise ValueError("item 2 is bad")
        return item

    seen = []
    with pytest.raises(ValueError, match="item 2 is bad"):
        for _item, made in prefetched(failing, range(5)):
            seen.append(made)
    assert seen == [0, 1] and not workers()
    loop = prefetched(make, range(10))
    next(loop)
    loop.close()  # a loop left early (an error while training) shuts the thread down
    assert not workers()


@pytest.mark.parametrize("name, options", [
    ("sgd", {}),
    ("momentum", {"weight_decay": 1e-2}),
    ("nesterov", {"weight_decay": 5e-5}),
    ("adam", {"weight_decay": 1e-3}),
    ("adamw", {"weight_decay": 1e-2}),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_compiled_training_step_is_the_eager_one_bit_for_bit(name, options, dtype):
    """Issue 10: models.train's default step is one compiled program (forward, backward and
    the optimizer's update, parameters and slots donated); the learning rate of a schedule and
    Adam's bias corrections are inputs of it, so the program is traced once per batch shape,
    and every parameter and slot equals the eager step's (value_and_grad, then update)."""
    from models import optim
    from models.init import init_params
    from models.train import compiled_step, eager_step

    rng = np.random.default_rng(0)
    schedule = optim.cosine(0.3, total_steps=12, warmup_steps=2)
    optimizer = optim.get_optimizer(name, lr=schedule, weight_decay_mask=lambda path, p:
                                    p.ndim > 1, inplace_state=True, **options)
    params = init_params((12, 7, 3), method="he", seed=1, dtype=dtype)
    batches = [(rng.random((rows, 12)).astype(dtype), rng.integers(0, 3, rows))
               for rows in (5, 5, 5, 2, 5, 5, 2)]  # a last partial batch, twice
    results = []
    for make in (eager_step, compiled_step):
        step = make(optimizer)
        p = {k: v.copy() for k, v in params.items()}
        state = optimizer.init(p)
        losses = []
        for x, y in batches:
            value, p, state = step(p, state, x, y, "sigmoid")
            losses.append(float(value))
        results.append((losses, p, optim.state_to_arrays(state)))
    (eager_losses, eager_p, eager_state), (losses, p, state) = results
    assert losses == eager_losses
    for k in params:
        assert p[k].dtype == dtype and np.array_equal(p[k], eager_p[k]), k
    assert state.keys() == eager_state.keys()
    for k in state:
        assert np.array_equal(state[k], eager_state[k]), k
    assert step.program.trace_count == 2  # one per batch shape, not one per learning rate
