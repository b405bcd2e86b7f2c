"""Import contracts, the way napari keeps its core Qt-free: the engine never imports Qt;
the GUI imports neither torch nor engine internals (only the public `dune_gui.engine`)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dune_gui"


def _imports(path: Path) -> list[str]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return _imports_of(path.read_text(encoding="utf-8"), parts)


def _imports_of(source: str, parts: list[str]) -> list[str]:
    """Absolute module names a module (at dotted path `parts`) imports, relative imports
    resolved, with `from dune_gui.engine import X` listed as dune_gui.engine.X too."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[:-node.level]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append(module)
            found += [f"{module}.{a.name}" for a in node.names
                      if module in ("dune_gui", "dune_gui.engine")]
    return found


def test_the_engine_never_imports_qt() -> None:
    for path in (PACKAGE / "engine").rglob("*.py"):
        bad = [m for m in _imports(path) if m.split(".")[0] in ("PySide6", "PyQt5", "PyQt6")]
        assert not bad, f"{path.name} imports {bad}"


def test_the_gui_uses_only_the_engines_public_api_and_never_torch() -> None:
    for path in (PACKAGE / "gui").rglob("*.py"):
        for module in _imports(path):
            assert module.split(".")[0] not in ("torch", "torchvision"), \
                f"{path.name} imports {module}"
            if module.startswith("dune_gui.engine."):
                assert _public(module.removeprefix("dune_gui.engine.")), \
                    f"{path.name} imports engine internals: {module}"


def _public(name: str) -> bool:
    import dune_gui.engine as engine

    return name in engine.__all__


def test_the_checker_sees_the_violations_the_gui_used_to_have() -> None:
    where = ["dune_gui", "gui", "main_window"]
    internals = _imports_of("from ..engine.progress import format_duration\n", where)
    assert "dune_gui.engine.progress" in internals and not _public("progress")
    assert "torch" in _imports_of("import torch\n", where)
    public = _imports_of("from ..engine import format_duration, protect\n", where)
    assert all(_public(m.removeprefix("dune_gui.engine.")) for m in public
               if m.startswith("dune_gui.engine."))
