"""Three robustness leftovers of ``models/``: a Kaggle CSV that decompresses without bound (a gzip
bomb) is refused in bounded memory and time; a picture named like a spreadsheet formula is
written to the predictions CSV as text; ``models.render`` refuses an ``--out`` whose suffix
contradicts ``--format`` instead of drawing to another name."""

from __future__ import annotations

import csv
import gzip
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from local_http import one_line, synthetic
from PIL import Image

from models import data, predict, render
from models.data import DataError, kaggle

PIXELS = [f"pixel{i}" for i in range(784)]
TRAIN_HEADER = ",".join(["label", *PIXELS]).encode() + b"\n"


def kaggle_rows(images: np.ndarray, labels: np.ndarray) -> list[bytes]:
    """The data lines of a Kaggle train.csv holding ``images`` and ``labels``."""
    flat = images.reshape(len(images), -1)
    return [",".join(map(str, [int(label), *row.tolist()])).encode()
            for label, row in zip(labels, flat)]


def gzip_file(path: Path, head: bytes, repeat: bytes = b"", times: int = 0) -> Path:
    """Write gzip data: ``head``, then ``repeat`` ``times`` times, compressed once and repeated
    as whole gzip members (valid gzip, read as their concatenation), so a file of a few hundred
    KB that decompresses to hundreds of MB is built in a fraction of a second."""
    with open(path, "wb") as out:
        out.write(gzip.compress(head, mtime=0))
        if times:
            member = gzip.compress(repeat, compresslevel=9, mtime=0)
            for _ in range(times):
                out.write(member)
    return path


def measured(call: Callable[[], object]) -> tuple[pytest.ExceptionInfo[DataError], float, int]:
    """Run ``call``, which must raise DataError; return it, the seconds and the peak bytes that
    tracemalloc saw (NumPy reports its buffers to tracemalloc too)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DataError) as exc:
            call()
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return exc, elapsed, peak


# ---------------------------------------------------------------------------------------------
# 1. Kaggle CSV: what is decompressed and kept is bounded
# ---------------------------------------------------------------------------------------------

MIB = 1 << 20


@pytest.mark.parametrize("head", [b"", TRAIN_HEADER], ids=["zeros only", "header then zeros"])
def test_kaggle_gzip_bomb_of_one_endless_line_is_refused_in_bounded_memory(tmp_path, head):
    """64 MiB of zero bytes, no line break: before, the header's readline (or the bulk parse,
    then the error locator's full read) held all of it, several times over."""
    bomb = gzip_file(tmp_path / "train.csv.gz", head, bytes(16 * MIB), 4)
    assert bomb.stat().st_size < 300_000
    exc, elapsed, peak = measured(lambda: data.read_kaggle_csv(bomb))
    message = one_line(exc)
    line = 1 if not head else 2
    assert message.startswith(f"{bomb}, line {line}: longer than {kaggle._MAX_CSV_LINE} bytes")
    assert peak < 8 * MIB, f"reading the bomb took {peak / MIB:.0f} MiB"
    assert elapsed < 2, f"refusing the bomb took {elapsed:.1f} s"


def test_kaggle_gzip_bomb_of_valid_rows_stops_at_the_line_limit(tmp_path, monkeypatch):
    """Valid rows repeated: refused once more lines than the limit arrive, without keeping more
    rows than the limit (patched down from 250,000 to keep the test small)."""
    monkeypatch.setattr(kaggle, "_MAX_CSV_LINES", 2_000)
    images, labels = synthetic(10, seed=5)
    images[images < 200] = 0  # mostly zeros, as MNIST: compresses well
    rows = b"\n".join(kaggle_rows(images, labels)) + b"\n"
    bomb = gzip_file(tmp_path / "train.csv.gz", TRAIN_HEADER, rows * 50, 400)  # 200,000 rows
    exc, elapsed, peak = measured(lambda: data.read_kaggle_csv(bomb))
    assert one_line(exc) == (f"{bomb}: more than 2000 lines after the header (Kaggle's "
                             "train.csv has 42,000 rows): not read, so that memory and time "
                             "stay bounded")
    assert peak < 8 * MIB, f"reading the bomb took {peak / MIB:.0f} MiB"
    assert elapsed < 2, f"refusing the bomb took {elapsed:.1f} s"


def test_kaggle_gzip_bomb_of_blank_lines_stops_at_the_line_limit(tmp_path):
    """Blank lines hold no rows, but they count: 64 MiB of line breaks stop after 250,000."""
    bomb = gzip_file(tmp_path / "train.csv.gz", TRAIN_HEADER, b"\n" * (16 * MIB), 4)
    exc, elapsed, peak = measured(lambda: data.read_kaggle_csv(bomb))
    assert one_line(exc).startswith(f"{bomb}: more than 250000 lines after the header")
    assert peak < 24 * MIB, f"reading the bomb took {peak / MIB:.0f} MiB"
    assert elapsed < 2, f"refusing the bomb took {elapsed:.1f} s"


def test_kaggle_decompressed_size_is_limited(tmp_path, monkeypatch):
    """Long lines under the line limit (padded with leading zeros: valid values) would take
    time to parse: the decompressed size stops them (1 GiB, patched down to 1 MiB)."""
    monkeypatch.setattr(kaggle, "_MAX_CSV_BYTES", MIB)
    row = b",".join([b"3", *[b"0" * 15] * 784]) + b"\n"  # 12,545 bytes, a valid row
    bomb = gzip_file(tmp_path / "train.csv.gz", TRAIN_HEADER, row * 100, 10)
    exc, _, peak = measured(lambda: data.read_kaggle_csv(bomb))
    assert one_line(exc) == (f"{bomb}: more than {MIB} bytes of CSV text once decompressed "
                             "(Kaggle's train.csv is 76 MB): not read, so that memory and time "
                             "stay bounded")
    assert peak < 8 * MIB, f"reading the bomb took {peak / MIB:.0f} MiB"
    monkeypatch.setattr(kaggle, "_MAX_CSV_BYTES", 16 * MIB)  # the same rows, under the limit
    images, labels = data.read_kaggle_csv(bomb)
    assert images.shape == (1000, 28, 28) and not images.any() and set(labels) == {3}


def test_kaggle_limits_are_generous_for_the_real_files():
    # Kaggle's train.csv: 42,000 rows, 76 MB; a row of 785 values of 255 is 3,137 bytes and
    # the header with every name quoted is 8,521 bytes.
    quoted_header = ",".join(f'"{name}"' for name in ["label", *PIXELS])
    assert len(quoted_header) == 8_521 < kaggle._MAX_CSV_LINE
    assert len(",".join(["9", *["255"] * 784])) == 3_137
    assert kaggle._MAX_CSV_LINES >= 5 * 42_000
    assert kaggle._MAX_CSV_BYTES >= 10 * 76_000_000


def test_kaggle_bad_last_line_of_a_gzip_file_is_found_without_a_second_read(tmp_path):
    """Before, the error locator read the whole decompressed file again (bytes and a list of
    lines): now the file is read once, block by block, and the bad block is checked line by
    line where it is."""
    images, labels = synthetic(40, seed=6)
    rows = kaggle_rows(images, labels) * 250  # 10,000 rows, ~30 MB of text
    fields = rows[0].split(b",")
    fields[1] = b"7.5"
    rows.append(b",".join(fields))
    path = tmp_path / "train.csv.gz"
    path.write_bytes(gzip.compress(TRAIN_HEADER + b"\n".join(rows) + b"\n", compresslevel=1))
    exc, _, peak = measured(lambda: data.read_kaggle_csv(path))
    assert one_line(exc) == f"{path}, line 10002: pixel0 is not an integer: '7.5'"
    # what is kept: the 10,000 good rows as uint8 (7.9 MB), and one block of text
    assert peak < 16 * MIB, f"finding the bad line took {peak / MIB:.0f} MiB"


def test_kaggle_file_read_in_blocks_keeps_line_numbers_and_line_endings(tmp_path, monkeypatch):
    """Small blocks (patched) so that lines, CRLF pairs and blank lines straddle block
    boundaries: every row still arrives, and a bad line is still named by its number."""
    monkeypatch.setattr(kaggle, "_CSV_CHUNK", 1000)
    images, labels = synthetic(30, seed=7)
    rows = [row.decode() for row in kaggle_rows(images, labels)]
    lines = [TRAIN_HEADER.decode().rstrip("\n")]
    for i, row in enumerate(rows):
        lines += [row, ""] if i % 7 == 3 else [row]
    text = "\r\n".join(lines) + "\r\n"
    path = tmp_path / "train.csv"
    path.write_bytes(text.encode())
    got_images, got_labels = data.read_kaggle_csv(path)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    bad = list(lines)
    number = len(bad) - 3
    fields = bad[number - 1].split(",")
    fields[1] = "300"
    bad[number - 1] = ",".join(fields)
    path.write_bytes(("\r\n".join(bad) + "\r\n").encode())
    with pytest.raises(DataError) as exc:
        data.read_kaggle_csv(path)
    assert one_line(exc) == f"{path}, line {number}: pixel0 value 300 is outside 0..255"


def test_kaggle_line_of_only_spaces_is_named(tmp_path):
    """Before, the bulk parse refused it and the error locator skipped it: "malformed CSV data"
    without a line."""
    images, labels = synthetic(3, seed=9)
    rows = kaggle_rows(images, labels)
    path = tmp_path / "train.csv"
    path.write_bytes(TRAIN_HEADER + b"\n".join([rows[0], b"", rows[1], b" \t ", rows[2]]))
    with pytest.raises(DataError) as exc:
        data.read_kaggle_csv(path)
    assert one_line(exc) == f"{path}, line 5: a line of only spaces"


def test_kaggle_digits_other_than_ascii_are_named(tmp_path):
    images, labels = synthetic(2, seed=9)
    rows = kaggle_rows(images, labels)
    fields = rows[1].split(b",")
    fields[3] = "\u0663".encode()  # ARABIC-INDIC DIGIT THREE: int() takes it, NumPy does not
    path = tmp_path / "train.csv"
    path.write_bytes(TRAIN_HEADER + rows[0] + b"\n" + b",".join(fields) + b"\n")
    with pytest.raises(DataError) as exc:
        data.read_kaggle_csv(path)
    assert one_line(exc) == f"{path}, line 3: pixel2 is not an integer: '\u0663'"


def test_kaggle_lone_carriage_returns_end_lines_too(tmp_path):
    images, labels = synthetic(4, seed=8)
    path = tmp_path / "train.csv"
    path.write_bytes(TRAIN_HEADER + b"\r".join(kaggle_rows(images, labels)) + b"\r")
    got_images, got_labels = data.read_kaggle_csv(path)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


# ---------------------------------------------------------------------------------------------
# 2. predictions CSV: a file name is never a spreadsheet formula
# ---------------------------------------------------------------------------------------------

FORMULA_NAMES = ["=cmd().png", "+1.png", "-1.png", "@x.png", "\tx.png", "\rx.png", "'q.png"]


def test_picture_csv_defuses_names_a_spreadsheet_would_run(tmp_path):
    out = tmp_path / "pred.csv"
    names = ["a.png", *FORMULA_NAMES, "b=c.png"]
    problems: list[str | None] = [None] * len(names)
    problems[2] = "=HYPERLINK(\"x\")"  # an Error cell gets the same treatment
    predict.write_picture_csv(out, names, list(range(len(names) - 1)), problems)
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["File", "Label", "Error"]
    files = [row[0] for row in rows[1:]]
    assert files == ["a.png", *(f"'{name}" for name in FORMULA_NAMES), "b=c.png"]
    assert rows[3] == ["'+1.png", "", "'=HYPERLINK(\"x\")"]
    # the mark is reversible: a cell starting with ' is the name with one ' more
    assert [f[1:] if f.startswith("'") else f for f in files] == names


def test_picture_csv_of_ordinary_names_is_unchanged(tmp_path):
    out = tmp_path / "pred.csv"
    names = ["a.png", "b,c.png", 'say "7".png', "new\nline.png", "x-1.png", "bad.png"]
    predict.write_picture_csv(out, names, [1, 2, 3, 4, 5],
                              [None, None, None, None, None, "not an image file Pillow can read"])
    assert out.read_bytes() == (
        b'File,Label,Error\na.png,1,\n"b,c.png",2,\n"say ""7"".png",3,\n"new\nline.png",4,\n'
        b"x-1.png,5,\nbad.png,,not an image file Pillow can read\n")


def test_picture_csv_quotes_a_row_holding_a_carriage_return(tmp_path):
    """Before, csv quoted a cell holding its line terminator ("\\n") but not a lone "\\r", which
    readers take for the end of the row: the name was cut in two rows."""
    out = tmp_path / "pred.csv"
    predict.write_picture_csv(out, ["a\rb.png", "c.png"], [4, 5], [None, None])
    assert out.read_bytes() == b'File,Label,Error\n"a\rb.png","4",""\nc.png,5,\n'
    with open(out, newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == [["File", "Label", "Error"], ["a\rb.png", "4", ""],
                                            ["c.png", "5", ""]]


def test_predict_writes_formula_named_pictures_as_text(tmp_path, capsys):
    picture = Image.fromarray(255 - data.load("sample").test_images[0]).resize((56, 56))
    folder = tmp_path / "digits"
    folder.mkdir()
    for name in ("=cmd().png", "@x.png", "plain.png"):
        picture.save(folder / name)
    out = tmp_path / "pred.csv"
    params = tmp_path / "params.npz"
    from models.init import init_params

    np.savez(params, **init_params((784, 8, 10), method="xavier", seed=0, dtype=np.float32))
    assert predict.main(["--params", str(params), "--data", str(folder), "--out", str(out)]) == 0
    with open(out, newline="", encoding="utf-8") as handle:
        files = [row[0] for row in csv.reader(handle)][1:]
    assert files == ["'=cmd().png", "'@x.png", "plain.png"]
    assert "=cmd().png: " in capsys.readouterr().out  # the terminal shows the real name


# ---------------------------------------------------------------------------------------------
# 3. render: --out and --format must agree
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("out, fmt", [("r.png", "svg"), ("r.svg", "pdf"), ("R.PDF", "png")])
def test_render_refuses_an_out_suffix_that_contradicts_format(tmp_path, capsys, out, fmt):
    target = tmp_path / out
    code = render.main(["--out", str(target), "--format", fmt, "--batch", "1"])
    err = capsys.readouterr().err
    assert code == 2
    suffix = target.suffix
    assert err.splitlines() == [
        f"error: --out {target} ends in {suffix} but --format is {fmt}: give --out "
        f"{target.with_suffix('.' + fmt)}, or drop --format to draw {suffix[1:].lower()}"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("out, fmt, written", [
    ("r.svg", "svg", "r.svg"), ("r", "svg", "r.svg"), ("r.txt", "svg", "r.txt.svg"),
])
def test_render_with_an_agreeing_or_no_picture_suffix_draws(tmp_path, capsys, out, fmt, written):
    code = render.main(["--out", str(tmp_path / out), "--format", fmt, "--batch", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    drawn = [p.name for p in tmp_path.iterdir() if p.suffix != ".dot"]
    if drawn:  # without Graphviz's dot only the .dot source is written
        assert drawn == [written] and captured.out == f"wrote {tmp_path / written}\n"
