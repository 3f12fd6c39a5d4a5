"""Downloading: public mirrors, the download cache, and streaming downloads verified by SHA-256."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import IO

from .dataset import DIGIT_CLASSES, FASHION_MNIST_CLASSES
from .files import _GZIP_MAGIC, DataError, PathLike, _describe_os_error, _error, atomic_write
from .idx import FASHION_MNIST_SHA256, IDX_FILES, MNIST_SHA256, content_sha256

# The package's logger, as before the split into modules: records are still named "models.data".
logger = logging.getLogger(__package__)

USER_AGENT = "tinygraph-data/0.1 (+urllib)"
_CHUNK = 1 << 16
_MAX_DOWNLOAD_BYTES = 512 << 20  # no MNIST-style file is anywhere near this; stops gzip bombs


@dataclass(frozen=True)
class RemoteSource:
    """Where a downloadable dataset lives and how to verify it.

    Each mirror URL is a directory that serves ``<file>.gz`` for every name in
    :data:`IDX_FILES`; ``sha256`` maps those names to the SHA-256 of the decompressed content.
    """

    name: str
    mirrors: tuple[str, ...]
    sha256: Mapping[str, str]
    classes: tuple[str, ...] = DIGIT_CLASSES


REMOTE_SOURCES: dict[str, RemoteSource] = {
    "mnist": RemoteSource(
        name="mnist",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        sha256=MNIST_SHA256,
    ),
    "fashion-mnist": RemoteSource(
        name="fashion-mnist",
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        sha256=FASHION_MNIST_SHA256,
        classes=FASHION_MNIST_CLASSES,
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


def _fetch_verified(
    url: str, out: IO[bytes], expected_sha256: str, *, label: str, progress: bool, timeout: float
) -> None:
    """Stream ``url`` into ``out`` (gunzipping gzip data) and check the content's SHA-256.

    Raises :class:`_MirrorFailed` with a short reason for anything that goes wrong on the
    mirror's side: HTTP errors, refused connections, time-outs, short reads, corrupt gzip data,
    oversized or wrong content.
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = written = 0
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
                    chunk = response.read(_CHUNK)
                    received += len(chunk)
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
                    if written > _MAX_DOWNLOAD_BYTES:
                        raise _MirrorFailed(f"content exceeds {_MAX_DOWNLOAD_BYTES} bytes")
                    digest.update(data)
                    try:
                        out.write(data)
                    except OSError as exc:
                        raise _CacheWriteFailed(_describe_os_error(exc)) from None
                    if not chunk:
                        break
            if total is not None and received != total:
                raise _MirrorFailed(f"connection closed after {received} of {total} bytes")
            if gunzip is not None:
                gunzip.finish()
    except (_MirrorFailed, _CacheWriteFailed):
        raise
    except urllib.error.HTTPError as exc:
        raise _MirrorFailed(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise _MirrorFailed(f"timed out after {timeout:g} s") from None
        if isinstance(reason, OSError) and reason.strerror:
            raise _MirrorFailed(reason.strerror.lower()) from None
        raise _MirrorFailed(str(reason)) from None
    except TimeoutError:
        raise _MirrorFailed(f"timed out after {timeout:g} s") from None
    except HTTPException as exc:
        raise _MirrorFailed(f"bad HTTP response ({type(exc).__name__}: {exc})") from None
    except zlib.error as exc:
        raise _MirrorFailed(f"corrupt gzip data ({exc})") from None
    except OSError as exc:
        raise _MirrorFailed(_describe_os_error(exc)) from None
    except ValueError as exc:
        raise _MirrorFailed(f"invalid URL ({exc})") from None
    got = digest.hexdigest()
    if got != expected_sha256:
        raise _MirrorFailed(
            f"wrong content: SHA-256 {got[:16]}... instead of {expected_sha256[:16]}..."
        )


def _resolve_remote(name: str) -> RemoteSource:
    """Return the :class:`RemoteSource` called ``name``; DataError listing the known ones."""
    key = name.strip().lower().replace("_", "-")
    if key not in REMOTE_SOURCES:
        known = ", ".join(sorted(REMOTE_SOURCES))
        raise DataError(f"unknown dataset {name!r} to download; known: {known}")
    return REMOTE_SOURCES[key]


def _download(
    name: str,
    cache_dir: PathLike | None,
    mirrors: Sequence[str] | None,
    progress: bool,
    digests: Mapping[str, str] | None,
    timeout: float,
) -> Path:
    """Do the work of :func:`download` (separate so ``load`` can have a ``download`` flag)."""
    source = _resolve_remote(name)
    expected = dict(source.sha256)
    for key, value in (digests or {}).items():
        stem = key.removesuffix(".gz")
        if stem not in expected:
            raise DataError(f"digests: unknown file {key!r}; expected names from {IDX_FILES}")
        expected[stem] = value.lower()
    urls = list(source.mirrors if mirrors is None else mirrors)
    if not urls:
        raise DataError(f"no mirrors given to download {source.name}")
    target = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = target / source.name
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _error(target, f"cannot create cache directory: {_describe_os_error(exc)}") from None
    for stem in IDX_FILES:
        final = target / stem
        if final.is_file():
            if content_sha256(final) == expected[stem]:
                continue
            logger.warning("%s: cached file has the wrong SHA-256; downloading it again", final)
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
                break
        else:
            raise DataError(
                f"could not download {source.name} file {stem} from any mirror: "
                + "; ".join(failures)
            )
    return target


def download(
    name: str,
    cache_dir: PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    progress: bool = True,
    *,
    digests: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download dataset ``name`` (``"mnist"`` or ``"fashion-mnist"``) into the cache.

    For each of the four IDX files, mirrors are tried in order (``mirrors`` replaces the built-in
    list; each is a base URL serving ``<file>.gz``). The response is decompressed while it
    streams to a temporary file, with a tqdm progress bar on stderr unless ``progress`` is false,
    and its SHA-256 is checked against the built-in digest of the decompressed file (``digests``
    overrides some or all of them, keyed by canonical file name). A mirror that fails, times out
    (``timeout`` seconds) or serves wrong bytes is logged as one warning line and the next one is
    tried; if all fail, :class:`DataError` lists every mirror and its reason. Verified files are
    moved atomically into ``<cache_dir>/<name>/`` under their canonical, uncompressed names, so a
    file there is always complete and verified; files already cached with the right digest are
    not downloaded again. ``cache_dir`` defaults to :func:`default_cache_dir`. Returns the
    dataset's cache directory.
    """
    return _download(name, cache_dir, mirrors, progress, digests, timeout)
