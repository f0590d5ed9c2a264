import sys
from pathlib import Path

import pytest
import torch

# Test helpers (fixtures that build data files) are imported by name from their folders.
for folder in ("", "model"):
    sys.path.insert(0, str(Path(__file__).parent / folder))


def pytest_collection_modifyitems(config, items):
    """GPU tests skip cleanly on machines without CUDA."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
