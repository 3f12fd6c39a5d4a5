"""Failed training never looks like success; runs never share a folder (issue 12, items 4-5)."""

import numpy as np
import pytest

from models import train


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
