"""Tests for models.images: pictures of digits turned into MNIST-style 28x28 arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from models import data, images
from models.data import DataError


def centre_of_mass(array: np.ndarray) -> tuple[float, float]:
    """Intensity-weighted centre (row, col) in pixel-index coordinates."""
    weights = array.astype(np.float64)
    ys, xs = np.indices(array.shape)
    return float((ys * weights).sum() / weights.sum()), float((xs * weights).sum() / weights.sum())


def ink_box(array: np.ndarray) -> tuple[int, int]:
    """Height and width of the bounding box of the non-zero pixels."""
    rows = np.flatnonzero(array.any(axis=1))
    cols = np.flatnonzero(array.any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def assert_mnist_like(digit: np.ndarray) -> None:
    """Shape, dtype, white ink on black, 20-px box, centre of mass at (14, 14)."""
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    assert digit.max() >= 200, "ink should be bright"
    border = np.concatenate([digit[:2].ravel(), digit[-2:].ravel(), digit[:, :2].ravel()])
    assert border.max() == 0, "background should be black"
    height, width = ink_box(digit)
    assert max(height, width) <= 20
    assert max(height, width) >= 18
    cy, cx = centre_of_mass(digit)
    assert abs(cy - 14) <= 1.0 and abs(cx - 14) <= 1.0, (cy, cx)


def draw_ring(
    size: tuple[int, int], *, mode: str = "L", background: object = 255, ink: object = 0
) -> Image.Image:
    """A thick ellipse (a drawn '0') in the middle-left of a canvas of ``size``."""
    width, height = size
    image = Image.new(mode, size, background)
    pen = max(2, min(width, height) // 12)
    box = (width * 0.2, height * 0.15, width * 0.6, height * 0.85)
    ImageDraw.Draw(image).ellipse(box, outline=ink, width=pen)
    return image


@pytest.mark.parametrize(
    ("mode", "background", "ink", "size", "suffix"),
    [
        ("L", 255, 0, (137, 91), ".png"),  # dark ink on white paper
        ("L", 0, 255, (91, 137), ".png"),  # white ink on black, like MNIST
        ("RGB", (250, 240, 200), (20, 30, 160), (301, 257), ".png"),  # blue pen, yellow paper
        ("RGB", (255, 255, 255), (0, 0, 0), (640, 480), ".jpg"),  # JPEG artefacts
        ("RGBA", (0, 0, 0, 0), (0, 0, 0, 255), (200, 211), ".png"),  # black ink, transparent
        ("LA", (255, 0), (255, 255), (75, 333), ".png"),  # white ink, transparent
        ("L", 200, 60, (33, 29), ".png"),  # tiny, low contrast, grey paper
    ],
)
def test_drawn_digit_becomes_mnist_like(
    tmp_path: Path, mode: str, background: object, ink: object, size: tuple[int, int], suffix: str
) -> None:
    path = tmp_path / f"digit{suffix}"
    draw_ring(size, mode=mode, background=background, ink=ink).save(path)
    assert_mnist_like(images.load_digit_image(path))


def test_aspect_ratio_is_kept(tmp_path: Path) -> None:
    image = Image.new("L", (120, 160), 255)
    ImageDraw.Draw(image).rectangle((55, 20, 64, 139), fill=0)  # 10 x 120 bar: a '1'
    path = tmp_path / "one.png"
    image.save(path)
    digit = images.load_digit_image(path)
    height, width = ink_box(digit)
    assert height == 20 and width <= 4
    assert_mnist_like(digit)


def test_palette_image_with_transparency(tmp_path: Path) -> None:
    ring = draw_ring((120, 120), mode="RGBA", background=(255, 255, 255, 0), ink=(0, 0, 0, 255))
    path = tmp_path / "palette.png"
    ring.convert("P").save(path, transparency=0)
    assert_mnist_like(images.load_digit_image(path))


@given(
    width=st.integers(40, 400),
    height=st.integers(40, 400),
    light_paper=st.booleans(),
)
def test_any_size_and_polarity(width: int, height: int, light_paper: bool) -> None:
    paper, ink = (240, 15) if light_paper else (10, 230)
    picture = np.asarray(draw_ring((width, height), background=paper, ink=ink), dtype=np.float64)
    assert_mnist_like(images.digit_from_array(picture))


def test_mnist_digit_survives_a_round_trip() -> None:
    """An MNIST digit printed large, dark on light and noisy, comes back close to itself."""
    sample = data.load_sample()
    assert sample.test_images is not None
    rng = np.random.default_rng(0)
    scores = []
    for original in sample.test_images[:40]:
        big = Image.fromarray(255 - original).resize((252, 252), Image.Resampling.BICUBIC)
        noisy = np.clip(np.asarray(big, dtype=np.float64) + rng.normal(0, 6, (252, 252)), 0, 255)
        result = images.digit_from_array(noisy).astype(np.float64)
        best = max(
            np.corrcoef(np.roll(result, (dy, dx), axis=(0, 1)).ravel(), original.ravel())[0, 1]
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
        )
        scores.append(best)
    assert np.mean(scores) > 0.9 and min(scores) > 0.75, scores


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture\n")
    with pytest.raises(DataError) as exc:
        images.load_digit_image(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_truncated_and_missing_files(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    draw_ring((200, 200)).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(DataError, match=r"cut\.png"):
        images.load_digit_image(cut)
    with pytest.raises(DataError, match=r"missing\.png: no such file"):
        images.load_digit_image(tmp_path / "missing.png")


def test_blank_image(tmp_path: Path) -> None:
    path = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(path)
    with pytest.raises(DataError, match=r"blank\.png: no digit found"):
        images.load_digit_image(path)


def test_load_digit_images_from_directory(tmp_path: Path) -> None:
    draw_ring((80, 100)).save(tmp_path / "b.png")
    draw_ring((100, 80), background=0, ink=255).save(tmp_path / "a.JPG", format="JPEG")
    draw_ring((60, 60)).save(tmp_path / "c.jpeg", format="JPEG")
    (tmp_path / "readme.txt").write_text("ignored")
    assert [p.name for p in images.image_files(tmp_path)] == ["a.JPG", "b.png", "c.jpeg"]
    batch = images.load_digit_images(tmp_path)
    assert batch.shape == (3, 28, 28) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch[1], images.load_digit_image(tmp_path / "b.png"))
    listed = images.load_digit_images([tmp_path / "c.jpeg", tmp_path / "b.png"])
    np.testing.assert_array_equal(listed[1], batch[1])
    assert images.load_digit_images(tmp_path / "b.png").shape == (1, 28, 28)


def test_load_digit_images_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no PNG or JPG"):
        images.load_digit_images(tmp_path)
    with pytest.raises(DataError, match="no image paths"):
        images.load_digit_images([])
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match=r"bad\.png"):
        images.load_digit_images(tmp_path)


def test_read_digit_images_reads_each_picture_on_its_own(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    draw_ring((90, 90)).save(good)
    junk = tmp_path / "junk.png"
    junk.write_text("not a picture")
    blank = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(blank)
    pictures, problems = images.read_digit_images([junk, good, blank, tmp_path / "gone.png"])
    assert problems == [
        "not an image file Pillow can read",
        None,
        "no digit found (the image is blank or has no contrast)",
        "no such file",
    ]
    assert pictures.shape == (1, 28, 28) and pictures.dtype == np.uint8
    np.testing.assert_array_equal(pictures[0], images.load_digit_image(good))
    nothing, problems = images.read_digit_images([junk])
    assert nothing.shape == (0, 28, 28) and problems == ["not an image file Pillow can read"]


def test_messages_name_files_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "two\nlines.png"
    path.write_text("not a picture")
    with pytest.raises(DataError) as exc:
        images.load_digit_image(path)
    assert "\n" not in str(exc.value) and "two\\nlines.png: not an image" in str(exc.value)
    assert images.printable("a\udcff b\t.png") == "a\\xff b\\t.png"  # undecodable byte, tab
    assert images.printable("chiffre é.png") == "chiffre é.png"
