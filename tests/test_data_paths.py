"""Tests for the data paths of issue 12, item 7: streamed IDX headers (gzip bombs), download
deadlines, verification of cached files, the offline message and hand-placed mirror files,
test-only IDX folders, stale and temporary files of killed writers."""

from __future__ import annotations

import gzip
import math
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import local_http
import numpy as np
import pytest
from local_http import (
    Handler,
    Server,
    dead_mirror,
    idx_bytes,
    idx_header,
    one_line,
    synthetic,
)

from models import data
from models.data import DataError, remote, sources
from tinygraph.files import atomic_write

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


# the fixtures of local_http, bound here so that pytest finds them
server = local_http.server
tiny_files = local_http.tiny_files
tiny_digests = local_http.tiny_digests
served_mnist = local_http.served_mnist


@pytest.fixture
def offline_mnist(
    tiny_digests: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Make ``load("mnist")`` use the tiny digests, a dead mirror, and ``$TINYGRAPH_DATA``."""
    source = data.RemoteSource(name="mnist", mirrors=(dead_mirror(),), sha256=tiny_digests)
    monkeypatch.setitem(data.REMOTE_SOURCES, "mnist", source)
    cache = tmp_path / "cache"
    monkeypatch.setenv("TINYGRAPH_DATA", str(cache))
    return cache


# ---------------------------------------------------------------------------------------------
# 1. IDX headers are checked while streaming: a gzip bomb is refused in bounded memory
# ---------------------------------------------------------------------------------------------


def gzip_bomb(path: Path, header_and_payload: bytes, zeros: int) -> Path:
    """Write a gzip file holding ``header_and_payload`` followed by ``zeros`` zero bytes.

    The zeros are compressed once as a 16 MiB gzip member that is then repeated (a file of
    several members is valid gzip, read as their concatenation), so building it takes a
    fraction of a second and the file stays a few hundred KB.
    """
    block = 16 << 20
    assert zeros % block == 0
    member = gzip.compress(bytes(block), compresslevel=9, mtime=0)
    with open(path, "wb") as out:
        out.write(gzip.compress(header_and_payload, mtime=0))
        for _ in range(zeros // block):
            out.write(member)
    return path


def test_idx_gzip_bomb_is_refused_quickly_in_bounded_memory(tmp_path: Path) -> None:
    images, _ = synthetic(10)
    bomb = gzip_bomb(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(images), 256 << 20)
    assert bomb.stat().st_size < 1_000_000
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DataError) as exc:
            data.read_idx(bomb)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = one_line(exc)
    assert str(bomb) in message and "unexpected trailing bytes" in message
    assert "shape (10, 28, 28) needs 7840 bytes" in message
    assert peak < 16 << 20, f"reading the bomb took {peak / 2**20:.0f} MiB"
    assert elapsed < 5


def test_idx_gzip_trailing_garbage_is_counted(tmp_path: Path) -> None:
    _, labels = synthetic(10)
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(idx_bytes(labels) + b"junk!", mtime=0))
    with pytest.raises(DataError, match="5 unexpected trailing bytes") as exc:
        data.read_idx(path)
    assert "got 15" in one_line(exc)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_declared_size_beyond_bound_is_refused_before_reading(
    tmp_path: Path, gz: bool
) -> None:
    shape = (2_000_000, 28, 28)  # 1.57e9 bytes, beyond the 1e9-byte bound
    payload = idx_header(shape) + bytes(100)
    path = tmp_path / "huge"
    path.write_bytes(gzip.compress(payload) if gz else payload)
    with pytest.raises(DataError) as exc:
        data.read_idx(path)
    message = one_line(exc)
    assert str(path) in message and "1568000000 bytes" in message and "limit" in message


def test_idx_declared_size_the_file_cannot_hold(tmp_path: Path) -> None:
    # raw: the file size says it is short before anything is allocated or read
    raw = tmp_path / "raw"
    raw.write_bytes(idx_header((60000, 28, 28)) + bytes(100))
    with pytest.raises(DataError, match=r"truncated: shape \(60000, 28, 28\) needs 47040000 bytes"):
        data.read_idx(raw)
    # gzip: deflate cannot expand beyond 1032:1, so a 200-byte file cannot hold 47 MB
    small = tmp_path / "small.gz"
    small.write_bytes(gzip.compress(idx_header((60000, 28, 28)) + bytes(100)))
    assert small.stat().st_size < 1000
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as exc:
            data.read_idx(small)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = one_line(exc)
    assert str(small) in message and "47040000 bytes" in message and "cannot hold" in message
    assert peak < 4 << 20


def test_idx_short_gzip_is_one_line(tmp_path: Path) -> None:
    images, _ = synthetic(10)
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(idx_bytes(images)[:-100], mtime=0))
    with pytest.raises(DataError, match="truncated: shape .* got 7740") as exc:
        data.read_idx(path)
    assert str(path) in one_line(exc)


# ---------------------------------------------------------------------------------------------
# 2. Downloads have an overall deadline
# ---------------------------------------------------------------------------------------------


def trickle(head: bytes, rest: Callable[[], Iterator[bytes]], pause: float):
    """A route that writes ``head`` at once, then the bytes of ``rest()`` ``pause`` s apart."""

    def respond(handler: Handler) -> None:
        try:
            handler.wfile.write(head)
            for piece in rest():
                for byte in piece:
                    if handler.server.stop.wait(pause):
                        return
                    handler.wfile.write(bytes([byte]))
        except OSError:  # the client gave up and closed the connection
            pass

    return respond


def endless(piece: bytes) -> Callable[[], Iterator[bytes]]:
    def pieces() -> Iterator[bytes]:
        while True:
            yield piece

    return pieces


SLOW_BODY = (b"HTTP/1.0 200 OK\r\nContent-Length: 100000\r\n\r\n", endless(b"\x1f"))
SLOW_HEADERS = (b"HTTP/1.0 200 OK\r\n", endless(b"X-Slow: " + b"a" * 50 + b"\r\n"))


def download_error(seconds: float, tmp_path: Path, mirrors: list[str], **options: Any) -> str:
    """Download ``"mnist"`` from ``mirrors`` into ``tmp_path``; return its one-line DataError.

    The download runs in a thread, so that a test of a deadline fails, rather than hangs, when
    the download is still running after ``seconds`` (the thread ends when the server stops).
    """
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            data.download("mnist", cache_dir=tmp_path, mirrors=mirrors, progress=False, **options)
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the download is still running after {seconds} s"
    (error,) = outcome
    assert isinstance(error, DataError), f"expected a DataError, got {error!r}"
    message = str(error)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("route", "pause"), [(SLOW_BODY, 0.5), (SLOW_HEADERS, 0.05)], ids=["body", "headers"]
)
def test_download_trickling_server_hits_the_deadline(
    server: Server,
    tiny_digests: dict[str, str],
    tmp_path: Path,
    route: tuple[bytes, Callable[[], Iterator[bytes]]],
    pause: float,
) -> None:
    # a byte every 0.5 s of the body (after the headers, sent at once), or every 0.05 s of
    # endless headers: each read returns well within the 5 s per-read timeout
    server.routes["/slow/train-images-idx3-ubyte.gz"] = trickle(*route, pause)
    start = time.monotonic()
    message = download_error(
        4.0, tmp_path, [f"{server.base}/slow/"], digests=tiny_digests, timeout=5.0, deadline=1.5
    )
    elapsed = time.monotonic() - start
    assert f"{server.base}/slow/train-images-idx3-ubyte.gz: " in message
    assert "1.5 s deadline" in message
    assert 1.4 < elapsed < 4.0
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == []


def test_download_default_deadline_scales_with_the_size(
    server: Server, tiny_digests: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/slow/train-images-idx3-ubyte.gz"] = trickle(*SLOW_BODY, 0.3)
    # 0.5 s plus one second per 100,000 bytes: 1.5 s for the 100,000 bytes announced
    monkeypatch.setattr(remote, "_DEADLINE_BASE", 0.5)
    monkeypatch.setattr(remote, "_DEADLINE_RATE", 100_000)
    assert remote._default_deadline(100_000) == pytest.approx(1.5)
    message = download_error(4.0, tmp_path, [f"{server.base}/slow/"], digests=tiny_digests)
    assert "1.5 s deadline" in message


MNIST_TRAIN_IMAGES = 16 + 60_000 * 28 * 28  # bytes, decompressed


def announcing(length: int) -> tuple[bytes, Callable[[], Iterator[bytes]]]:
    """A response that announces ``length`` bytes and then sends bytes without end."""
    return b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % length, endless(b"\x1f")


@pytest.mark.parametrize(
    ("announced", "override"),
    [(10**12, False), (50_000_000, False), (10**12, True)],
    ids=["terabyte", "just-too-big", "other-digests"],
)
def test_download_refuses_an_announced_size_beyond_the_file(
    server: Server, tiny_digests: dict[str, str], tmp_path: Path, announced: int, override: bool
) -> None:
    # a mirror announcing more than MNIST's file can be (uncompressed, plus what gzip may add;
    # with digests of other content, the package's limit), then trickling a byte every 0.3 s:
    # refused at once, not given a deadline computed from the announcement (30 million s)
    server.routes["/big/train-images-idx3-ubyte.gz"] = trickle(*announcing(announced), 0.3)
    url = f"{server.base}/big/train-images-idx3-ubyte.gz"
    digests = tiny_digests if override else None
    start = time.monotonic()
    message = download_error(3.0, tmp_path, [f"{server.base}/big/"], digests=digests)
    assert time.monotonic() - start < 1.0
    assert f"{url}: announces {announced} bytes (Content-Length)" in message
    bound = remote._wire_bound(remote._MAX_DOWNLOAD_BYTES if override else MNIST_TRAIN_IMAGES)
    assert f"at most {bound} bytes" in message
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == []
    assert server.requests == ["/big/train-images-idx3-ubyte.gz"]


def test_download_known_sizes_bound_announcement_and_deadline(
    server: Server, served_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert data.load("mnist").train_images.shape == (12, 28, 28)  # the sizes allow the files
    bound = remote._wire_bound(12 * 784 + 16)
    # an announcement the real file could hold is too much for this one
    server.routes["/big/train-images-idx3-ubyte.gz"] = trickle(*announcing(bound + 1), 0.3)
    message = download_error(3.0, tmp_path, [f"{server.base}/big/"])
    assert f"announces {bound + 1} bytes (Content-Length) but the file is at most {bound}" in (
        message
    )
    # no announcement: the deadline is computed from the file's bound, not from 64 MiB
    monkeypatch.setattr(remote, "_DEADLINE_BASE", 0.5)
    monkeypatch.setattr(remote, "_DEADLINE_RATE", 10_000)
    expected = 0.5 + bound / 10_000
    assert remote._default_deadline(None, bound) == pytest.approx(expected)
    server.routes["/silent/train-images-idx3-ubyte.gz"] = trickle(
        b"HTTP/1.0 200 OK\r\n\r\n", endless(b"\x1f"), 0.3
    )
    start = time.monotonic()
    message = download_error(expected + 2.0, tmp_path, [f"{server.base}/silent/"])
    assert f"within the {expected:g} s deadline" in message
    assert expected - 0.1 < time.monotonic() - start < expected + 1.5
    # and a fast stream beyond the bound (gzip members holding nothing) is cut at the bound
    members = gzip.compress(b"", mtime=0) * 1000
    server.routes["/flood/train-images-idx3-ubyte.gz"] = trickle(
        b"HTTP/1.0 200 OK\r\n\r\n", endless(members), 0.0
    )
    message = download_error(3.0, tmp_path, [f"{server.base}/flood/"])
    assert f"sent more than the {bound} bytes the file can take" in message


def test_default_deadline_is_capped_by_the_package_limit() -> None:
    most = remote._wire_bound(remote._MAX_DOWNLOAD_BYTES)
    assert remote._default_deadline(10**12) == remote._default_deadline(most)
    assert remote._default_deadline(10**12) < 5 * 3600
    assert remote._default_deadline(1000) < remote._default_deadline(None)


def test_mnist_style_sizes_match_the_real_files() -> None:
    mnist = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    folders = [d for d in (mnist, sources.FASHION_MNIST_SYSTEM_DIR) if d.is_dir()]
    if not folders:
        pytest.skip(f"neither {mnist} nor {sources.FASHION_MNIST_SYSTEM_DIR} is present")
    for name in ("mnist", "fashion-mnist"):
        assert data.REMOTE_SOURCES[name].sizes == remote._MNIST_STYLE_SIZES
    for folder in folders:
        for stem, size in remote._MNIST_STYLE_SIZES.items():
            with gzip.open(folder / f"{stem}.gz") as handle:
                assert len(handle.read()) == size, folder / stem


def test_download_deadline_then_next_mirror(server: Server, served_mnist: Path) -> None:
    server.routes["/slow/train-images-idx3-ubyte.gz"] = trickle(*SLOW_BODY, 0.2)
    mirrors = [f"{server.base}/slow/", f"{server.base}/good/"]
    target = data.download("mnist", mirrors=mirrors, progress=False, deadline=0.6)
    assert target == served_mnist / "mnist"
    assert data.load_idx_dir(target).train_images.shape == (12, 28, 28)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_download_deadline_and_timeout_must_be_positive(tmp_path: Path, bad: float) -> None:
    with pytest.raises(DataError, match="deadline must be a positive number of seconds"):
        data.download("mnist", cache_dir=tmp_path, mirrors=[dead_mirror()], deadline=bad)
    with pytest.raises(DataError, match="timeout must be a positive number of seconds"):
        data.download("mnist", cache_dir=tmp_path, mirrors=[dead_mirror()], timeout=bad)


# ---------------------------------------------------------------------------------------------
# 3. Cached files are verified on every path
# ---------------------------------------------------------------------------------------------


def fill_cache(directory: Path, files: dict[str, bytes], *, gz: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for stem, raw in files.items():
        if gz:
            (directory / (stem + ".gz")).write_bytes(gzip.compress(raw, mtime=0))
        else:
            (directory / stem).write_bytes(raw)
    return directory


@pytest.mark.parametrize("damage", ["flipped-byte", "not-idx"])
def test_load_without_download_verifies_the_cache(
    offline_mnist: Path, tiny_files: dict[str, bytes], damage: str
) -> None:
    cached = fill_cache(offline_mnist / "mnist", tiny_files)
    assert data.load("mnist", download=False).train_images.shape == (12, 28, 28)
    victim = cached / "t10k-images-idx3-ubyte"
    if damage == "flipped-byte":
        blob = bytearray(tiny_files["t10k-images-idx3-ubyte"])
        blob[-1] ^= 0xFF
        victim.write_bytes(bytes(blob))
    else:
        victim.write_bytes(b"garbage")
    with pytest.raises(DataError) as exc:
        data.load("mnist", download=False)
    message = one_line(exc)
    assert str(victim) in message
    assert "delete it" in message and "download" in message
    if damage == "flipped-byte":
        assert "SHA-256" in message


def test_load_with_download_replaces_a_damaged_cached_file(
    server: Server, tiny_files: dict[str, bytes], served_mnist: Path
) -> None:
    cached = fill_cache(served_mnist / "mnist", tiny_files)
    (cached / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(12, np.uint8)))
    ds = data.load("mnist")
    np.testing.assert_array_equal(ds.train_labels, np.arange(12) % 10)
    assert server.requests == ["/good/train-labels-idx1-ubyte.gz"]


def test_damaged_system_fashion_mnist_is_not_used(
    tiny_files: dict[str, bytes],
    tiny_digests: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    classes = data.FASHION_MNIST_CLASSES
    source = data.RemoteSource("fashion-mnist", (dead_mirror(),), tiny_digests, classes=classes)
    monkeypatch.setitem(data.REMOTE_SOURCES, "fashion-mnist", source)
    system = fill_cache(tmp_path / "system", tiny_files, gz=True)
    monkeypatch.setattr(sources, "FASHION_MNIST_SYSTEM_DIR", system)
    cache = fill_cache(tmp_path / "cache" / "fashion-mnist", tiny_files)
    assert data.load("fashion-mnist", download=False, cache_dir=tmp_path / "cache").name == (
        "fashion-mnist"
    )
    (cache / "train-labels-idx1-ubyte").unlink()  # now only Debian's copy could serve it...
    damaged = system / "train-labels-idx1-ubyte.gz"
    damaged.write_bytes(gzip.compress(idx_bytes(np.zeros(12, np.uint8))))  # ...and it is bad
    with caplog.at_level("WARNING", logger="models.data"):
        with pytest.raises(DataError, match="fashion-mnist is not in the cache"):
            data.load("fashion-mnist", download=False, cache_dir=tmp_path / "cache")
    (warning,) = [r.getMessage() for r in caplog.records]
    assert str(damaged) in warning and "SHA-256" in warning and "not using Debian's copy" in warning


def test_real_debian_fashion_mnist_is_verified_and_loaded(tmp_path: Path) -> None:
    if not (sources.FASHION_MNIST_SYSTEM_DIR / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip(f"Debian's dataset-fashion-mnist is not installed in "
                    f"{sources.FASHION_MNIST_SYSTEM_DIR}")
    ds = data.load("fashion-mnist", download=False, cache_dir=tmp_path)
    assert ds.train_images.shape == (60000, 28, 28) and ds.classes[9] == "Ankle boot"


# ---------------------------------------------------------------------------------------------
# 4. Offline: the message names the alternatives, and hand-placed mirror files are used
# ---------------------------------------------------------------------------------------------


def test_offline_load_names_the_alternatives(offline_mnist: Path) -> None:
    with pytest.raises(DataError) as exc:
        data.load("mnist")
    message = one_line(exc)
    assert "could not download mnist" in message and "connection refused" in message
    assert "--data DIR" in message
    assert str(offline_mnist / "mnist") in message and "$TINYGRAPH_DATA" in message
    assert "train-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message


@pytest.mark.parametrize("download", [True, False])
@pytest.mark.parametrize("origin", ["TINYGRAPH_DATA", "XDG_CACHE_HOME", "home", "cache_dir"])
def test_offline_message_says_where_the_cache_comes_from(
    offline_mnist: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    origin: str,
    download: bool,
) -> None:
    # offline_mnist sets $TINYGRAPH_DATA: suggesting to set it would send the user in circles
    choose = "set $TINYGRAPH_DATA to choose another"
    cache_dir = None
    if origin == "TINYGRAPH_DATA":
        directory, where, absent = offline_mnist, "the download cache, from $TINYGRAPH_DATA", choose
    elif origin == "XDG_CACHE_HOME":
        monkeypatch.delenv("TINYGRAPH_DATA")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        directory = tmp_path / "xdg" / "tinygraph"
        where, absent = f"the download cache, under $XDG_CACHE_HOME; {choose}", "from $TINYGRAPH"
    elif origin == "home":
        monkeypatch.setenv("TINYGRAPH_DATA", "")  # set but empty counts as unset
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        directory = tmp_path / "home" / ".cache" / "tinygraph"
        where, absent = f"the default download cache; {choose}", "from $TINYGRAPH"
    else:  # an explicit cache_dir wins over $TINYGRAPH_DATA, which is then beside the point
        cache_dir = directory = tmp_path / "explicit"
        where, absent = "the download cache", "$TINYGRAPH_DATA"
    with pytest.raises(DataError) as exc:
        data.load("mnist", cache_dir=cache_dir, download=download)
    message = one_line(exc)
    assert f"into {directory / 'mnist'} ({where}) and" in message
    assert absent not in message


def test_not_cached_without_download_names_the_alternatives(offline_mnist: Path) -> None:
    with pytest.raises(DataError, match="not in the cache") as exc:
        data.load("mnist", download=False)
    message = one_line(exc)
    assert "--data DIR" in message and str(offline_mnist / "mnist") in message


@pytest.mark.parametrize("download", [True, False])
def test_hand_placed_mirror_files_are_used(
    offline_mnist: Path, tiny_files: dict[str, bytes], download: bool
) -> None:
    fill_cache(offline_mnist / "mnist", tiny_files, gz=True)
    ds = data.load("mnist", download=download)
    assert ds.name == "mnist" and ds.train_images.shape == (12, 28, 28)
    np.testing.assert_array_equal(
        ds.test_images, np.frombuffer(tiny_files["t10k-images-idx3-ubyte"][16:], np.uint8)
        .reshape(10, 28, 28)
    )


def test_hand_placed_wrong_file_is_refused(
    offline_mnist: Path, tiny_files: dict[str, bytes]
) -> None:
    cached = fill_cache(offline_mnist / "mnist", tiny_files, gz=True)
    wrong = cached / "train-labels-idx1-ubyte.gz"
    wrong.write_bytes(gzip.compress(idx_bytes(np.zeros(12, np.uint8))))
    with pytest.raises(DataError) as exc:
        data.load("mnist", download=False)
    message = one_line(exc)
    assert str(wrong) in message and "SHA-256" in message and "delete it" in message
    with pytest.raises(DataError) as exc:  # downloading is tried, and fails offline
        data.load("mnist")
    assert "could not download mnist file train-labels-idx1-ubyte" in one_line(exc)


def test_download_function_uses_hand_placed_files(
    tiny_files: dict[str, bytes], tiny_digests: dict[str, str], tmp_path: Path
) -> None:
    fill_cache(tmp_path / "mnist", tiny_files, gz=True)
    target = data.download(
        "mnist", cache_dir=tmp_path, mirrors=[dead_mirror()], progress=False, digests=tiny_digests
    )
    assert data.load_idx_dir(target).train_images.shape == (12, 28, 28)


# ---------------------------------------------------------------------------------------------
# 5. A directory holding only the t10k-* files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_test_only_test_files(tmp_path: Path, gz: bool) -> None:
    images, labels = synthetic(9, seed=3)
    suffix = ".gz" if gz else ""
    for stem, array in (("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", labels)):
        payload = idx_bytes(array)
        (tmp_path / (stem + suffix)).write_bytes(gzip.compress(payload) if gz else payload)
    got_images, got_labels = data.load_idx_test(tmp_path)
    assert got_images.dtype == np.uint8 and got_images.shape == (9, 28, 28)
    np.testing.assert_array_equal(got_images, images)
    assert got_labels is not None and got_labels.dtype == np.int64
    np.testing.assert_array_equal(got_labels, labels)
    (tmp_path / ("t10k-labels-idx1-ubyte" + suffix)).unlink()
    got_images, got_labels = data.load_idx_test(tmp_path)
    assert got_labels is None and got_images.shape == (9, 28, 28)


def test_load_idx_test_dotted_names_and_full_folders(tmp_path: Path) -> None:
    images, labels = synthetic(4, seed=4)
    (tmp_path / "t10k-images.idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "t10k-labels.idx1-ubyte").write_bytes(idx_bytes(labels))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"not read")
    got_images, got_labels = data.load_idx_test(tmp_path)
    np.testing.assert_array_equal(got_images, images)
    assert got_labels is not None and got_labels.tolist() == [0, 1, 2, 3]


def test_load_idx_test_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a directory") as exc:
        data.load_idx_test(tmp_path / "absent")
    assert "absent" in one_line(exc)
    with pytest.raises(DataError) as exc:
        data.load_idx_test(tmp_path)
    message = one_line(exc)
    assert str(tmp_path) in message
    assert "t10k-images-idx3-ubyte.gz" in message and "t10k-images.idx3-ubyte" in message
    images, labels = synthetic(5)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images[:, :20, :20]))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: expected images of shape"):
        data.load_idx_test(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels[:4]))
    with pytest.raises(DataError, match="has 4 labels but t10k-images-idx3-ubyte has 5 images"):
        data.load_idx_test(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(5, 11, np.uint8)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: label 11 at index 0") as exc:
        data.load_idx_test(tmp_path)
    one_line(exc)


# ---------------------------------------------------------------------------------------------
# 6. Temporary files left by a killed writer are removed by the next write of the same target
# ---------------------------------------------------------------------------------------------

_WRITER = """
import sys, time
from tinygraph.files import atomic_write
with atomic_write(sys.argv[1]) as handle:
    handle.write(b"partial")
    handle.flush()
    print("inside", flush=True)
    time.sleep(60)
"""


def start_writer(target: Path) -> subprocess.Popen[str]:
    """Start a process that stays inside ``atomic_write(target)``; return once it is there."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(target)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "inside"
    return proc


def temporaries(directory: Path, pid: int) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if f".{pid}." in p.name)


def test_stale_temporary_of_a_killed_writer_is_removed(tmp_path: Path) -> None:
    target = tmp_path / "params.npz"
    killed = start_writer(target)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=10)
    (stale,) = temporaries(tmp_path, killed.pid)
    assert stale.startswith(".params.npz.") and stale.endswith(".tmp")
    live = start_writer(target)
    try:
        (alive,) = temporaries(tmp_path, live.pid)
        # a dead writer's leftover for ANOTHER target, and files that only look similar
        others = [
            f".other.npz.{killed.pid}.abcdefgh.tmp",
            ".params.npz.notapid.abcdefgh.tmp",
            f".params.npz.{killed.pid}.abcdefgh.tmp.keep",
            "params.npz.tmp",
        ]
        for name in others:
            (tmp_path / name).write_bytes(b"keep")
        with atomic_write(target) as handle:
            handle.write(b"complete")
        assert target.read_bytes() == b"complete"
        names = sorted(p.name for p in tmp_path.iterdir())
        assert stale not in names
        assert alive in names  # the live writer's file is left alone
        assert sorted(["params.npz", alive, *others]) == names
    finally:
        live.kill()
        live.wait(timeout=10)


def test_temporary_name_holds_the_pid(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    with atomic_write(target) as handle:
        (name,) = [p.name for p in tmp_path.iterdir()]
        assert name.startswith(f".a.bin.{os.getpid()}.") and name.endswith(".tmp")
        handle.write(b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
