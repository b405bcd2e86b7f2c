"""DUNE Protect: make a labeled image folder unlearnable (DUNE, ICML 2026)."""

__version__ = "0.1.0"
APP_NAME = "DUNE Protect"
