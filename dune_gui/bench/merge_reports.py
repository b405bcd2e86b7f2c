"""Combine the rows of several verification reports into one report (json, md, png).

    python -m dune_gui.bench.merge_reports --out assets/verification \\
        bench-out2/report/report.json bench-out/report/report.json:colour,lsp,ops

Each input is a report.json, optionally followed by `:` and the training sets to take from
it (default: all). Used when an engine change only affects some rows: the rows whose
generation the change does not touch (clean, the training-free peers, colour-only) are taken
from the earlier run instead of being retrained for an hour. Seeded victims reproduce
exactly, so rows of the sets named by --must-agree (e.g. clean) must be equal wherever
they were measured; this script refuses if they are not.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dune_gui.engine.evaluation import EvaluationReport, write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="report.json[:train,train,...]")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--must-agree", default="clean",
                        help="training sets whose rows must be identical in every input")
    args = parser.parse_args()
    runs: dict[tuple[str, str, str], dict] = {}
    first: dict | None = None
    notes: list[str] = []
    agree = set(args.must_agree.split(",")) if args.must_agree else set()
    for spec in args.inputs:
        path, _, wanted = spec.partition(":")
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        first = first or report
        keep = set(wanted.split(",")) if wanted else None
        for run in report["runs"]:
            key = (run["train"], run["defence"], run["arch"])
            if (run["train"] in agree and key in runs
                    and runs[key]["test_accuracy"] != run["test_accuracy"]):
                raise SystemExit(f"{key} differs between inputs: "
                                 f"{runs[key]['test_accuracy']} vs {run['test_accuracy']}")
            if (keep is None or run["train"] in keep) and key not in runs:
                runs[key] = run
        taken = f"rows {', '.join(sorted(keep))}" if keep else "all rows"
        notes.append(f"{taken} from {path}")
    assert first is not None
    merged = EvaluationReport(first["chance"], first["settings"], list(runs.values()),
                              "completed", first.get("notes", []) + notes)
    write_report(merged, args.out)
    print((args.out / "report.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
