"""What compute devices this machine offers, described for a user."""

from __future__ import annotations

import torch


def cuda_device_name() -> str | None:
    """'CUDA: <name>' when a CUDA device is usable, else None."""
    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)}"
    return None


def warm_up() -> None:
    """Load what torch otherwise loads lazily in the middle of a first run.

    The optimiser's first step imports torch's compiler stack (about a thousand modules);
    parts of that import hold the interpreter lock for a long stretch, which freezes an
    app's event loop while a run is starting. An app calls this once in a background
    thread at start-up, so the cost falls while the user is still choosing a folder.
    """
    weight = torch.nn.Parameter(torch.zeros(4, 3, 3, 3))
    optimiser = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    x = torch.zeros(2, 3, 8, 8)
    torch.nn.functional.conv2d(x, weight).square().mean().backward()
    optimiser.step()
