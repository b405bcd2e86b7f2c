"""The PySide6 desktop app. Talks to the engine only through `dune_gui.engine`'s public API."""
