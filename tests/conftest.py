import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared" / "data" / "mnist"


# Set at import, before any module-scoped fixture trains: CI has the machine's two cores to itself; where other
# work shares them, TWOSTAGE_TEST_THREADS=1 avoids oversubscription, which slows torch several times over.
torch.set_num_threads(int(os.environ.get("TWOSTAGE_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def mnist_path() -> str:
    if not (MNIST / "mnist").is_dir():
        pytest.skip(f"real MNIST is not at {MNIST} (the project's ../shared/data/mnist); the digits tests still run")
    return str(MNIST)
