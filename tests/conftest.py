from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("tinygraph", deadline=None, max_examples=40, derandomize=True)
settings.load_profile("tinygraph")

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


@pytest.fixture
def mnist_dir() -> Path:
    """The full MNIST files beside the repository (as CI has them)."""
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"full MNIST not found at {MNIST_DIR}")
    return MNIST_DIR
