"""Splitting one protection run over N processes or machines.

The spatial stage is embarrassingly parallel once the folder's protection profile exists
(the manifest with the class offsets, and the surrogates in the cache): every image's
perturbation depends only on the image, the profile and the seed. So:

1. one run with `profile_only` writes the profile (scan, surrogates, colour offsets);
2. N runs with `Shard(i, N)`, i = 1..N, each protect the images at positions i-1, i-1+N,
   ... of the sorted folder, writing the images (disjoint files) and their own journal;
   they never write the shared manifest, so they can run at once on a shared folder;
3. one more ordinary run finds every image done, folds the shard journals into the
   manifest and protects whatever a failed shard left: the same images and manifest a
   single run writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SHARD_JOURNAL_GLOB = ".dune-journal.shard-*.jsonl"
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as people count machines
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: the index must be between 1 "
                             f"and {self.count}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = _SPEC.match(text)
        if match is None:
            raise ValueError(f"shard {text!r}: write it as I/N, e.g. 2/3 for the second of "
                             "three shares")
        return cls(int(match.group(1)), int(match.group(2)))

    def takes(self, position: int) -> bool:
        """Whether the image at `position` of the sorted folder belongs to this shard."""
        return position % self.count == self.index - 1

    @property
    def journal_name(self) -> str:
        return f".dune-journal.shard-{self.index}-of-{self.count}.jsonl"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_journals(output_dir: Path) -> list[Path]:
    return sorted(output_dir.glob(SHARD_JOURNAL_GLOB))
