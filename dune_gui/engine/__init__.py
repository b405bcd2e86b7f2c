"""Headless DUNE engine. Qt-free: the CLI and the GUI are thin shells over this API."""

from .config import COLOUR_PRESETS, ColourConstraints, ProtectConfig
from .data import FolderError, FolderScan, ImageError, SkippedFile, load_thumbnail, scan_folder
from .defences import DEFENCES
from .evaluation import PEERS, EvaluateConfig, EvaluationReport, evaluate
from .models import ARCHITECTURES
from .pipeline import (
    MANIFEST_NAME,
    PreviewImage,
    ProfileMismatch,
    ProtectionJob,
    ProtectResult,
    preview,
    protect,
    resolve_device,
)
from .progress import STAGES, CancelToken, LogEvent, ProgressEvent
from .surrogates import SurrogateError

__all__ = [
    "ARCHITECTURES",
    "COLOUR_PRESETS",
    "DEFENCES",
    "MANIFEST_NAME",
    "PEERS",
    "STAGES",
    "CancelToken",
    "ColourConstraints",
    "EvaluateConfig",
    "EvaluationReport",
    "FolderError",
    "FolderScan",
    "ImageError",
    "LogEvent",
    "PreviewImage",
    "ProfileMismatch",
    "ProgressEvent",
    "ProtectConfig",
    "ProtectResult",
    "ProtectionJob",
    "SkippedFile",
    "SurrogateError",
    "evaluate",
    "load_thumbnail",
    "preview",
    "protect",
    "resolve_device",
    "scan_folder",
]
