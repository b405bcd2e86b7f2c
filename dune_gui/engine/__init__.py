"""Headless DUNE engine: the public API the CLI and the GUI use (they import nothing else
from the engine). Qt-free.

    protect(ProtectConfig, progress, log, cancel) -> ProtectResult
    preview(ProtectConfig, rels, ...) -> (classes, [PreviewImage])
    evaluate(EvaluateConfig, progress, log, cancel) -> EvaluationReport
"""

from .config import (
    AUTO_ENSEMBLE,
    AUTO_ENSEMBLE_HELP,
    COLOUR_PRESETS,
    DEFAULTS,
    PHOTO_ENSEMBLE,
    SETTINGS,
    SETTINGS_BY_NAME,
    SMALL_IMAGE_ENSEMBLE,
    ColourConstraints,
    ProtectConfig,
    Setting,
    unused_settings,
)
from .cpu_memory import keep_cpu_memory
from .data import FolderError, FolderScan, ImageError, SkippedFile, load_thumbnail, scan_folder
from .defences import DEFENCES
from .devices import cuda_device_name, warm_up
from .evaluation import (
    PEERS,
    VICTIM_LEARNING_RATES,
    EvaluateConfig,
    EvaluationReport,
    estimate_evaluate,
    evaluate,
    markdown_table,
    plain_summary,
)
from .metrics import DELTA_E_MEANING
from .models import ARCHITECTURES
from .pipeline import PreviewImage, ProtectResult, preview, protect
from .presets import DEFAULT_PRESET, PRESETS, Preset, preset_of
from .pretrained import pretrained_weights_missing
from .profile import MANIFEST_NAME, ProfileMismatch
from .progress import (
    INTERLEAVED,
    PREVIEW_STEP,
    PREVIEW_TITLE,
    PROTECT_STAGES,
    STAGE_TITLES,
    STAGES,
    STEP_TITLES,
    VERIFY_STAGES,
    Cancelled,
    CancelToken,
    LogEvent,
    ProgressEvent,
    Stage,
    format_duration,
)
from .shards import Shard
from .stages import class_count_problem, empty_classes_problem, resolve_device
from .surrogates import SurrogateError
from .verification_time import VerificationEstimate
from .victim_results import default_victim_results_dir

keep_cpu_memory()  # every entry point (CLI, app, benches) imports the engine first

# Exceptions whose message is written for the user (one line, says what to do); anything
# else reaching a shell is a bug and is shown as such.
USER_ERRORS: tuple[type[BaseException], ...] = (FolderError, ProfileMismatch, SurrogateError,
                                                ImageError, ValueError, OSError, RuntimeError)

__all__ = [
    "ARCHITECTURES",
    "AUTO_ENSEMBLE",
    "AUTO_ENSEMBLE_HELP",
    "COLOUR_PRESETS",
    "DEFAULTS",
    "DEFAULT_PRESET",
    "DEFENCES",
    "DELTA_E_MEANING",
    "INTERLEAVED",
    "MANIFEST_NAME",
    "PEERS",
    "PHOTO_ENSEMBLE",
    "PRESETS",
    "PREVIEW_STEP",
    "PREVIEW_TITLE",
    "PROTECT_STAGES",
    "SETTINGS",
    "SETTINGS_BY_NAME",
    "SMALL_IMAGE_ENSEMBLE",
    "STAGES",
    "STAGE_TITLES",
    "STEP_TITLES",
    "USER_ERRORS",
    "VERIFY_STAGES",
    "VICTIM_LEARNING_RATES",
    "CancelToken",
    "Cancelled",
    "ColourConstraints",
    "EvaluateConfig",
    "EvaluationReport",
    "FolderError",
    "FolderScan",
    "ImageError",
    "LogEvent",
    "Preset",
    "PreviewImage",
    "ProfileMismatch",
    "ProgressEvent",
    "ProtectConfig",
    "ProtectResult",
    "Setting",
    "Shard",
    "SkippedFile",
    "Stage",
    "SurrogateError",
    "VerificationEstimate",
    "class_count_problem",
    "cuda_device_name",
    "default_victim_results_dir",
    "empty_classes_problem",
    "estimate_evaluate",
    "evaluate",
    "format_duration",
    "load_thumbnail",
    "markdown_table",
    "plain_summary",
    "preset_of",
    "pretrained_weights_missing",
    "preview",
    "protect",
    "resolve_device",
    "scan_folder",
    "unused_settings",
    "warm_up",
]
