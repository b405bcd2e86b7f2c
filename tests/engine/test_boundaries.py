import subprocess
import sys


def test_engine_and_cli_never_import_qt() -> None:
    code = ("import sys, dune_gui.engine, dune_gui.cli; "
            "bad = [m for m in sys.modules if m.startswith(('PySide6', 'shiboken6'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
