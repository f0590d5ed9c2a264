import sys
from pathlib import Path

# Test helpers (fixtures that build data files) are imported by name from their folders.
for folder in ("model",):
    sys.path.insert(0, str(Path(__file__).parent / folder))
