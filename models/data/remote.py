"""Downloading: public mirrors, the download cache (verified on every use), and streaming
downloads with an overall deadline, verified by SHA-256."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import math
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from typing import IO, Any

from .dataset import DIGIT_CLASSES, FASHION_MNIST_CLASSES
from .files import _GZIP_MAGIC, DataError, PathLike, _describe_os_error, _error, atomic_write
from .idx import FASHION_MNIST_SHA256, IDX_FILES, MNIST_SHA256, _idx_candidates, _idx_sha256

# The package's logger, as before the split into modules: records are still named "models.data".
logger = logging.getLogger(__package__)

USER_AGENT = "tinygraph-data/0.1 (+urllib)"
_CHUNK = 1 << 16
_MAX_DOWNLOAD_BYTES = 512 << 20  # no MNIST-style file is anywhere near this; stops gzip bombs

# The default deadline of one file from one mirror: _DEADLINE_BASE seconds to connect and get
# the headers, then that plus the announced size (or _DEADLINE_UNKNOWN_SIZE when the server
# does not say), never more than the most the file can take (see _wire_bound), at
# _DEADLINE_RATE bytes per second: 362 s for MNIST's largest file (9.9 MB), at most 1497 s.
_DEADLINE_BASE = 60.0
_DEADLINE_RATE = 32 * 1024
_DEADLINE_UNKNOWN_SIZE = 64 << 20

# The decompressed size of each file of MNIST and Fashion-MNIST (60,000 training and 10,000
# test pictures of 28x28 bytes, after a 16-byte header; labels after an 8-byte header).
_MNIST_STYLE_SIZES: Mapping[str, int] = {
    "train-images-idx3-ubyte": 16 + 60_000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60_000,
    "t10k-images-idx3-ubyte": 16 + 10_000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10_000,
}


@dataclass(frozen=True)
class RemoteSource:
    """Where a downloadable dataset lives and how to verify it.

    Each mirror URL is a directory that serves ``<file>.gz`` for every name in
    :data:`IDX_FILES`; ``sha256`` maps those names to the SHA-256 of the decompressed content,
    and ``sizes`` to its size in bytes (where known): a mirror announcing more than a file can
    take is refused before its body is read, and the default deadline is computed from at
    most that size. A file without a known size is bounded by the package's 512 MiB limit.
    """

    name: str
    mirrors: tuple[str, ...]
    sha256: Mapping[str, str]
    classes: tuple[str, ...] = DIGIT_CLASSES
    sizes: Mapping[str, int] = field(default_factory=dict)


REMOTE_SOURCES: dict[str, RemoteSource] = {
    "mnist": RemoteSource(
        name="mnist",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        sha256=MNIST_SHA256,
        sizes=_MNIST_STYLE_SIZES,
    ),
    "fashion-mnist": RemoteSource(
        name="fashion-mnist",
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        sha256=FASHION_MNIST_SHA256,
        classes=FASHION_MNIST_CLASSES,
        sizes=_MNIST_STYLE_SIZES,
    ),
}
"""Datasets that :func:`download` knows, by name."""


def default_cache_dir() -> Path:
    """Return the root of the download cache.

    ``$TINYGRAPH_DATA`` if set, else ``$XDG_CACHE_HOME/tinygraph``, else
    ``~/.cache/tinygraph``. Each dataset gets a subdirectory named after it.
    """
    explicit = os.environ.get("TINYGRAPH_DATA")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "tinygraph"
    return Path.home() / ".cache" / "tinygraph"


def _cache_origin() -> str:
    """Say where :func:`default_cache_dir` took the cache root from, for a one-line message."""
    if os.environ.get("TINYGRAPH_DATA"):
        return "the download cache, from $TINYGRAPH_DATA"
    where = (
        "the download cache, under $XDG_CACHE_HOME"
        if os.environ.get("XDG_CACHE_HOME")
        else "the default download cache"
    )
    return f"{where}; set $TINYGRAPH_DATA to choose another"


class _MirrorFailed(Exception):
    """One mirror could not deliver one file; the message says why."""


class _CacheWriteFailed(Exception):
    """Writing a download into the cache failed (no other mirror can help)."""


class _Gunzip:
    """Incremental gzip decoder that accepts multi-member streams and detects truncation."""

    def __init__(self) -> None:
        self._decoder = zlib.decompressobj(wbits=31)
        self._in_member = False

    def feed(self, data: bytes) -> bytes:
        """Decode the next compressed bytes; return the decompressed output they complete."""
        out: list[bytes] = []
        while data:
            self._in_member = True
            out.append(self._decoder.decompress(data))
            if not self._decoder.eof:
                break
            data = self._decoder.unused_data
            self._decoder = zlib.decompressobj(wbits=31)
            self._in_member = False
        return b"".join(out)

    def finish(self) -> None:
        """Raise :class:`_MirrorFailed` if the stream ended in the middle of a gzip member."""
        if self._in_member:
            raise _MirrorFailed("truncated gzip data")


def _wire_bound(content_bound: int) -> int:
    """Return the most bytes a response may hold for content of at most ``content_bound`` bytes.

    The content comes either as it is or gzipped, and gzip can add a little to data it cannot
    compress (zlib's deflateBound: about 0.03% plus a few bytes); 0.1% and 1 KiB cover that.
    """
    return content_bound + (content_bound >> 10) + 1024


def _default_deadline(size: int | None, bound: int | None = None) -> float:
    """Return the default deadline in seconds for a download of ``size`` bytes.

    ``size`` is what the server announces (None: it does not say, taken as
    :data:`_DEADLINE_UNKNOWN_SIZE`), capped at ``bound``, the most the response may hold
    (default: :func:`_wire_bound` of :data:`_MAX_DOWNLOAD_BYTES`), so that no announcement
    can stretch the deadline beyond what the file can be.
    """
    cap = _wire_bound(_MAX_DOWNLOAD_BYTES) if bound is None else bound
    announced = _DEADLINE_UNKNOWN_SIZE if size is None else size
    return _DEADLINE_BASE + min(announced, cap) / _DEADLINE_RATE


def _cut(sock: socket.socket) -> None:
    """Shut a socket down so that a read blocked on it returns at once (never raises)."""
    with contextlib.suppress(OSError):
        # socket.socket's own method: an SSLSocket's would also drop its TLS state, which the
        # reading thread may be using
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Deadline:
    """The overall time limit of one download attempt.

    A timer thread shuts down the attempt's sockets (recorded by :func:`_tracking`) when the
    time is up, so that a read blocked on a trickling server returns; ``expired`` then tells
    the reader why its connection ended. ``received`` counts the bytes for the message.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self.received = 0
        self._start = time.monotonic()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer: threading.Timer | None = None
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        remaining = max(0.0, self._start + self.seconds - time.monotonic())
        self._timer = threading.Timer(remaining, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _cut(sock)

    def extend(self, seconds: float) -> None:
        """Make the limit ``seconds`` from the start of the attempt (unless already expired)."""
        with self._lock:
            if not self.expired:
                self.seconds = seconds
                self._arm()

    def track(self, sock: socket.socket) -> None:
        """Record a socket of this attempt, to be cut when the time is up."""
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _cut(sock)

    def cancel(self) -> None:
        """Stop the timer (the attempt is over)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()

    def describe(self) -> str:
        """Say that the deadline passed, for a one-line message."""
        return (
            f"did not finish within the {self.seconds:g} s deadline "
            f"({self.received} bytes received)"
        )


def _tracking(connection_class: type[http.client.HTTPConnection], deadline: _Deadline) -> Any:
    """Return a subclass of ``connection_class`` that hands its socket to ``deadline``."""

    class Tracked(connection_class):  # type: ignore[valid-type, misc]
        def connect(self) -> None:
            super().connect()
            deadline.track(self.sock)

    return Tracked


class _Tracking:
    """urllib's HTTP(S) handler (the class this is mixed into), with the connections' sockets
    given to a :class:`_Deadline`."""

    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(  # type: ignore[misc]
            _tracking(http_class, self._deadline), req, **kwargs)


class _TrackingHTTPHandler(_Tracking, urllib.request.HTTPHandler):
    pass


class _TrackingHTTPSHandler(_Tracking, urllib.request.HTTPSHandler):
    pass


def _open_url(request: urllib.request.Request, timeout: float, deadline: _Deadline) -> Any:
    """Open ``request`` like ``urllib.request.urlopen``, its sockets watched by ``deadline``."""
    opener = urllib.request.build_opener(
        _TrackingHTTPHandler(deadline), _TrackingHTTPSHandler(deadline)
    )
    return opener.open(request, timeout=timeout)


def _failure(exc: BaseException, timeout: float) -> _MirrorFailed:
    """Describe why a mirror failed, from the exception its transfer raised."""
    if isinstance(exc, _MirrorFailed):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        return _MirrorFailed(f"HTTP {exc.code} {exc.reason}")
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return _MirrorFailed(f"timed out after {timeout:g} s")
        if isinstance(reason, OSError) and reason.strerror:
            return _MirrorFailed(reason.strerror.lower())
        return _MirrorFailed(str(reason))
    if isinstance(exc, TimeoutError):
        return _MirrorFailed(f"timed out after {timeout:g} s")
    if isinstance(exc, HTTPException):
        return _MirrorFailed(f"bad HTTP response ({type(exc).__name__}: {exc})")
    if isinstance(exc, zlib.error):
        return _MirrorFailed(f"corrupt gzip data ({exc})")
    if isinstance(exc, OSError):
        return _MirrorFailed(_describe_os_error(exc))
    if isinstance(exc, ValueError):
        return _MirrorFailed(f"invalid URL ({exc})")
    raise exc


def _fetch_verified(
    url: str,
    out: IO[bytes],
    expected_sha256: str,
    *,
    label: str,
    progress: bool,
    timeout: float,
    deadline: float | None = None,
    max_bytes: int = _MAX_DOWNLOAD_BYTES,
) -> None:
    """Stream ``url`` into ``out`` (gunzipping gzip data) and check the content's SHA-256.

    The content may hold at most ``max_bytes`` bytes, and the response at most
    :func:`_wire_bound` of that: a larger ``Content-Length`` is refused before the body is
    read. Each read waits at most ``timeout`` seconds, and the whole transfer must end within
    ``deadline`` seconds (None: :func:`_default_deadline` of the announced size, capped at
    that bound). Raises :class:`_MirrorFailed` with a short reason for anything that goes wrong
    on the mirror's side: HTTP errors, refused connections, time-outs, the deadline, short
    reads, corrupt gzip data, oversized or wrong content.
    """
    limit = _Deadline(deadline if deadline is not None else _DEADLINE_BASE)
    try:
        digest = _transfer(url, out, label, progress, timeout, limit, deadline is None, max_bytes)
    except _CacheWriteFailed:
        raise
    except Exception as exc:
        if limit.expired:
            raise _MirrorFailed(limit.describe()) from None
        raise _failure(exc, timeout) from None
    finally:
        limit.cancel()
    got = digest.hexdigest()
    if got != expected_sha256:
        raise _MirrorFailed(
            f"wrong content: SHA-256 {got[:16]}... instead of {expected_sha256[:16]}..."
        )


def _transfer(
    url: str,
    out: IO[bytes],
    label: str,
    progress: bool,
    timeout: float,
    limit: _Deadline,
    automatic: bool,
    max_bytes: int,
) -> Any:
    """Do the transfer of :func:`_fetch_verified`; return the SHA-256 object of the content."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    digest = hashlib.sha256()
    wire_bound = _wire_bound(max_bytes)
    with _open_url(request, timeout, limit) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > wire_bound:
            raise _MirrorFailed(
                f"announces {total} bytes (Content-Length) but the file is at most "
                f"{wire_bound} bytes; refused before reading it"
            )
        if automatic:
            limit.extend(_default_deadline(total, wire_bound))
        read = getattr(response, "read1", response.read)  # read1: return what has arrived
        written = 0
        gunzip: _Gunzip | None = None
        pending: bytes | None = b""  # first bytes, kept until gzip data can be recognised
        from tqdm import tqdm  # the models extra; imported when a download starts

        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=label,
            disable=not progress,
            leave=False,
            file=sys.stderr,
        ) as bar:
            while True:
                chunk = read(_CHUNK)
                if limit.expired:
                    raise _MirrorFailed(limit.describe())
                limit.received += len(chunk)
                if limit.received > wire_bound:
                    raise _MirrorFailed(f"sent more than the {wire_bound} bytes the file can take")
                bar.update(len(chunk))
                if pending is not None:
                    pending += chunk
                    if chunk and len(pending) < 2:
                        continue
                    if pending[:2] == _GZIP_MAGIC:
                        gunzip = _Gunzip()
                    chunk, pending = pending, None
                data = gunzip.feed(chunk) if gunzip is not None else chunk
                written += len(data)
                if written > max_bytes:
                    raise _MirrorFailed(f"content exceeds {max_bytes} bytes")
                digest.update(data)
                try:
                    out.write(data)
                except OSError as exc:
                    raise _CacheWriteFailed(_describe_os_error(exc)) from None
                if not chunk:
                    break
        if total is not None and limit.received != total:
            raise _MirrorFailed(f"connection closed after {limit.received} of {total} bytes")
        if gunzip is not None:
            gunzip.finish()
    return digest


def _check_seconds(name: str, value: float | None, *, optional: bool = False) -> None:
    """Raise DataError unless ``value`` is a positive finite number of seconds (or allowed None)."""
    if value is None and optional:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise DataError(f"download: {name} must be a positive number of seconds, got {value!r}")


def _resolve_remote(name: str) -> RemoteSource:
    """Return the :class:`RemoteSource` called ``name``; DataError listing the known ones."""
    key = name.strip().lower().replace("_", "-")
    if key not in REMOTE_SOURCES:
        known = ", ".join(sorted(REMOTE_SOURCES))
        raise DataError(f"unknown dataset {name!r} to download; known: {known}")
    return REMOTE_SOURCES[key]


def _cache_root(cache_dir: PathLike | None) -> Path:
    """Return the cache root: ``cache_dir`` (``~`` expanded) or :func:`default_cache_dir`."""
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def _offline_hint(source: RemoteSource, directory: Path, cache_dir: PathLike | None) -> str:
    """Say how to do without the network: files placed by hand, or a local IDX directory."""
    names = ", ".join(stem + ".gz" for stem in IDX_FILES)
    where = "the download cache" if cache_dir is not None else _cache_origin()
    debian = (
        ", or install Debian's dataset-fashion-mnist package"
        if source.name == "fashion-mnist"
        else ""
    )
    return (
        f"to work offline, put the mirrors' files ({names}) into {directory} ({where}) and "
        f"they are verified and used, or use a directory holding the four IDX files "
        f"(--data DIR){debian}"
    )


def _cached_copy(directory: Path, stem: str, expected: str) -> tuple[Path | None, list[str]]:
    """Find a verified copy of ``stem`` in a cache directory.

    Looks at every name :func:`load_idx_dir` accepts (the canonical name that downloads are
    stored under, and the mirrors' own ``.gz`` names, for files placed there by hand) and
    returns the first whose content has the SHA-256 ``expected``, with one line about each
    copy before it that does not (damaged, or not even an IDX file).
    """
    problems: list[str] = []
    for name in _idx_candidates(stem):
        path = directory / name
        if not path.is_file():
            continue
        try:
            got = _idx_sha256(path)
        except DataError as exc:
            problems.append(str(exc))
            continue
        if got == expected:
            return path, problems
        problems.append(
            str(_error(path, f"wrong content: SHA-256 {got[:16]}... instead of {expected[:16]}..."))
        )
    return None, problems


def _expected_digests(source: RemoteSource, digests: Mapping[str, str] | None) -> dict[str, str]:
    """Return the SHA-256 of each file of ``source``, with ``digests`` overriding some."""
    expected = dict(source.sha256)
    for key, value in (digests or {}).items():
        stem = key.removesuffix(".gz")
        if stem not in expected:
            raise DataError(f"digests: unknown file {key!r}; expected names from {IDX_FILES}")
        expected[stem] = value.lower()
    return expected


def _size_bounds(source: RemoteSource, expected: Mapping[str, str]) -> dict[str, int]:
    """Return the most bytes each file of ``source`` may hold, decompressed.

    That is the file's known size when its digest is the source's own (``digests`` that
    override it are for other content, whose size is not known), never more than
    :data:`_MAX_DOWNLOAD_BYTES`.
    """
    bounds: dict[str, int] = {}
    for stem, digest in expected.items():
        known = source.sizes.get(stem) if digest == source.sha256.get(stem) else None
        bounds[stem] = min(known, _MAX_DOWNLOAD_BYTES) if known else _MAX_DOWNLOAD_BYTES
    return bounds


def _verified_cache(
    source: RemoteSource, cache_dir: PathLike | None, digests: Mapping[str, str] | None = None
) -> dict[str, Path]:
    """Return the verified cached files of ``source`` without any download.

    Raises a one-line :class:`DataError` when a file is missing (saying how to do without the
    network) or when its only copies are damaged (saying to delete them).
    """
    expected = _expected_digests(source, digests)
    directory = _cache_root(cache_dir) / source.name
    found: dict[str, Path] = {}
    missing: list[str] = []
    for stem in IDX_FILES:
        path, problems = _cached_copy(directory, stem, expected[stem])
        if path is not None:
            found[stem] = path
        elif problems:
            raise DataError(
                f"{problems[0]}; this cached copy is damaged: delete it and load {source.name} "
                "again with downloading allowed, or put a good copy there"
            )
        else:
            missing.append(stem)
    if missing:
        raise _error(
            directory,
            f"{source.name} is not in the cache (missing {', '.join(missing)}) and "
            f"download=False; {_offline_hint(source, directory, cache_dir)}",
        )
    return found


def _download(
    name: str,
    cache_dir: PathLike | None,
    mirrors: Sequence[str] | None,
    progress: bool,
    digests: Mapping[str, str] | None,
    timeout: float,
    deadline: float | None = None,
) -> dict[str, Path]:
    """Do the work of :func:`download`; return the verified file of each canonical name."""
    source = _resolve_remote(name)
    _check_seconds("timeout", timeout)
    _check_seconds("deadline", deadline, optional=True)
    expected = _expected_digests(source, digests)
    bounds = _size_bounds(source, expected)
    urls = list(source.mirrors if mirrors is None else mirrors)
    if not urls:
        raise DataError(f"no mirrors given to download {source.name}")
    target = _cache_root(cache_dir) / source.name
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _error(target, f"cannot create cache directory: {_describe_os_error(exc)}") from None
    found: dict[str, Path] = {}
    for stem in IDX_FILES:
        final = target / stem
        cached, problems = _cached_copy(target, stem, expected[stem])
        if cached is not None:
            found[stem] = cached
            continue
        for problem in problems:
            logger.warning("%s; downloading it again", problem)
        failures: list[str] = []
        for mirror in urls:
            url = mirror.rstrip("/") + "/" + stem + ".gz"
            try:
                with atomic_write(final) as out:
                    _fetch_verified(
                        url,
                        out,
                        expected[stem],
                        label=f"{source.name} {stem}",
                        progress=progress,
                        timeout=timeout,
                        deadline=deadline,
                        max_bytes=bounds[stem],
                    )
            except _MirrorFailed as exc:
                logger.warning("%s: %s; trying the next mirror", url, exc)
                failures.append(f"{url}: {exc}")
            except _CacheWriteFailed as exc:  # no other mirror can fix that
                raise _error(final, f"cannot write into the cache: {exc}") from None
            except OSError as exc:  # creating, syncing or renaming the cache file failed
                raise _error(
                    final, f"cannot write into the cache: {_describe_os_error(exc)}"
                ) from None
            else:
                found[stem] = final
                break
        else:
            raise DataError(
                f"could not download {source.name} file {stem} from any mirror: "
                + "; ".join(failures)
                + f"; {_offline_hint(source, target, cache_dir)}"
            )
    return found


def download(
    name: str,
    cache_dir: PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    progress: bool = True,
    *,
    digests: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    deadline: float | None = None,
) -> Path:
    """Download dataset ``name`` (``"mnist"`` or ``"fashion-mnist"``) into the cache.

    For each of the four IDX files, mirrors are tried in order (``mirrors`` replaces the built-in
    list; each is a base URL serving ``<file>.gz``). The response is decompressed while it
    streams to a temporary file, with a tqdm progress bar on stderr unless ``progress`` is false,
    and its SHA-256 is checked against the built-in digest of the decompressed file (``digests``
    overrides some or all of them, keyed by canonical file name). Each read waits at most
    ``timeout`` seconds, and each file from each mirror must arrive within ``deadline`` seconds
    (default: 60 s plus one second per 32 KiB announced by the server, or for 64 MiB when it
    announces no size, but never for more than the file can be: its known size, else 512 MiB),
    so a server that trickles bytes cannot hold the download forever; a server announcing more
    than the file can be is refused before its body is read. A mirror that fails, times out,
    misses the deadline or serves wrong bytes is logged as one warning line and the next one is
    tried; if all fail, :class:`DataError` lists every mirror and its reason, and how to do
    without the network. Verified files are moved atomically into ``<cache_dir>/<name>/`` under
    their canonical, uncompressed names, so a file there is always complete and verified. A
    file already in that directory -- under its canonical name, or under the mirrors' own name
    (e.g. ``train-images-idx3-ubyte.gz``, placed there by hand) -- is verified and, when its
    digest is right, used without downloading. ``cache_dir`` defaults to
    :func:`default_cache_dir`. Returns the dataset's cache directory.
    """
    _download(name, cache_dir, mirrors, progress, digests, timeout, deadline)
    return _cache_root(cache_dir) / _resolve_remote(name).name
