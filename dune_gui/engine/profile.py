"""A folder's protection profile: the manifest, the per-image journal, and the rules for
extending a profile with a later run.

The manifest (`manifest.json` in the output folder) records the settings, classes, shifted
targets, colour offsets, surrogate cache keys and one record per input file. A run appends
each finished image to the journal at once (fsynced) and rewrites the manifest at most
every `MANIFEST_INTERVAL_S`, so a killed run loses at most the image being written.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from .config import (
    AUTO_ENSEMBLE,
    SETTINGS,
    ProtectConfig,
    resolve_label_shift,
    with_legacy_values,
)
from .export import append_journal_line, read_journal, write_json_atomic
from .progress import Reporter
from .shards import Shard, shard_journals

MANIFEST_NAME = "manifest.json"
JOURNAL_NAME = ".dune-journal.jsonl"  # per-image records since the last manifest write
MANIFEST_INTERVAL_S = 10.0
MANIFEST_VERSION = 1
# Settings (name -> their auto value, as a manifest stores it) that a run resolves from the
# profile it extends (Setting.follows_profile; Run.choose_working_size, choose_steps,
# choose_architectures, choose_surrogate_epochs): at auto they take the profile's value,
# explicit or resolved, so a run at auto never mismatches on them. (The label shift's auto
# is resolved from the classes instead, in comparable_method.)
FOLLOWS_THE_PROFILE_AT_AUTO: dict[str, Any] = {
    s.name: json.loads(json.dumps(s.default)) for s in SETTINGS if s.follows_profile}


class ProfileMismatch(Exception):
    """The output folder holds a protection profile made with other settings or classes."""


@dataclass
class ImageRecord:
    source: str
    output: str | None
    cls: str | None
    status: str  # "done" | "skipped"
    reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # psnr, ssim, delta_e, ...
    digest: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "output": self.output,
                               "class": self.cls, "status": self.status,
                               "reason": self.reason}
        for name in ("psnr", "ssim", "delta_e"):  # None for a skipped file
            out[name] = self.metrics.get(name)
        out.update({k: v for k, v in self.metrics.items() if k not in out})
        out["digest"] = self.digest
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageRecord:
        fixed = {"source", "output", "class", "status", "reason", "digest"}
        metrics = {k: v for k, v in data.items() if k not in fixed and v is not None}
        return cls(data["source"], data.get("output"), data.get("class"), data["status"],
                   data.get("reason"), metrics, data.get("digest"))


@dataclass
class Profile:
    """What an earlier run into the same output folder left: its manifest and records."""

    path: Path
    manifest: dict[str, Any]
    records: dict[str, ImageRecord]

    @property
    def created(self) -> str | None:
        return self.manifest.get("created")

    @property
    def surrogate_epochs(self) -> int:
        """The epochs its surrogates were trained (0: not recorded)."""
        recorded = self.manifest.get("surrogates", {}).get("epochs")
        if recorded:
            return int(recorded)
        return int(self.manifest.get("config", {}).get("method", {}).get("epochs") or 0)

    @property
    def steps(self) -> int:
        """The PGD steps it was made with (0: made at auto, which resolves the same way
        for the same folder)."""
        return int(self.manifest.get("config", {}).get("method", {}).get("steps") or 0)

    @property
    def architectures(self) -> tuple[str, ...] | None:
        """The surrogate architectures it trained (None: not recorded, and made at auto)."""
        recorded = self.manifest.get("surrogates", {}).get("architectures")
        if recorded is not None:
            return tuple(recorded)
        named = self.manifest.get("config", {}).get("method", {}).get("architectures")
        return tuple(named) if named and named != [AUTO_ENSEMBLE] else None

    @property
    def cache_keys(self) -> list[str]:
        return list(self.manifest.get("surrogates", {}).get("cache_keys") or [])

    @property
    def pattern_key(self) -> str | None:
        """The cache key of its aimed class patterns (None: made without them)."""
        return self.manifest.get("class_patterns", {}).get("cache_key")

    @property
    def noise_key(self) -> str | None:
        """The cache key of its error-minimising noise (None: made without it)."""
        return self.manifest.get("noise", {}).get("cache_key")

    def colour_offsets(self, classes: list[str]) -> torch.Tensor | None:
        stored = self.manifest.get("colour_offsets")
        if not stored:
            return None
        return torch.tensor([stored[name] for name in classes])

    def is_done(self, rel: str, digest: str | None, output_dir: Path) -> bool:
        """`rel` was protected from the same bytes and its output is still there."""
        record = self.records.get(rel)
        return (record is not None and record.status == "done" and digest is not None
                and record.digest == digest and record.output is not None
                and (output_dir / record.output).is_file())


def comparable_method(method: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """Method settings with the label shift as used (auto resolved), so a profile written
    with an explicit 3 agrees with a run at auto that also uses 3."""
    out = dict(method)
    if "label_offset" in out:
        with contextlib.suppress(ValueError):  # an invalid shift stays as written: it differs
            out["label_offset"] = resolve_label_shift(int(out["label_offset"]), num_classes)
    return out


def open_profile(config: ProtectConfig, classes: list[str], reporter: Reporter
                 ) -> Profile | None:
    """The profile in `config.output_dir`, or None for a new folder. Raises ProfileMismatch
    when the run's settings or classes differ from the profile's."""
    path = config.output_dir / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProfileMismatch(f"{path} exists but cannot be read ({exc}); choose an "
                              "empty output folder") from exc
    notes: list[str] = []
    theirs = with_legacy_values(manifest.get("config", {}).get("method", {}), notes)
    for note in notes:
        reporter.info(f"profile written by an older version: {note}")
    k = len(classes)
    theirs = comparable_method(theirs, k)
    ours = comparable_method(json.loads(json.dumps(config.method_dict())), k)
    for name, auto in FOLLOWS_THE_PROFILE_AT_AUTO.items():
        if ours.get(name) in (auto, None) and name in theirs:
            ours[name] = theirs[name]
    diff = sorted(key for key in set(theirs) | set(ours) if theirs.get(key) != ours.get(key))
    if diff:
        raise ProfileMismatch(
            f"the output folder was protected with different settings ({', '.join(diff)}); "
            f"use the same settings (e.g. --config {path}) or another output folder")
    if manifest.get("classes") != classes:
        raise ProfileMismatch("the output folder was protected with other classes "
                              f"({', '.join(manifest.get('classes', []))}); use another "
                              "output folder")
    records: dict[str, ImageRecord] = {}
    journals = [config.output_dir / JOURNAL_NAME, *shard_journals(config.output_dir)]
    for data in manifest.get("images", []) + [r for j in journals for r in read_journal(j)]:
        record = ImageRecord.from_json(data)
        records[record.source] = record
    done = sum(r.status == "done" for r in records.values())
    reporter.info(f"continuing the protection profile in {path} ({done} images already "
                  "protected)")
    return Profile(path, manifest, records)


@dataclass(frozen=True)
class ProfileContent:
    """Everything a manifest states besides its image records."""

    config: ProtectConfig
    device: str
    classes: list[str]
    label_shift: int
    targets: list[int]
    offsets: torch.Tensor  # K x 3G^2
    members: list[str]
    cache_keys: list[str]
    created: str | None = None
    working_size: int = 32  # as used (the setting may say 0, auto)
    surrogate_epochs: int = 0  # as used (the setting may say 0, auto)
    architectures: tuple[str, ...] = ()  # as trained (the setting may say auto)
    pattern_key: str | None = None  # where its class patterns are cached (None: none made)
    pattern_aims: list[int] | None = None  # per class, the ImageNet class its pattern aims at
    noise_key: str | None = None  # where its error-minimising noise is cached (None: none)
    # the noise learner's accuracy on the protected images after each round
    noise_accuracy: list[float] | None = None


def manifest_data(content: ProfileContent, records: dict[str, ImageRecord]) -> dict[str, Any]:
    cfg, classes = content.config, content.classes
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {
        "version": MANIFEST_VERSION,
        "app": {"name": "DUNE Protect", "version": __version__},
        "created": content.created or now,
        "updated": now,
        "config": {"method": cfg.method_dict(), "input_dir": str(cfg.input_dir.resolve()),
                   "output_dir": str(cfg.output_dir.resolve()), "device": content.device},
        "seed": cfg.seed,
        "mode": cfg.mode,
        "classes": classes,
        "label_shift": content.label_shift,
        "working_size": content.working_size,
        "targets": {name: classes[t] for name, t in zip(classes, content.targets, strict=True)},
        "colour_offsets": {name: [float(v) for v in content.offsets[i].tolist()]
                           for i, name in enumerate(classes)},
        "eps": cfg.eps if cfg.uses_spatial else 0.0,
        "surrogates": {"members": content.members, "cache_keys": content.cache_keys,
                       "epochs": content.surrogate_epochs,
                       "architectures": list(content.architectures)},
        **({"class_patterns": {
            "cache_key": content.pattern_key, "eps": cfg.pattern_eps,
            "imagenet_aims": dict(zip(classes, content.pattern_aims or [], strict=True))}}
           if content.pattern_key else {}),
        **({"noise": {"cache_key": content.noise_key, "learner": cfg.noise_learner,
                      "learner_accuracy_by_round": [round(a, 4) for a in
                                                    content.noise_accuracy or []]}}
           if content.noise_key else {}),
        "images": [records[k].to_json() for k in sorted(records)],
    }


class ManifestWriter:
    """Keeps a run's records durable: every finished image goes to the journal at once, the
    manifest is rewritten at most every MANIFEST_INTERVAL_S (rewriting a 20k-record manifest
    every batch would be quadratic) and on `close`.

    A shard (shards.py) writes only its own journal: the manifest is shared by every shard,
    and the ordinary run that follows them folds their journals into it. Safe to call from
    several threads (the export's workers record each image as soon as it is written)."""

    def __init__(self, content: ProfileContent, records: dict[str, ImageRecord],
                 shard: Shard | None = None) -> None:
        self.content = content
        self.records = records
        self.output_dir = content.config.output_dir
        self.shard = shard
        self.journal = self.output_dir / (shard.journal_name if shard else JOURNAL_NAME)
        self.path = self.output_dir / MANIFEST_NAME
        self._last = time.monotonic()
        self._lock = threading.RLock()
        # a new profile exists before its first image is written; an existing one is only
        # rewritten once this run holds its earlier records (else a kill right here would
        # leave a manifest that forgot them)
        if not self.path.exists():
            self.flush()

    def add(self, record: ImageRecord) -> None:
        with self._lock:
            self.records[record.source] = record
            if record.status == "done":
                append_journal_line(self.journal, record.to_json())

    def maybe_flush(self) -> None:
        if time.monotonic() - self._last > MANIFEST_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            self._last = time.monotonic()
            if self.shard is not None:
                return  # every line of its journal is already durable
            write_json_atomic(manifest_data(self.content, self.records), self.path)
            # the records of every journal are in the manifest now
            for journal in [self.journal, *shard_journals(self.output_dir)]:
                journal.unlink(missing_ok=True)
