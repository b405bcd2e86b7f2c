"""Whether a victim's training fits in the memory this machine has free, asked before it
starts: a fine-tuned pretrained network keeps every activation of a batch for the backward
pass (gigabytes at photo resolution), and a process that outgrows the machine is killed by
the system without a word. A victim that cannot fit is skipped with a one-line reason and
the verification goes on with the others.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

# One training step's peak over the tensors its forward saves for the backward: the
# backward's own buffers (each layer's input gradient, the weight gradients) and the
# allocator's slack come on top. Measured on the CPU for fine-tuned EfficientNet-Lites and
# from-scratch nets (docs/performance.md, "memory of a victim's training step",
# `python -m dune_gui.bench.victim_memory`): the largest ratio measured, rounded up, so
# that the estimate errs on the side of too much.
STEP_OVER_SAVED = 1.65
_MEMINFO = Path("/proc/meminfo")


def available_bytes(meminfo: Path = _MEMINFO) -> int | None:
    """Memory the system can give this process now: free and reclaimable RAM plus free
    swap (Linux's MemAvailable + SwapFree). None where the system does not say."""
    try:
        text = meminfo.read_text(encoding="ascii")
    except OSError:
        return None
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0]) * 1024  # the file counts kB
    if "MemAvailable" not in fields:
        return None
    return fields["MemAvailable"] + fields.get("SwapFree", 0)


def saved_for_backward(model: nn.Module, size: int, images: int) -> int:
    """Bytes of the tensors a training-mode forward of `images` images keeps for the
    backward. Pass a copy: the forward moves batch-norm statistics. The
    random streams are forked, so every later draw is as if nothing had been measured."""
    probe = model.train()
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    param = next(model.parameters())
    with torch.random.fork_rng(devices=[]), \
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        probe(torch.zeros(images, 3, size, size, dtype=param.dtype))
    return saved


def training_step_bytes(model: nn.Module, size: int, batch: int) -> int:
    """Memory one SGD step with momentum on a batch of `batch` size x size images needs on
    top of the process: the saved tensors (measured at two batch sizes, since the weights
    a layer saves do not grow with the batch) scaled by STEP_OVER_SAVED, plus a gradient
    and a momentum buffer for each trainable parameter."""
    probe = copy.deepcopy(model)  # one copy for both measurements; the model stays as it is
    two, four = saved_for_backward(probe, size, 2), saved_for_backward(probe, size, 4)
    per_image = (four - two) / 2
    fixed = max(0.0, two - 2 * per_image)
    trainable = sum(p.numel() * p.element_size() for p in model.parameters()
                    if p.requires_grad)
    return round(STEP_OVER_SAVED * (per_image * batch + fixed) + 2 * trainable)


def gigabytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def too_large_reason(arch: str, size: int, batch: int, need: int, free: int) -> str:
    """The one line a skipped victim gets: what it needs, what there is, what to change."""
    return (f"victim {arch} skipped: training it at {size} px in batches of {batch} needs "
            f"about {gigabytes(need)} of memory and this machine has {gigabytes(free)} free; "
            "a smaller batch size (half the batch, about half the memory), a smaller victim "
            "size, or a linear probe (-probe) needs less")
