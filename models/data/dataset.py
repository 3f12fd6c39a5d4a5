"""The in-memory :class:`Dataset` and the class names of the datasets we load."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .files import DataError

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
"""Class names of MNIST and the Kaggle digit files: ``"0"`` .. ``"9"``."""

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""Class names of Fashion-MNIST, in label order 0..9."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """An image-classification dataset held in memory.

    ``train_images`` / ``test_images`` are ``uint8`` arrays shaped ``(N, 28, 28)``, ink bright on
    a dark background as in MNIST; ``train_labels`` / ``test_labels`` are ``int64`` class indices
    into ``classes``. The test split is ``None`` when the source has none (a Kaggle ``train.csv``).
    Labels are converted to ``int64`` on construction; wrong shapes or dtypes, mismatched counts,
    or labels outside ``range(len(classes))`` raise :class:`DataError`.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    name: str
    classes: list[str] = field(default_factory=lambda: list(DIGIT_CLASSES))

    def __post_init__(self) -> None:
        """Validate the arrays and normalise labels to int64 and classes to a list."""
        object.__setattr__(self, "classes", [str(c) for c in self.classes])
        if (self.test_images is None) != (self.test_labels is None):
            raise DataError(f"dataset {self.name!r}: test images and test labels must both be set")
        splits = [("train", "train_images", "train_labels")]
        if self.test_images is not None:
            splits.append(("test", "test_images", "test_labels"))
        for split, images_attr, labels_attr in splits:
            images = getattr(self, images_attr)
            labels = np.asarray(getattr(self, labels_attr))
            if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 3:
                shape = getattr(images, "shape", None)
                dtype = getattr(images, "dtype", type(images).__name__)
                raise DataError(
                    f"dataset {self.name!r}: {split} images must be a uint8 array (N, H, W), "
                    f"got {dtype} {shape}"
                )
            if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
                raise DataError(
                    f"dataset {self.name!r}: {split} labels must be 1-D with one label per image "
                    f"({images.shape[0]}), got shape {labels.shape}"
                )
            if labels.size and not np.issubdtype(labels.dtype, np.integer):
                raise DataError(f"dataset {self.name!r}: {split} labels must be integers")
            labels = labels.astype(np.int64, copy=False)
            if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
                raise DataError(
                    f"dataset {self.name!r}: {split} labels must lie in 0..{len(self.classes) - 1}"
                )
            object.__setattr__(self, labels_attr, labels)

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(classes)``)."""
        return len(self.classes)

    def __repr__(self) -> str:
        """Summarise the dataset without printing its arrays."""
        test = "none" if self.test_images is None else str(len(self.test_images))
        shape = "x".join(str(s) for s in self.train_images.shape[1:])
        return (
            f"Dataset(name={self.name!r}, train={len(self.train_images)}, test={test}, "
            f"image={shape}, classes={len(self.classes)})"
        )
