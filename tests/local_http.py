"""Helpers shared by the data tests (tests/test_data.py, tests/test_data_paths.py).

Small IDX files, a check that an error message is one line, and an HTTP server on 127.0.0.1
that serves them, since no test may use the network. The fixtures (``server``,
``tiny_files``, ``tiny_digests``, ``served_mnist``) are defined here once; a test module binds
them to module names of its own (``server = local_http.server``) so that pytest finds them.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from models import data

# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------


def idx_header(shape: tuple[int, ...], *, type_code: int = 0x08) -> bytes:
    """The header of an IDX file of ``shape`` whose elements have the type ``type_code``."""
    return bytes([0, 0, type_code, len(shape)]) + b"".join(int(d).to_bytes(4, "big") for d in shape)


def idx_bytes(array: np.ndarray, *, type_code: int = 0x08) -> bytes:
    """Encode ``array`` as an IDX file (uint8 payload)."""
    payload = np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    return idx_header(array.shape, type_code=type_code) + payload


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images (n, 28, 28) and labels cycling 0..9."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    """Return the exception message, asserting it is a single line."""
    message = str(exc.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def tiny_files() -> dict[str, bytes]:
    """Raw content of a small synthetic four-file dataset, by canonical name."""
    train_x, train_y = synthetic(12, seed=7)
    test_x, test_y = synthetic(10, seed=8)
    arrays = (train_x, train_y, test_x, test_y)
    return {stem: idx_bytes(a) for stem, a in zip(data.IDX_FILES, arrays, strict=True)}


@pytest.fixture(scope="module")
def tiny_digests(tiny_files: dict[str, bytes]) -> dict[str, str]:
    """The SHA-256 of each file of ``tiny_files``."""
    return {stem: hashlib.sha256(raw).hexdigest() for stem, raw in tiny_files.items()}


# ---------------------------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.routes``: path -> bytes, or a callable that writes the response."""

    server: Server

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
        elif callable(route):
            route(self)
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(route)))
            self.end_headers()
            self.wfile.write(route)

    def log_message(self, *args: object) -> None:
        pass


Route = bytes | Callable[[Handler], None]


class Server(http.server.ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 (a free port) that records the paths it is asked for.

    ``stop`` is set when the test ends, so that a route that waits or trickles can return.
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self.stop = threading.Event()

    @property
    def base(self) -> str:
        """The server's URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server() -> Iterator[Server]:
    """A running :class:`Server`, shut down after the test."""
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.stop.set()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def serve(server: Server, prefix: str, files: dict[str, bytes], *, gz: bool = True) -> str:
    """Publish ``files`` (gzipped as mirrors do) under ``/prefix/``; return the mirror URL."""
    for stem, raw in files.items():
        server.routes[f"/{prefix}/{stem}.gz"] = gzip.compress(raw) if gz else raw
    return f"{server.base}/{prefix}/"


def dead_mirror() -> str:
    """A URL on 127.0.0.1 whose port has nothing listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.fixture
def served_mnist(
    server: Server,
    tiny_files: dict[str, bytes],
    tiny_digests: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """Make ``"mnist"`` the tiny dataset, served by ``server`` under ``/good/``, with its sizes.

    The cache is ``$TINYGRAPH_DATA``, set to a new directory, which is returned.
    """
    sizes = {"train-images-idx3-ubyte": 12 * 784 + 16, "train-labels-idx1-ubyte": 12 + 8}
    sizes |= {"t10k-images-idx3-ubyte": 10 * 784 + 16, "t10k-labels-idx1-ubyte": 10 + 8}
    assert {stem: len(raw) for stem, raw in tiny_files.items()} == sizes
    mirror = serve(server, "good", tiny_files)
    source = data.RemoteSource("mnist", (mirror,), tiny_digests, sizes=sizes)
    monkeypatch.setitem(data.REMOTE_SOURCES, "mnist", source)
    monkeypatch.setenv("TINYGRAPH_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"
