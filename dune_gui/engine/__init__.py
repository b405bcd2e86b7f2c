"""Headless DUNE engine. Qt-free: the CLI and the GUI are thin shells over this API."""

from .config import COLOUR_PRESETS, ColourConstraints, ProtectConfig
from .data import FolderError, FolderScan, ImageError, SkippedFile, scan_folder
from .models import ARCHITECTURES
from .pipeline import MANIFEST_NAME, ProfileMismatch, ProtectionJob, ProtectResult, protect
from .progress import STAGES, CancelToken, LogEvent, ProgressEvent
from .surrogates import SurrogateError

__all__ = [
    "ARCHITECTURES", "COLOUR_PRESETS", "MANIFEST_NAME", "STAGES", "CancelToken",
    "ColourConstraints", "FolderError", "FolderScan", "ImageError", "LogEvent",
    "ProfileMismatch", "ProgressEvent", "ProtectConfig", "ProtectResult", "ProtectionJob",
    "SkippedFile", "SurrogateError", "protect", "scan_folder",
]
