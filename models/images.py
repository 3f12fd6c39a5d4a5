"""Turn pictures of handwritten digits into MNIST-style 28x28 arrays.

MNIST digits are white ink on black, size-normalised to fit a 20x20 box (keeping the aspect
ratio, with anti-aliasing) and placed in a 28x28 field so that their centre of mass is at the
centre. :func:`load_digit_image` applies the same steps to any picture -- any size, grey or
colour, with or without alpha, dark ink on paper or light ink on a dark background -- so that a
model trained on MNIST sees the kind of input it was trained on.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from models.data import DataError

__all__ = [
    "IMAGE_SUFFIXES",
    "digit_from_array",
    "image_files",
    "load_digit_image",
    "load_digit_images",
    "printable",
    "read_digit_images",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""File name endings (case-insensitive) that :func:`load_digit_images` picks up in a directory."""

BOX = 20
"""The longer side of the digit's bounding box after scaling, in pixels (as in MNIST)."""

SIZE = 28
"""Side of the output image, in pixels."""

_NOISE_FLOOR = 0.12  # ink weaker than this fraction of the strongest ink counts as paper


def _composite_alpha(image: Image.Image) -> Image.Image:
    """Flatten transparency onto a background that contrasts with the visible ink.

    Dark strokes on a transparent canvas go onto white, light strokes onto black; fully
    opaque images are returned unchanged (as RGB/L without the alpha channel).
    """
    rgba = image.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float64) / 255.0
    grey = np.asarray(rgba.convert("L"), dtype=np.float64)
    if alpha.min() >= 1.0:
        return rgba.convert("RGB")
    weight = alpha.sum()
    ink_level = float((grey * alpha).sum() / weight) if weight > 0 else 0.0
    background = 255 if ink_level < 128 else 0
    canvas = Image.new("RGBA", rgba.size, (background, background, background, 255))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def printable(path: str | os.PathLike[str]) -> str:
    """``path`` as text that fits on one line of a message or a UTF-8 file: control characters
    (a newline in a file name) escaped as ``\\n``, bytes that are not UTF-8 as ``\\xNN``."""
    text = os.fspath(path)
    if text.isprintable():
        try:
            text.encode("utf-8")
            return text
        except UnicodeEncodeError:  # undecodable bytes of the name (surrogate escapes)
            pass
    raw = os.fsencode(text).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in raw)


def _open_grey(path: Path) -> np.ndarray:
    """Decode ``path`` to a float greyscale array (0..255); DataError if it is not an image."""
    shown = printable(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. Pillow's palette-transparency warnings
            with Image.open(path) as opened:
                opened.load()
                image = ImageOps.exif_transpose(opened) or opened
                has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
                    "transparency" in image.info
                )
                if has_alpha:
                    image = _composite_alpha(image)
                grey = np.asarray(image.convert("L"), dtype=np.float64)
    except FileNotFoundError:
        raise DataError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{shown}: is a directory, not an image") from None
    except UnidentifiedImageError:
        raise DataError(f"{shown}: not an image file Pillow can read") from None
    except Image.DecompressionBombError:
        raise DataError(f"{shown}: image is too large to decode safely") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{shown}: cannot decode image ({detail})") from None
    return grey


def _border(values: np.ndarray) -> np.ndarray:
    """Return the pixels of the outermost frame of ``values`` (about 5% of each side, >= 1 px)."""
    height, width = values.shape
    band_y = max(1, height // 20)
    band_x = max(1, width // 20)
    mask = np.zeros(values.shape, dtype=bool)
    mask[:band_y, :] = mask[-band_y:, :] = True
    mask[:, :band_x] = mask[:, -band_x:] = True
    return values[mask]


def digit_from_array(grey: np.ndarray, *, source: str = "image") -> np.ndarray:
    """Convert a greyscale picture of one digit (2-D array, 0..255) to MNIST form.

    Steps: invert when the border is light (dark ink on paper); subtract the background level
    (median of the border) and stretch the ink to 0..255, dropping faint noise; crop to the
    bounding box of the ink; resize with Lanczos anti-aliasing so that the longer side is
    :data:`BOX` (20) pixels, keeping the aspect ratio, and stretch the result so the strongest
    ink is 255 again; paste into a :data:`SIZE` (28) square so
    that the centre of mass lands on pixel (14, 14) (shifted less if the digit would otherwise
    be cut off). Returns ``uint8`` ``(28, 28)``, white ink on black. Raises
    :class:`DataError` (naming ``source``) if the picture holds no ink.
    """
    values = np.asarray(grey, dtype=np.float64)
    if values.ndim != 2 or values.size == 0:
        raise DataError(f"{source}: expected a 2-D greyscale image, got shape {values.shape}")
    background = float(np.median(_border(values)))
    if background > 127.5:
        values = 255.0 - values
        background = 255.0 - background
    ink = np.clip(values - background, 0.0, None)
    peak = float(ink.max())
    if peak < 16.0:
        raise DataError(f"{source}: no digit found (the image is blank or has no contrast)")
    ink *= 255.0 / peak
    ink[ink < 255.0 * _NOISE_FLOOR] = 0.0

    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = ink.shape
    scale = BOX / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(ink.astype(np.float32)).resize(new_size, Image.Resampling.LANCZOS)
    patch = np.clip(np.asarray(resized, dtype=np.float64), 0.0, 255.0)
    patch_peak = float(patch.max())
    if patch_peak <= 0:  # pragma: no cover - a non-empty crop always keeps some ink
        raise DataError(f"{source}: no digit found after resizing")
    patch *= 255.0 / patch_peak  # thin strokes fade when shrunk; MNIST ink peaks at 255
    total = patch.sum()
    ys, xs = np.indices(patch.shape)
    centre_y = float((ys * patch).sum() / total)
    centre_x = float((xs * patch).sum() / total)
    top = min(max(math.floor(SIZE / 2 - centre_y + 0.5), 0), SIZE - patch.shape[0])
    left = min(max(math.floor(SIZE / 2 - centre_x + 0.5), 0), SIZE - patch.shape[1])
    out = np.zeros((SIZE, SIZE), dtype=np.float64)
    out[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return np.rint(out).astype(np.uint8)


def load_digit_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Load a picture of a handwritten digit as an MNIST-style ``uint8`` ``(28, 28)`` array.

    Any size and any Pillow-readable format; colour is converted to greyscale, transparency is
    flattened onto a contrasting background, EXIF rotation is applied, then
    :func:`digit_from_array` normalises it as MNIST was made. A missing, unreadable or
    non-image file, or a blank picture, raises :class:`DataError` naming the file.
    """
    path = Path(path)
    return digit_from_array(_open_grey(path), source=printable(path))


def image_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Return the PNG/JPG/JPEG files of ``directory`` sorted by name (not recursive)."""
    directory = Path(directory)
    try:
        entries = sorted(directory.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise DataError(f"{directory}: cannot list directory ({exc.strerror or exc})") from None
    return [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]


def load_digit_images(
    paths_or_dir: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> np.ndarray:
    """Load several digit pictures with :func:`load_digit_image` into ``uint8`` ``(N, 28, 28)``.

    ``paths_or_dir`` is a directory (its PNG/JPG files in name order, as :func:`image_files`
    lists them -- use that list to match results to files), a single image path, or an iterable
    of paths (kept in the given order). An empty directory or list raises :class:`DataError`.
    """
    if isinstance(paths_or_dir, (str, os.PathLike)):
        single = Path(paths_or_dir)
        if single.is_dir():
            paths = image_files(single)
            if not paths:
                raise DataError(f"{single}: no PNG or JPG images in this directory")
        else:
            paths = [single]
    else:
        paths = [Path(p) for p in paths_or_dir]
        if not paths:
            raise DataError("load_digit_images: no image paths given")
    return np.stack([load_digit_image(p) for p in paths])


def read_digit_images(
    paths: Iterable[str | os.PathLike[str]],
) -> tuple[np.ndarray, list[str | None]]:
    """Load each picture on its own, so that one bad file does not stop the others.

    Returns ``(images, problems)``: ``problems`` has one entry per path, in order -- None when
    the picture was read, else the one-line reason it could not be (not an image, truncated,
    blank, ...; without the file name) -- and ``images`` is ``uint8`` ``(K, 28, 28)``, the
    pictures that were read, in the same order (K is the number of None entries).
    """
    loaded: list[np.ndarray] = []
    problems: list[str | None] = []
    for path in paths:
        try:
            loaded.append(load_digit_image(path))
        except DataError as exc:
            message = str(exc)
            prefix = f"{printable(path)}: "
            problems.append(message[len(prefix):] if message.startswith(prefix) else message)
        else:
            problems.append(None)
    images = np.stack(loaded) if loaded else np.zeros((0, SIZE, SIZE), dtype=np.uint8)
    return images, problems
