"""The surrogate ensemble: trained on the user's clean folder, cached, or supplied as files.

Cache layout (one file per architecture run, so changing the ensemble's composition reuses
what was already trained):  <cache>/surrogates/<key>.pt  holding {epoch: state_dict}.
The key hashes the training data (file digests and labels) and every training setting.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .atomic import atomic_torch_save
from .models import ARCHITECTURES, build_model, fuse_for_inference
from .progress import Reporter
from .training import train_classifier

CACHE_FORMAT = 1


class SurrogateError(Exception):
    """A surrogate file or cache entry that cannot be used; the message is user-facing."""


def default_cache_dir() -> Path:
    override = os.environ.get("DUNE_CACHE_DIR")
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return base / "DUNE Protect" / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "DUNE Protect"
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "dune-protect"


@dataclass
class SurrogateMember:
    name: str
    model: nn.Module | OnnxClassifier
    differentiable: bool


class OnnxClassifier:
    """An ONNX surrogate run by onnxruntime. Gradient-free, so it joins the colour search
    only (the spatial branch needs input gradients)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise SurrogateError(f"{path.name}: not a valid ONNX model ({exc})") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise SurrogateError(f"{path.name}: ONNX model must take exactly one input")
        self.input_name = inputs[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32)).to(x.device)


class Ensemble:
    """M classifiers kept in memory, queried together."""

    def __init__(self, members: Sequence[SurrogateMember], device: torch.device) -> None:
        if not members:
            raise SurrogateError("the surrogate ensemble is empty")
        self.members = list(members)
        self.device = device

    def __len__(self) -> int:
        return len(self.members)

    @property
    def differentiable(self) -> list[SurrogateMember]:
        return [m for m in self.members if m.differentiable]

    def logits(self, x: torch.Tensor, members: Sequence[SurrogateMember] | None = None
               ) -> torch.Tensor:
        """M x N x K logits."""
        chosen = self.members if members is None else members
        use_amp = self.device.type == "cuda"
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        outs = []
        for member in chosen:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                outs.append(member.model(x).float())
        return torch.stack(outs)

    def mean_cross_entropy(self, x: torch.Tensor, target: torch.Tensor,
                           members: Sequence[SurrogateMember] | None = None
                           ) -> torch.Tensor:
        """Per-image cross-entropy toward `target`, averaged over members."""
        logits = self.logits(x, members)
        m, n, k = logits.shape
        ce = F.cross_entropy(logits.reshape(m * n, k), target.repeat(m), reduction="none")
        return ce.view(m, n).mean(0)

    @torch.inference_mode()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).softmax(-1).mean(0)


def data_fingerprint(entries: Sequence[tuple[str, str, int]]) -> str:
    """Hash of (relative path, content digest, label) for every training image."""
    h = hashlib.sha256()
    for rel, digest, label in sorted(entries):
        h.update(f"{rel}\0{digest}\0{label}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def cache_key(fingerprint: str, arch: str, num_classes: int, working_size: int, epochs: int,
              keep: list[int], seed: int, batch_size: int, learning_rate: float) -> str:
    from .pretrained import INPUT_SCALING_VERSION, PRETRAINED  # it imports this module

    fields: dict[str, object] = {
        "format": CACHE_FORMAT, "data": fingerprint, "arch": arch, "classes": num_classes,
        "size": working_size, "epochs": epochs, "keep": keep, "seed": seed,
        "batch": batch_size, "lr": learning_rate,
    }
    if arch in PRETRAINED:  # from-scratch surrogates' keys stay as they were
        fields["input_scaling"] = INPUT_SCALING_VERSION
    settings = json.dumps(fields, sort_keys=True)
    return f"{arch}-{hashlib.sha256(settings.encode()).hexdigest()[:24]}"


def surrogate_cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / "surrogates" / f"{key}.pt"


def load_cached(path: Path) -> dict[int, dict[str, torch.Tensor]] | None:
    if not path.exists():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        return {int(k): v for k, v in data["checkpoints"].items()}
    except Exception:
        return None  # a damaged cache entry is retrained, never trusted


def obtain_checkpoints(
    arch: str, images: torch.Tensor | None, labels: torch.Tensor | None, key: str,
    cache_dir: Path, num_classes: int, working_size: int, epochs: int, keep: list[int],
    seed: int, batch_size: int, learning_rate: float, device: torch.device,
    reporter: Reporter, progress_offset: int, progress_total: int,
    loaded: dict[int, dict[str, torch.Tensor]] | None = None,
) -> dict[int, dict[str, torch.Tensor]]:
    """Checkpoints from the cache (`loaded`: already read from it), or from training
    (then cached)."""
    path = surrogate_cache_path(cache_dir, key)
    cached = loaded if loaded is not None else load_cached(path)
    if cached is not None and all(e in cached for e in keep):
        reporter.info(f"surrogate {arch}: loaded {len(keep)} checkpoints from cache")
        return cached
    if images is None or labels is None:
        raise SurrogateError(f"surrogate {arch} is not cached and no training data was given")
    reporter.info(f"surrogate {arch}: training {epochs} epochs on {images.shape[0]} images "
                  f"(checkpoints at epochs {', '.join(map(str, keep))})")
    generator = torch.Generator().manual_seed(seed)
    model = build_model(arch, num_classes, working_size, generator)
    result = train_classifier(
        model, images, labels, epochs, generator, device, keep_epochs=keep,
        batch_size=batch_size, learning_rate=learning_rate, reporter=reporter,
        progress_offset=progress_offset, progress_total=progress_total)
    final = result.train_accuracy[epochs]
    reporter.info(f"surrogate {arch}: final training accuracy {final:.1%}")
    atomic_torch_save({"checkpoints": result.checkpoints, "arch": arch,
                        "train_accuracy": result.train_accuracy}, path)
    return result.checkpoints


def members_from_checkpoints(arch: str, checkpoints: dict[int, dict[str, torch.Tensor]],
                             num_classes: int, working_size: int, device: torch.device,
                             *, fold_batch_norms: bool = True) -> list[SurrogateMember]:
    """One frozen member per checkpoint. `fold_batch_norms=False` keeps each batch norm as
    its own layer (the same function, slower; bench/member_speed.py compares the two)."""
    members = []
    for epoch in sorted(checkpoints):
        model = build_model(arch, num_classes, working_size)
        model.load_state_dict(checkpoints[epoch])
        members.append(SurrogateMember(f"{arch}@{epoch}",
                                       _prepare(model, device, fold_batch_norms), True))
    return members


def _prepare(model: nn.Module, device: torch.device, fold_batch_norms: bool = True
             ) -> nn.Module:
    # channels-last is faster for these convs on CPU (oneDNN) as well as on CUDA
    model = model.eval()
    if fold_batch_norms:
        model = fuse_for_inference(model)
    model.to(device=device, memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_surrogate_file(spec: str, num_classes: int, working_size: int,
                        device: torch.device) -> SurrogateMember:
    """Load a user-supplied surrogate without executing code from it.

    `spec` is PATH or ARCH=PATH. Accepted: an ONNX model; a TorchScript archive; a state
    dict (optionally {"state_dict": ...}) for one of our architectures, loaded with
    `weights_only=True`. Without ARCH= the architecture is found by matching the keys.
    """
    arch: str | None = None
    path_text = spec
    if "=" in spec and spec.split("=", 1)[0] in ARCHITECTURES:
        arch, path_text = spec.split("=", 1)
    path = Path(path_text)
    if not path.is_file():
        raise SurrogateError(f"surrogate file not found: {path}")
    name = path.name
    with open(path, "rb") as fh:
        head = fh.read(4)
    if path.suffix.lower() == ".onnx":
        member = SurrogateMember(name, OnnxClassifier(path), False)
    elif head.startswith(b"PK") and _is_torchscript(path):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # deprecated, still supported
                module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise SurrogateError(f"{name}: not a valid TorchScript model ({exc})") from exc
        member = SurrogateMember(name, _prepare(module, device), True)
    else:
        member = SurrogateMember(name, _load_state_dict_model(path, arch, num_classes,
                                                              working_size, device), True)
    _check_output_shape(member, num_classes, working_size, device)
    return member


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.split("/", 1)[-1].startswith("code/") for n in zf.namelist())
    except zipfile.BadZipFile:
        return False


def _load_state_dict_model(path: Path, arch: str | None, num_classes: int, working_size: int,
                           device: torch.device) -> nn.Module:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SurrogateError(
            f"{path.name}: not a loadable weights file (only plain state dicts, TorchScript "
            f"and ONNX are accepted; pickled code is refused): {str(exc).splitlines()[0]}"
        ) from exc
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise SurrogateError(f"{path.name}: does not contain a state dict of tensors")
    candidates = [arch] if arch else list(ARCHITECTURES)
    errors = []
    for name in candidates:
        model = build_model(name, num_classes, working_size)
        try:
            model.load_state_dict(data)
        except RuntimeError as exc:
            errors.append(f"{name}: {str(exc).splitlines()[0]}")
            continue
        return _prepare(model, device)
    raise SurrogateError(f"{path.name}: weights match no known architecture with "
                         f"{num_classes} classes ({'; '.join(errors)})")


def _check_output_shape(member: SurrogateMember, num_classes: int, working_size: int,
                        device: torch.device) -> None:
    probe = torch.rand(2, 3, working_size, working_size, device=device)
    try:
        with torch.inference_mode():
            out = member.model(probe)
    except Exception as exc:
        raise SurrogateError(f"{member.name}: fails on a {working_size}x{working_size} input "
                             f"batch ({str(exc).splitlines()[0]})") from exc
    if tuple(out.shape) != (2, num_classes):
        raise SurrogateError(f"{member.name}: outputs shape {tuple(out.shape)}, expected "
                             f"(N, {num_classes}) logits for this folder's classes")

