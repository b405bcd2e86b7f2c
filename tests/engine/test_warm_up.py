"""engine.warm_up loads what a first run would otherwise load lazily (the GUI calls it in a
background thread so that this import does not freeze the window mid-run)."""

from __future__ import annotations

import subprocess
import sys


def test_warm_up_loads_the_modules_the_first_optimiser_step_needs() -> None:
    code = ("import sys\n"
            "from dune_gui.engine import warm_up\n"
            "assert 'torch._dynamo' not in sys.modules\n"
            "warm_up()\n"
            "assert 'torch._dynamo' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_the_app_warms_up_in_the_background_and_freezes_start_up_objects() -> None:
    code = ("import gc\n"
            "from dune_gui.app import start_warm_up\n"
            "thread = start_warm_up()\n"
            "assert gc.get_freeze_count() > 0  # the objects loaded so far, at once\n"
            "before = gc.get_freeze_count()\n"
            "thread.join(300)\n"
            "assert not thread.is_alive()\n"
            "assert gc.get_freeze_count() > before  # and torch's lazy modules after\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
