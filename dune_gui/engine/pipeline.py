"""The protection job: scan -> surrogates -> colour offsets -> spatial PGD + export.

`protect()` is the one call the CLI and GUI make. `ProtectionJob` exposes the stages
separately so the GUI can preview a few images with the same ensemble and offsets.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from .colour import ColourOffsetSearch, describe_offset, expand_offsets, offset_values
from .config import ProtectConfig, with_legacy_values
from .data import (
    FolderError,
    FolderScan,
    ImageError,
    ImageItem,
    SkippedFile,
    decode_full,
    decode_working,
    file_digest,
    resize_to_working,
    scan_folder,
)
from .export import (
    append_journal_line,
    compose,
    output_names,
    quality_metrics,
    read_back,
    read_journal,
    remove_stale_temporaries,
    save_image_atomic,
    to_pil,
    write_json_atomic,
)
from .progress import Cancelled, CancelToken, LogCallback, ProgressCallback, Reporter
from .spatial import SpatialPGD
from .surrogates import (
    Ensemble,
    SurrogateMember,
    cache_key,
    data_fingerprint,
    default_cache_dir,
    load_cached,
    load_surrogate_file,
    members_from_checkpoints,
    obtain_checkpoints,
)
from .training import checkpoint_epochs

MANIFEST_NAME = "manifest.json"
JOURNAL_NAME = ".dune-journal.jsonl"  # per-image records since the last manifest write
MANIFEST_INTERVAL_S = 10.0
# Largest shift (working-size pixels) of the flip-and-shift views PGD optimises through with
# `pgd_augment`; victims commonly train with random crops of up to 4 px at 32 px.
PGD_SHIFT = 2
# Share of the colour search's cross-entropy scored on the grayscale view with `grey_robust`.
GREY_VIEW_WEIGHT = 0.5
MANIFEST_VERSION = 1


class ProfileMismatch(Exception):
    """The output folder holds a protection profile made with other settings or classes."""


@dataclass
class ImageRecord:
    source: str
    output: str | None
    cls: str | None
    status: str  # "done" | "skipped"
    reason: str | None = None
    psnr: float | None = None
    ssim: float | None = None
    delta_e: float | None = None
    digest: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "output": self.output, "class": self.cls,
                "status": self.status, "reason": self.reason, "psnr": self.psnr,
                "ssim": self.ssim, "delta_e": self.delta_e, "digest": self.digest}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageRecord:
        return cls(data["source"], data.get("output"), data.get("class"), data["status"],
                   data.get("reason"), data.get("psnr"), data.get("ssim"), data.get("delta_e"),
                   data.get("digest"))


@dataclass
class ProtectResult:
    status: str  # "completed" | "cancelled"
    output_dir: Path
    manifest_path: Path
    classes: list[str]
    targets: dict[str, str]
    colour_offsets: dict[str, list[float]]
    protected: int  # written by this run
    reused: int  # already protected by an earlier run of the same profile
    skipped: list[SkippedFile]
    timings: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"


def _file_identity(spec: str) -> str:
    path = Path(spec.split("=", 1)[-1])
    try:
        return file_digest(path)
    except ImageError:
        return spec


def _read_offsets(path: Path, classes: list[str], values: int) -> torch.Tensor | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        offsets = torch.tensor([[float(v) for v in data[name]] for name in classes])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return offsets if offsets.shape[1] == values else None


@dataclass
class PreviewImage:
    """One image protected in memory; arrays are H x W x 3 float32 in image space."""

    rel: str
    cls: str
    target: str
    original: np.ndarray
    spatial: np.ndarray  # signed spatial perturbation as applied (|.| <= eps)
    colour: np.ndarray  # the class's offset: 3 G^2 values (channel, row, column); G = 1: RGB
    colour_field: np.ndarray  # H x W x 3: that offset spread over the image as the export adds it
    protected: np.ndarray  # exactly the pixels the export writes
    eps: float
    psnr: float
    ssim: float
    delta_e: float
    prediction_before: list[float]
    prediction_after: list[float]


def preview(config: ProtectConfig, rels: list[str] | None = None, count: int = 4,
            progress: ProgressCallback | None = None, log: LogCallback | None = None,
            cancel: CancelToken | None = None) -> tuple[list[str], list[PreviewImage]]:
    """Protect a few images of `config.input_dir` in memory (nothing is written except the
    surrogate and colour caches). Without `rels`, `count` images spread over the classes."""
    reporter = Reporter(progress, log, cancel)
    job = ProtectionJob(config, reporter)
    job.prepare(preview=True)
    job.build_ensemble()
    job.colour_offsets()
    assert job.scan is not None
    if rels is None:
        per_class: dict[int, list[str]] = {}
        for item in job.scan.items:
            per_class.setdefault(item.label, []).append(item.rel)
        rels = []
        depth = 0
        while len(rels) < count and any(depth < len(v) for v in per_class.values()):
            for label in sorted(per_class):
                if depth < len(per_class[label]) and len(rels) < count:
                    rels.append(per_class[label][depth])
            depth += 1
    return job.scan.classes, job.preview_images(rels)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but no CUDA device is available "
                           "(choose device 'auto' or 'cpu')")
    return torch.device(name)


def check_locations(input_dir: Path, output_dir: Path) -> None:
    src, dst = input_dir.resolve(), output_dir.resolve()
    if dst == src or dst.is_relative_to(src):
        raise FolderError("the output folder may not be the input folder or inside it "
                          f"({dst} is inside {src}); choose a folder elsewhere")
    if src.is_relative_to(dst):
        raise FolderError(f"the output folder {dst} contains the input folder; choose a "
                          "separate folder so outputs can never overwrite originals")


def check_writable(output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".dune-write-test.", dir=output_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise FolderError(f"cannot write to the output folder {output_dir}: "
                          f"{exc.strerror or exc}") from exc


def target_labels(num_classes: int, offset: int) -> list[int]:
    return [(y + offset) % num_classes for y in range(num_classes)]


class ProtectionJob:
    """One run over one folder. Stages run in order; each may raise Cancelled."""

    def __init__(self, config: ProtectConfig, reporter: Reporter) -> None:
        self.config = config
        self.rep = reporter
        self.device = resolve_device(config.device)
        self.cache_dir = config.cache_dir or default_cache_dir()
        self.scan: FolderScan | None = None
        self.digests: dict[str, str] = {}
        self.working: dict[str, torch.Tensor] = {}  # rel -> 3 x R x R uint8
        self.skipped: list[SkippedFile] = []
        self.profile: dict[str, Any] | None = None
        self.previous: dict[str, ImageRecord] = {}
        self.ensemble: Ensemble | None = None
        self.surrogate_keys: list[str] = []
        self.offsets: torch.Tensor | None = None  # K x 3G^2 (G = config.colour_grid)
        self.timings: dict[str, float] = {}

    # ---- stage 1: scan -------------------------------------------------------------
    def prepare(self, preview: bool = False) -> None:
        """Scan, hash and decode. With `preview`, the output folder is ignored entirely."""
        cfg = self.config
        start = time.monotonic()
        if not preview:
            check_locations(cfg.input_dir, cfg.output_dir)
        scan = scan_folder(cfg.input_dir)
        self.skipped = list(scan.skipped)
        k = len(scan.classes)
        if k < 2:
            raise FolderError(f"found {k} class folder{'s' if k != 1 else ''} in "
                              f"{cfg.input_dir}; a labeled folder needs at least two (one "
                              "subfolder per class)")
        if cfg.label_offset % k == 0:
            raise FolderError(f"label offset {cfg.label_offset} is a multiple of the number "
                              f"of classes ({k}): every image would keep its own label")
        self.profile = None if preview else self._load_profile(scan)
        todo = self._digest(scan)
        need_all = self.profile is None or not self._cache_complete()
        if self.profile is not None and need_all:
            self.rep.warning("the cached surrogates of this profile are gone; they are "
                             "retrained on the folder as it is now")
        wanted = scan.items if need_all else [scan.items[i] for i in todo]
        self._decode_working(wanted, len(scan.items))
        usable = [item for item in scan.items if item.rel in self.digests]
        counts = [0] * k
        for item in usable:
            counts[item.label] += 1
        empty = [scan.classes[i] for i, c in enumerate(counts) if c == 0]
        if empty:
            raise FolderError(f"class folder{'s' if len(empty) > 1 else ''} "
                              f"{', '.join(repr(e) for e in empty)} "
                              f"{'have' if len(empty) > 1 else 'has'} no usable image")
        scan.items = usable
        self.scan = scan
        self.timings["scan"] = time.monotonic() - start
        self.rep.info(f"{len(usable)} images in {k} classes; {len(self.skipped)} files skipped")
        cfg = self.config
        if cfg.mode != "colour" and cfg.steps * cfg.step_size < cfg.eps * (1 - 1e-6):
            # e.g. the 16/255 budget with the paper's 30 steps of 0.5/255: the sign steps
            # cannot travel further than 15/255, so the larger budget buys nothing
            self.rep.warning(
                f"{cfg.steps} steps of {cfg.step_size * 255:g}/255 reach at most "
                f"{cfg.steps * cfg.step_size * 255:g}/255, less than the budget of "
                f"{cfg.eps * 255:g}/255: raise the step size (eps / 16 at 30 steps, eps / 4 "
                "at 10) or the perturbation will not use its budget")

    def _load_profile(self, scan: FolderScan) -> dict[str, Any] | None:
        path = self.config.output_dir / MANIFEST_NAME
        if not path.exists():
            return None
        try:
            profile = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ProfileMismatch(f"{path} exists but cannot be read ({exc}); choose an "
                                  "empty output folder") from exc
        theirs = with_legacy_values(profile.get("config", {}).get("method", {}))
        ours = json.loads(json.dumps(self.config.method_dict()))
        diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        if diff:
            raise ProfileMismatch(
                f"the output folder was protected with different settings "
                f"({', '.join(diff)}); use the same settings (e.g. --config "
                f"{path}) or another output folder")
        if profile.get("classes") != scan.classes:
            raise ProfileMismatch("the output folder was protected with other classes "
                                  f"({', '.join(profile.get('classes', []))}); use another "
                                  "output folder")
        for data in profile.get("images", []) + read_journal(
                self.config.output_dir / JOURNAL_NAME):
            record = ImageRecord.from_json(data)
            self.previous[record.source] = record
        self.rep.info(f"continuing the protection profile in {path} "
                      f"({sum(r.status == 'done' for r in self.previous.values())} images "
                      "already protected)")
        return profile

    def _digest(self, scan: FolderScan) -> list[int]:
        """Hash every file; return the indices of items that still need protecting."""
        todo = []
        n = len(scan.items)
        for i, item in enumerate(scan.items):
            self.rep.check_cancel()
            try:
                self.digests[item.rel] = file_digest(item.path)
            except ImageError as exc:
                self.skipped.append(SkippedFile(item.rel, str(exc)))
                continue
            if not self._already_done(item):
                todo.append(i)
            if i % 64 == 0 or i == n - 1:
                self.rep.stage("scan", i + 1, 2 * n, "checking files")
        return todo

    def _already_done(self, item: ImageItem) -> bool:
        record = self.previous.get(item.rel)
        return (record is not None and record.status == "done"
                and record.digest == self.digests.get(item.rel)
                and record.output is not None
                and (self.config.output_dir / record.output).is_file())

    def _decode_working(self, items: list[ImageItem], n_all: int) -> None:
        size, limit = self.config.working_size, self.config.max_pixels
        for i, item in enumerate(items):
            self.rep.check_cancel()
            if item.rel not in self.digests:
                continue
            try:
                self.working[item.rel] = decode_working(item.path, size, limit)
            except ImageError as exc:
                self.skipped.append(SkippedFile(item.rel, str(exc)))
                del self.digests[item.rel]
                self.rep.warning(f"skipped {item.rel}: {exc}")
            if i % 64 == 0 or i == len(items) - 1:
                self.rep.stage("scan", n_all + int((i + 1) * n_all / max(1, len(items))),
                               2 * n_all, "decoding images")
        self.rep.stage("scan", 2 * n_all, 2 * n_all, "decoding images")

    # ---- stage 2: surrogates -------------------------------------------------------
    def _keys(self) -> list[str]:
        if self.profile is not None and self.profile.get("surrogates", {}).get("cache_keys"):
            return list(self.profile["surrogates"]["cache_keys"])
        cfg = self.config
        assert self.scan is not None
        fingerprint = data_fingerprint([(item.rel, self.digests[item.rel], item.label)
                                        for item in self.scan.items])
        keep = checkpoint_epochs(cfg.epochs, cfg.checkpoints)
        k = len(self.scan.classes)
        return [cache_key(fingerprint, arch, k, cfg.working_size, cfg.epochs, keep, cfg.seed,
                          cfg.train_batch_size, cfg.learning_rate) for arch in cfg.architectures]

    def _cache_complete(self) -> bool:
        keys = (self.profile or {}).get("surrogates", {}).get("cache_keys")
        if not keys:
            return False
        keep = checkpoint_epochs(self.config.epochs, self.config.checkpoints)
        for key in keys:
            cached = load_cached(self.cache_dir / "surrogates" / f"{key}.pt")
            if cached is None or not all(e in cached for e in keep):
                return False
        return True

    def build_ensemble(self) -> Ensemble:
        cfg = self.config
        assert self.scan is not None
        start = time.monotonic()
        k = len(self.scan.classes)
        keep = checkpoint_epochs(cfg.epochs, cfg.checkpoints)
        keys = self._keys()
        images, labels = self._training_tensors()
        steps_per_epoch = -(-len(self.working) // cfg.train_batch_size)
        per_arch = cfg.epochs * max(1, steps_per_epoch)
        members: list[SurrogateMember] = []
        for i, (arch, key) in enumerate(zip(cfg.architectures, keys, strict=True)):
            ckpts = obtain_checkpoints(
                arch, images, labels, key, self.cache_dir, k, cfg.working_size, cfg.epochs,
                keep, cfg.seed + 1000 * i, cfg.train_batch_size, cfg.learning_rate, self.device,
                self.rep, i * per_arch, per_arch * len(cfg.architectures))
            members += members_from_checkpoints(arch, {e: ckpts[e] for e in keep}, k,
                                                cfg.working_size, self.device)
        total = per_arch * len(cfg.architectures)
        self.rep.stage("surrogates", total, total, "ensemble ready")
        for spec in cfg.surrogate_files:
            member = load_surrogate_file(spec, k, cfg.working_size, self.device)
            if not member.differentiable:
                self.rep.info(f"{member.name}: ONNX surrogate joins the colour search only "
                              "(the spatial branch needs gradients)")
            members.append(member)
        self.surrogate_keys = keys
        self.ensemble = Ensemble(members, self.device)
        self.timings["surrogates"] = time.monotonic() - start
        return self.ensemble

    def _training_tensors(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        assert self.scan is not None
        items = [item for item in self.scan.items if item.rel in self.working]
        if len(items) < len(self.scan.items):
            return None, None  # everything needed is cached (incremental run)
        images = torch.stack([self.working[item.rel] for item in items])
        labels = torch.tensor([item.label for item in items], dtype=torch.long)
        return images, labels

    # ---- stage 3: colour offsets ---------------------------------------------------
    def colour_offsets(self) -> torch.Tensor:
        cfg = self.config
        assert self.scan is not None and self.ensemble is not None
        k = len(self.scan.classes)
        values = offset_values(cfg.colour_grid)
        if cfg.mode == "spatial":
            self.offsets = torch.zeros(k, values)
            return self.offsets
        if self.profile is not None and "colour_offsets" in self.profile:
            stored = self.profile["colour_offsets"]
            self.offsets = torch.tensor([stored[name] for name in self.scan.classes])
            self.rep.info("colour offsets taken from the existing protection profile")
            return self.offsets
        cache_path = self._colour_cache_path()
        cached = _read_offsets(cache_path, self.scan.classes, values)
        if cached is not None:
            self.offsets = cached
            self.rep.info("colour offsets loaded from cache")
            self.rep.stage("colour", 1, 1, "cached")
            return cached
        start = time.monotonic()
        search = ColourOffsetSearch(cfg.colour, cfg.particles, cfg.iterations, cfg.colour_bound,
                                    cfg.colour_init, cfg.penalty_weight,
                                    grey_view_weight=GREY_VIEW_WEIGHT if cfg.grey_robust
                                    else 0.0, grid=cfg.colour_grid)
        targets = target_labels(k, cfg.label_offset)
        offsets = torch.zeros(k, values)
        total = k * cfg.iterations
        for label, name in enumerate(self.scan.classes):
            self.rep.check_cancel()
            generator = torch.Generator().manual_seed(cfg.seed * 7919 + label)
            rels = [item.rel for item in self.scan.items if item.label == label]
            pick = torch.randperm(len(rels), generator=generator)[:cfg.colour_sample]
            sample = torch.stack([self.working[rels[int(i)]] for i in pick])
            sample = sample.float().div_(255.0).to(self.device)

            def tick(it: int, value: float, label: int = label, name: str = name) -> None:
                self.rep.check_cancel()
                self.rep.stage("colour", label * cfg.iterations + it, total,
                               f"class {name}: objective {value:.3f}")

            result = search.search(sample, targets[label], self.ensemble, generator, tick)
            offsets[label] = result.best
            self.rep.info(f"colour offset for {name}: {describe_offset(result.best)}")
        self.offsets = offsets
        self.timings["colour"] = time.monotonic() - start
        write_json_atomic({name: offsets[i].tolist() for i, name in enumerate(self.scan.classes)},
                          cache_path)
        return offsets

    def _colour_cache_path(self) -> Path:
        """Offsets depend on the surrogates (whose keys hash the data) and the search settings;
        caching them lets a preview and the full run that follows share one search."""
        cfg = self.config
        assert self.scan is not None
        fingerprint = data_fingerprint([(item.rel, self.digests[item.rel], item.label)
                                        for item in self.scan.items])
        key = json.dumps({
            "surrogates": self.surrogate_keys, "files": [_file_identity(f)
                                                         for f in cfg.surrogate_files],
            "data": fingerprint, "colour": cfg.method_dict()["colour"], "seed": cfg.seed,
            "offset": cfg.label_offset, "particles": cfg.particles, "iterations": cfg.iterations,
            "sample": cfg.colour_sample, "bound": cfg.colour_bound, "init": cfg.colour_init,
            "penalty": cfg.penalty_weight, "size": cfg.working_size,
            # the grid joins the key only when it is not the spec's single offset, so the
            # offsets cached before the option existed are still found
            "grey": cfg.grey_robust, **({"grid": cfg.colour_grid} if cfg.colour_grid > 1
                                        else {})}, sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return self.cache_dir / "colour" / f"{digest}.json"

    # ---- stage 4: spatial + export -------------------------------------------------
    def protect_images(self) -> tuple[int, int]:
        """Protect every image not yet done; write outputs and the manifest per batch.
        Returns (written now, reused from earlier runs)."""
        cfg = self.config
        assert self.scan is not None and self.ensemble is not None and self.offsets is not None
        items = self.scan.items
        names = output_names([item.rel for item in items], cfg.format)
        targets = torch.tensor(target_labels(len(self.scan.classes), cfg.label_offset))
        records: dict[str, ImageRecord] = {}
        for sk in self.skipped:
            records[sk.rel] = ImageRecord(sk.rel, None, self._class_of(sk.rel), "skipped",
                                          sk.reason)
        todo = [item for item in items if not self._already_done(item)]
        reused = 0
        for item in items:
            if self._already_done(item):
                records[item.rel] = self.previous[item.rel]
                reused += 1
        written = 0
        total = len(todo)
        spatial_time = export_time = 0.0
        use_spatial = cfg.mode in ("dune", "spatial")
        use_colour = cfg.mode in ("dune", "colour")
        self.rep.stage("spatial", 0, total)
        self.rep.stage("export", 0, total)
        stale = remove_stale_temporaries(cfg.output_dir)
        if stale:
            self.rep.info(f"removed {stale} half-written file(s) left by an interrupted run")
        journal = cfg.output_dir / JOURNAL_NAME
        self.write_manifest(records)  # the profile exists before the first image is written
        last_manifest = time.monotonic()
        try:
            for start in range(0, total, cfg.batch_size):
                self.rep.check_cancel()
                batch = todo[start:start + cfg.batch_size]
                t0 = time.monotonic()
                deltas: torch.Tensor | None = None
                ok = [item for item in batch if self._ensure_working(item, records)]
                if use_spatial and ok:
                    x = torch.stack([self.working[i.rel] for i in ok]).float().div_(255.0)
                    y = targets[torch.tensor([i.label for i in ok])]
                    deltas = self.spatial_attack().perturb(
                        x.to(self.device), y.to(self.device), self.ensemble).cpu()
                spatial_time += time.monotonic() - t0
                self.rep.stage("spatial", start + len(batch), total)
                t1 = time.monotonic()
                for j, item in enumerate(ok):
                    delta = deltas[j] if deltas is not None else None
                    offset = self.offsets[item.label] if use_colour else None
                    records[item.rel] = self._export_one(item, names[item.rel], delta, offset)
                    if records[item.rel].status == "done":
                        written += 1
                        append_journal_line(journal, records[item.rel].to_json())
                    self.working.pop(item.rel, None)  # keep memory flat while streaming
                export_time += time.monotonic() - t1
                self.rep.stage("export", start + len(batch), total)
                if time.monotonic() - last_manifest > MANIFEST_INTERVAL_S:
                    # rewriting a 20k-record manifest every batch would be quadratic; the
                    # journal keeps every finished image durable in between
                    self.write_manifest(records)
                    journal.unlink(missing_ok=True)
                    last_manifest = time.monotonic()
        finally:
            self.timings["spatial"] = spatial_time
            self.timings["export"] = export_time
            self.write_manifest(records)
            journal.unlink(missing_ok=True)
        return written, reused

    def spatial_attack(self) -> SpatialPGD:
        """The spatial branch's hyper-parameters from the config: one place for the export
        and the preview, so a preview shows exactly what the export writes."""
        cfg = self.config
        return SpatialPGD(cfg.eps, cfg.step_size, cfg.steps, through_grey_view=cfg.grey_robust,
                          augment_shift=PGD_SHIFT if cfg.pgd_augment else 0, seed=cfg.seed,
                          pad_to=cfg.batch_size if self.device.type == "cuda" else 0)

    def _class_of(self, rel: str) -> str | None:
        assert self.scan is not None
        top = rel.split("/", 1)[0]
        return top if top in self.scan.classes and "/" in rel else None

    def _ensure_working(self, item: ImageItem, records: dict[str, ImageRecord]) -> bool:
        if item.rel in self.working:
            return True
        try:
            self.working[item.rel] = decode_working(item.path, self.config.working_size,
                                                    self.config.max_pixels)
            return True
        except ImageError as exc:
            records[item.rel] = ImageRecord(item.rel, None, self._class_of(item.rel), "skipped",
                                            str(exc))
            self.rep.warning(f"skipped {item.rel}: {exc}")
            return False

    def _export_one(self, item: ImageItem, out_rel: str, delta: torch.Tensor | None,
                    offset: torch.Tensor | None) -> ImageRecord:
        assert self.scan is not None
        cls = self.scan.classes[item.label]
        try:
            image = decode_full(item.path, self.config.max_pixels)
        except ImageError as exc:
            self.rep.warning(f"skipped {item.rel}: {exc}")
            return ImageRecord(item.rel, None, cls, "skipped", str(exc))
        out_path = self.config.output_dir / out_rel
        fmt_lossy = out_path.suffix.lower() in (".jpg", ".jpeg", ".jpe", ".jfif", ".webp")
        if image.kind == "I;16" and out_path.suffix.lower() not in (".png", ".tif", ".tiff"):
            image.kind = "L"  # only PNG and TIFF hold 16-bit grey
        protected = compose(image, delta, offset)
        pil = to_pil(protected, image)
        try:
            save_image_atomic(pil, out_path, image, self.config.quality,
                              self.config.keep_metadata, self.config.strip_gps)
        except OSError as exc:
            raise FolderError(f"cannot write {out_path}: {exc.strerror or exc}") from exc
        if fmt_lossy:
            from PIL import Image

            with Image.open(out_path) as saved:
                saved.load()
                written = read_back(saved, image)
        else:
            written = read_back(pil, image)
        original = torch.from_numpy(image.rgb).permute(2, 0, 1)
        metrics = quality_metrics(original, written)
        return ImageRecord(item.rel, out_rel, cls, "done", None, metrics["psnr"],
                           metrics["ssim"], metrics["delta_e"], self.digests.get(item.rel))

    # ---- preview -------------------------------------------------------------------
    def preview_images(self, rels: list[str]) -> list[PreviewImage]:
        """Protect a few images in memory exactly as the export would (quantised), with
        the parts separated for display and the ensemble's opinion before and after."""
        cfg = self.config
        assert self.scan is not None and self.ensemble is not None and self.offsets is not None
        by_rel = {item.rel: item for item in self.scan.items}
        items = [by_rel[r] for r in rels if r in by_rel]
        classes = self.scan.classes
        targets = target_labels(len(classes), cfg.label_offset)
        out: list[PreviewImage] = []
        for n, item in enumerate(items):
            self.rep.check_cancel()
            self.rep.stage("spatial", n, len(items), f"previewing {item.rel}")
            if not self._ensure_working(item, {}):
                continue
            x = self.working[item.rel].float().div(255.0).unsqueeze(0).to(self.device)
            delta = None
            if cfg.mode in ("dune", "spatial"):
                y = torch.tensor([targets[item.label]], device=self.device)
                delta = self.spatial_attack().perturb(x, y, self.ensemble)[0].cpu()
            offset = self.offsets[item.label] if cfg.mode in ("dune", "colour") else None
            shown_offset = offset if offset is not None else torch.zeros_like(self.offsets[0])
            image = decode_full(item.path, cfg.max_pixels)
            original = torch.from_numpy(image.rgb).permute(2, 0, 1)
            spatial_only = compose(image, delta, None)
            protected = read_back(to_pil(compose(image, delta, offset), image), image)
            metrics = quality_metrics(original, protected)
            small = resize_to_working(protected.permute(1, 2, 0), cfg.working_size)
            with torch.no_grad():
                before = self.ensemble.predict_proba(x)[0].cpu().tolist()
                after = self.ensemble.predict_proba(small.unsqueeze(0).to(self.device))[0]
            out.append(PreviewImage(
                rel=item.rel, cls=classes[item.label], target=classes[targets[item.label]],
                original=image.rgb, spatial=(spatial_only - original).permute(1, 2, 0).numpy(),
                colour=shown_offset.numpy().copy(),
                colour_field=expand_offsets(shown_offset.unsqueeze(0), *image.rgb.shape[:2])[0]
                .permute(1, 2, 0).numpy().copy(),
                protected=protected.permute(1, 2, 0).numpy(), eps=cfg.eps,
                psnr=metrics["psnr"], ssim=metrics["ssim"], delta_e=metrics["delta_e"],
                prediction_before=before, prediction_after=after.cpu().tolist()))
            self.working.pop(item.rel, None)
        self.rep.stage("spatial", len(items), len(items), "preview ready")
        return out

    # ---- manifest ------------------------------------------------------------------
    def write_manifest(self, records: dict[str, ImageRecord]) -> Path:
        cfg = self.config
        assert self.scan is not None and self.offsets is not None and self.ensemble is not None
        classes = self.scan.classes
        targets = target_labels(len(classes), cfg.label_offset)
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        created = (self.profile or {}).get("created", now)
        manifest = {
            "version": MANIFEST_VERSION,
            "app": {"name": "DUNE Protect", "version": __version__},
            "created": created,
            "updated": now,
            "config": {"method": cfg.method_dict(), "input_dir": str(cfg.input_dir.resolve()),
                       "output_dir": str(cfg.output_dir.resolve()),
                       "device": str(self.device)},
            "seed": cfg.seed,
            "mode": cfg.mode,
            "classes": classes,
            "targets": {name: classes[t] for name, t in zip(classes, targets, strict=True)},
            "colour_offsets": {name: [float(v) for v in self.offsets[i].tolist()]
                               for i, name in enumerate(classes)},
            "eps": cfg.eps if cfg.mode != "colour" else 0.0,
            "surrogates": {"members": [m.name for m in self.ensemble.members],
                           "cache_keys": self.surrogate_keys},
            "images": [records[k].to_json() for k in sorted(records)],
        }
        path = cfg.output_dir / MANIFEST_NAME
        write_json_atomic(manifest, path)
        return path


def protect(
    config: ProtectConfig,
    progress: ProgressCallback | None = None,
    log: LogCallback | None = None,
    cancel: CancelToken | None = None,
) -> ProtectResult:
    """Protect `config.input_dir` into `config.output_dir`.

    Raises FolderError / ProfileMismatch / SurrogateError for problems found before any image
    is written. A cancel returns normally with status "cancelled" after the current batch;
    the manifest then lists what finished, and the same call resumes the run.
    """
    reporter = Reporter(progress, log, cancel)
    job = ProtectionJob(config, reporter)
    status = "completed"
    protected = reused = 0
    try:
        job.prepare()
        check_writable(config.output_dir)
        job.build_ensemble()
        job.colour_offsets()
        protected, reused = job.protect_images()
    except Cancelled:
        status = "cancelled"
        reporter.info("cancelled; finished images are kept and the same command resumes")
    assert job.scan is not None or status == "cancelled"
    scan = job.scan
    classes = scan.classes if scan is not None else []
    targets = target_labels(len(classes), config.label_offset) if classes else []
    offsets = job.offsets if job.offsets is not None else \
        torch.zeros(len(classes), offset_values(config.colour_grid))
    return ProtectResult(
        status=status, output_dir=config.output_dir,
        manifest_path=config.output_dir / MANIFEST_NAME, classes=classes,
        targets={c: classes[t] for c, t in zip(classes, targets, strict=True)},
        colour_offsets={c: offsets[i].tolist() for i, c in enumerate(classes)},
        protected=protected, reused=reused, skipped=job.skipped, timings=job.timings,
        device=str(job.device))
