"""Failed training never looks like success; runs never share a folder; resuming keeps the
run's settings; interruptions and write failures say what was kept (issue 12, items 4-6)."""

import errno
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from models import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("flags, message", [
    (["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
    (["--lr", "inf"], "--lr must be a finite number > 0, got inf"),
    (["--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
    (["--weight-decay", "nan"], "--weight-decay must be a finite number >= 0, got nan"),
    (["--weight-decay", "-1"], "--weight-decay must be a finite number >= 0, got -1.0"),
    (["--warmup-epochs", "inf"], "--warmup-epochs must be a finite number >= 0, got inf"),
    (["--epochs", "-1"], "--epochs must be >= 0, got -1"),
    (["--batch-size", "-5"], "--batch-size must be >= 0, got -5"),
])
def test_each_bad_number_is_one_line_naming_its_flag(flags, message, tmp_path, capsys):
    assert train.main([*flags, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {message}"


def test_a_diverging_run_stops_with_an_error_and_keeps_its_last_good_checkpoint(tmp_path,
                                                                                capsys):
    out = tmp_path / "run"
    with np.errstate(all="ignore"):
        code = train.main(["--lr", "1e6", "--epochs", "2",
                           "--out", str(out), "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: the loss became") and "learning rate too large?" in err
    assert not (out / "metrics.json").exists()  # no result that looks like a finished run


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    config = train.build_config(*train.parse_args([]))
    folders = [train.new_out_dir(config, root=tmp_path) for _ in range(5)]
    assert len(set(folders)) == 5 and all(folder.is_dir() for folder in folders)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in folders)


# --- resuming (issue 12, item 6): settings it cannot honour are refused, what ran is recorded


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A two-epoch run on the sample, copied afresh by each test that resumes it."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert train.main(["--epochs", "2", "--batch-size", "512", "--seed", "3",
                       "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path):
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


@pytest.mark.parametrize("flags, named", [
    (["--lr", "0.1"], ["--lr 0.1 (was 0.5)"]),
    (["--optimizer", "adam", "--dtype", "float64"],
     ["--dtype float64 (was float32)", "--optimizer adam (was nesterov)"]),
    (["--preset", "paper"], ["--preset paper (was tuned)"]),
    (["--arch", "cnn"], ["--arch cnn (was mlp)"]),
    (["--hidden", "32,16"], ["--hidden 32,16 (was 64)"]),
    (["--data", "mnist"], ["--data mnist (was sample)"]),
])
def test_resume_refuses_settings_it_cannot_honour_naming_each(run_copy, flags, named, capsys):
    before = (run_copy / "checkpoint.npz").read_bytes()
    assert train.main(["--resume", str(run_copy), *flags, "--epochs", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --resume {run_copy}: a resumed run keeps the settings")
    assert "\n" not in err and all(text in err for text in named), err
    assert (run_copy / "checkpoint.npz").read_bytes() == before  # nothing ran


def test_resume_with_a_flag_equal_to_the_saved_setting_is_accepted(run_copy):
    assert train.main(["--resume", str(run_copy), "--lr", "0.5", "--optimizer", "nesterov",
                       "--epochs", "3", "--no-progress"]) == 0


def test_resume_records_what_ran(run_copy):
    assert train.main(["--resume", str(run_copy), "--epochs", "4", "--train-eval", "100",
                       "--no-progress"]) == 0
    metrics = json.loads((run_copy / "metrics.json").read_text())
    assert metrics["resumes"] == [{"after_epoch": 2, "changed": {
        "epochs": {"was": 2, "now": 4}, "train_eval": {"was": 0, "now": 100}}}]
    assert metrics["config"]["epochs"] == 4
    rates = [epoch["lr"] for epoch in metrics["epochs"]]
    # Epochs 1-2 ran a cosine over 2 epochs (ending near 0); 3-4 one stretched over 4 epochs.
    assert len(rates) == 4 and rates[1] < 0.01 and rates[2] > 0.05 and rates[3] < rates[2]
    # A second resume adds to the record.
    assert train.main(["--resume", str(run_copy), "--epochs", "5", "--no-progress"]) == 0
    metrics = json.loads((run_copy / "metrics.json").read_text())
    assert [r["after_epoch"] for r in metrics["resumes"]] == [2, 4]
    # (--train-eval 100 stays: a resumed run keeps what it last ran with)
    assert metrics["resumes"][1]["changed"] == {"epochs": {"was": 4, "now": 5}}
    assert metrics["config"]["train_eval"] == 100


def test_a_fresh_run_records_each_epochs_learning_rate(finished_run):
    metrics = json.loads((finished_run / "metrics.json").read_text())
    assert metrics["resumes"] == []
    # 10,000 images in batches of 512: 20 steps an epoch, a warm-up of one epoch (to 0.5 at
    # step 19), then a cosine over the 20 steps left: step 39 is at s = 19/20.
    expected = [0.5, 0.5 * (1 + math.cos(math.pi * 19 / 20)) / 2]
    assert [e["lr"] for e in metrics["epochs"]] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("fraction, message", [
    ("0.00001", "--val-fraction 1e-05 of 10000 images leaves no validation image"),
    ("0.99999", "--val-fraction 0.99999 of 10000 images leaves no training image"),
])
def test_a_validation_fraction_that_empties_a_split_is_one_line(fraction, message, tmp_path,
                                                                 capsys):
    assert train.main(["--val-fraction", fraction, "--epochs", "1",
                       "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {message}") and "from 5e-05 to 0.99995" in err


@pytest.mark.parametrize("flag", ["--threads", "--train-eval"])
def test_threads_and_train_eval_have_their_own_messages(flag, tmp_path, capsys):
    assert train.main([flag, "-1", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {flag} must be >= 0, got -1"


# --- interruptions and write failures name the run folder and what was kept


def test_ctrl_c_before_the_first_checkpoint_says_nothing_was_saved(tmp_path, monkeypatch,
                                                                    capsys):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train.network, "evaluate", interrupt)  # during epoch 1's scoring
    out = tmp_path / "run"
    assert train.main(["--epochs", "2", "--out", str(out), "--no-progress"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted: nothing was written"
    assert not out.exists()  # the folder this run made, empty, is removed again


def test_a_run_that_fails_before_writing_leaves_no_empty_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert train.main(["--data", str(tmp_path / "none.csv"), "--no-progress"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert list((tmp_path / "runs").iterdir()) == []
    kept = tmp_path / "mine"
    kept.mkdir()  # a folder the user made is never removed
    assert train.main(["--data", str(tmp_path / "none.csv"), "--out", str(kept),
                       "--no-progress"]) == 2
    assert kept.is_dir()


def test_disk_full_mid_run_is_one_line_naming_the_file_and_what_was_kept(tmp_path, monkeypatch,
                                                                          capsys):
    real_save = train.save_checkpoint

    def fill_the_disk(path, *args, **kwargs):
        if path.exists():  # the second checkpoint: the disk is full now
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_save(path, *args, **kwargs)

    monkeypatch.setattr(train, "save_checkpoint", fill_the_disk)
    out = tmp_path / "run"
    assert train.main(["--epochs", "3", "--batch-size", "512", "--out", str(out),
                       "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: cannot write {out / 'checkpoint.npz'}: No space left on device; "
                   f"continue the run after epoch 1 with --resume {out}")
    assert not (out / "metrics.json").exists()


def test_a_folder_made_read_only_mid_run_is_one_line(tmp_path, monkeypatch, capsys):
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod cannot make a folder read-only for this process "
                    "(the disk-full test covers the same path)")
    real_save, out = train.save_checkpoint, tmp_path / "run"

    def lock_after_first(path, *args, **kwargs):
        real_save(path, *args, **kwargs)
        out.chmod(0o555)

    monkeypatch.setattr(train, "save_checkpoint", lock_after_first)
    try:
        assert train.main(["--epochs", "3", "--batch-size", "512", "--out", str(out),
                           "--no-progress"]) == 2
    finally:
        out.chmod(0o755)
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot write") and "Permission denied" in err
    assert err.endswith(f"continue the run after epoch 1 with --resume {out}")


def test_killed_and_resumed_runs_end_with_the_uninterrupted_parameters(tmp_path):
    """SIGKILL at random points, resume each time: the same bits as a run never stopped."""
    flags = ["--epochs", "6", "--batch-size", "128", "--seed", "11", "--no-progress"]
    assert train.main([*flags, "--out", str(tmp_path / "whole")]) == 0
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "models.train", *flags, "--out", str(out)]
    kills = 0
    for _ in range(2):
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        seen = _epoch_saved(out)
        deadline = time.monotonic() + 120
        while process.poll() is None and _epoch_saved(out) == seen:  # kill mid-epoch
            assert time.monotonic() < deadline
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if not (out / "metrics.json").exists():
            kills += 1
        command = [sys.executable, "-m", "models.train", "--resume", str(out), "--no-progress"]
    assert kills >= 1  # at least one kill landed before the end
    assert subprocess.run(command, cwd=ROOT, capture_output=True).returncode == 0
    with np.load(tmp_path / "whole" / "params.npz") as a, np.load(out / "params.npz") as b:
        assert all(np.array_equal(a[key], b[key]) for key in ("W1", "b1", "W2", "b2"))


def _epoch_saved(out: Path) -> int:
    try:
        return train.load_checkpoint(out)[0]["epoch"]
    except train.UsageError:
        return 0


def test_resume_refuses_fewer_epochs_than_done_and_another_out(run_copy, tmp_path, capsys):
    assert train.main(["--resume", str(run_copy), "--epochs", "1", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --resume {run_copy}: the run has trained 2 epochs already; --epochs 1 would "
        "end before them (give --epochs >= 2)")
    other = tmp_path / "other"
    assert train.main(["--resume", str(run_copy), "--out", str(other), "--epochs", "3",
                       "--no-progress"]) == 2
    assert "continues the run in its own folder; drop --out" in capsys.readouterr().err
    assert not other.exists()
    assert train.main(["--resume", str(run_copy), "--preset", "paper", "--no-progress"]) == 2
    assert capsys.readouterr().err.count("--preset paper (was tuned)") == 1


def test_wall_seconds_count_every_session_of_a_resumed_run(run_copy):
    first = json.loads((run_copy / "metrics.json").read_text())["wall_seconds"]
    assert train.main(["--resume", str(run_copy), "--epochs", "3", "--no-progress"]) == 0
    metrics = json.loads((run_copy / "metrics.json").read_text())
    assert metrics["wall_seconds"] > first
    assert metrics["wall_seconds"] >= sum(epoch["seconds"] for epoch in metrics["epochs"])
