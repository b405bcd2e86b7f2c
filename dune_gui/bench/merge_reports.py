"""Combine the rows of several verification reports into one report (json, md, png).

    python -m dune_gui.bench.merge_reports --out merged \\
        bench-out5/report/report.json "bench-out4/report/report.json:dune=dune 8/255,colour,lsp"

Each input is a report.json, optionally followed by `:` and the training sets to take from
it (default: all); `name=new` takes a set under a new name (when two runs protected with
different settings both call their set `dune`). Used when a change only affects some rows:
the rows whose generation the change does not touch (clean, the training-free peers,
colour-only) are taken from the earlier run instead of being retrained for an hour. Seeded
victims reproduce exactly, so rows of the sets named by --must-agree (e.g. clean) must be
equal wherever they were measured; this script refuses if they are not.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dune_gui.engine.evaluation import EvaluationReport, write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="report.json[:train[=new name],...]")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--must-agree", default="clean",
                        help="training sets whose rows must be identical in every input")
    args = parser.parse_args()
    runs: dict[tuple[str, str, str], dict] = {}
    first: dict | None = None
    notes: list[str] = []
    distortion: dict[str, dict] = {}  # each set's visual cost follows its rows (and renames)
    agree = set(args.must_agree.split(",")) if args.must_agree else set()
    for spec in args.inputs:
        path, _, wanted = spec.partition(":")
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        first = first or report
        keep = None
        if wanted:
            pairs = (item.partition("=") for item in wanted.split(","))
            keep = {old: new or old for old, _, new in pairs}
        for old_name, cost in (report["settings"].get("distortion") or {}).items():
            if keep is None or old_name in keep:
                distortion.setdefault(keep[old_name] if keep else old_name, cost)
        for run in report["runs"]:
            take = keep is None or run["train"] in keep
            if keep is not None and take:
                run = {**run, "train": keep[run["train"]]}
            key = (run["train"], run["defence"], run["arch"])
            if (run["train"] in agree and key in runs
                    and runs[key]["test_accuracy"] != run["test_accuracy"]):
                raise SystemExit(f"{key} differs between inputs: "
                                 f"{runs[key]['test_accuracy']} vs {run['test_accuracy']}")
            if take and key not in runs:
                runs[key] = run
        taken = (f"rows {', '.join(f'{o} as {n}' if n != o else o for o, n in keep.items())}"
                 if keep else "all rows")
        notes.append(f"{taken} from {path}")
    assert first is not None
    settings = {**first["settings"], "distortion": distortion}
    merged = EvaluationReport(first["chance"], settings, list(runs.values()),
                              "completed", first.get("notes", []) + notes)
    write_report(merged, args.out)
    print((args.out / "report.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
