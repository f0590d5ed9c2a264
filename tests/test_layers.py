"""The package layering of DESIGN.md, checked on the source: who must not import whom.

Every module's syntax tree is read, so an import inside a function (where a reader of the file's
header misses it) counts as much as one at the top.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hoposer"

#: package -> the packages it must not import (DESIGN.md's "must not" column).
FORBIDDEN = {
    "hoposer.train": ("hoposer.stream", "hoposer.engine"),
    "hoposer.calib": ("hoposer.stream", "hoposer.train", "hoposer.engine"),
    "hoposer.frames": (
        "hoposer.stream",
        "hoposer.train",
        "hoposer.engine",
        "hoposer.model",
        "hoposer.calib",
    ),
    "hoposer.engine": ("hoposer.stream", "hoposer.frames"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module `source` imports, anywhere in it; `from a import b` gives `a` and `a.b`."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, `level` steps up
                package = module.split(".")
                package = package if is_package else package[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    folder = PACKAGE.parent / package.replace(".", "/")
    found = []
    for path in sorted(folder.rglob("*.py")):
        module = module_name(path)
        for name in imported_modules(path.read_text(), module, path.name == "__init__.py"):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{module} imports {name}")
    return sorted(set(found))


@pytest.mark.parametrize("package", list(FORBIDDEN))
def test_no_package_imports_what_the_design_forbids(package):
    assert (PACKAGE.parent / package.replace(".", "/")).is_dir()
    assert violations(package, FORBIDDEN[package]) == []


def test_imports_inside_functions_and_relative_ones_are_seen():
    source = (
        "import numpy\n"
        "def label():\n"
        "    from hoposer.stream.detect import MediaPipeHandDetector\n"
        "class Report:\n"
        "    def tile(self):\n"
        "        import hoposer.stream.overlay as overlay\n"
        "        from hoposer import engine\n"
        "        from ..stream import run\n"
        "        from . import videos\n"
    )
    found = imported_modules(source, "hoposer.train.pseudo.report")
    assert {
        "hoposer.stream.detect",
        "hoposer.stream.overlay",
        "hoposer.engine",
        "hoposer.train.stream.run",
        "hoposer.train.pseudo.videos",
    } <= found
    assert "hoposer.stream.run" in imported_modules(
        "from ..stream import run", "hoposer.train.report"
    )
