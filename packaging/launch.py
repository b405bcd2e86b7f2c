"""Entry script for the bundled app (PyInstaller needs a file, not a console-script)."""

import sys

from dune_gui.app import main

if __name__ == "__main__":
    sys.exit(main())
