"""What `--iteration_patience N` would have done to finished runs, replayed from their summaries.

A run with a patience is the same run cut short: every unit re-seeds from (seed, unit), so its
iterations up to the stop are exactly those of the run without one. This script walks each
summary's history with the pipeline's own selection rule and reports, per patience, where the run
would have stopped, which iteration it would have kept, that policy's evaluation score and the
interactions spent.

    python benchmarks/patience.py --patience 3 5 8 -- RUN_SUMMARY.json ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bco_lightning.selection import out_of_patience, replaces_kept_policy


def replay(summary: dict[str, Any], patience: int | None) -> dict[str, Any]:
    """Stop iteration, kept iteration, its evaluation score and the interactions, under `patience`
    (None: the run as it ran)."""
    kept: dict[str, Any] | None = None
    entry: dict[str, Any] = {}
    for entry in (h for h in summary["history"] if h["stage"] == "policy"):
        # an iteration whose labels did not change trained no new policy: it replaces nothing
        trained = "selection/return_mean" in entry
        if trained and (kept is None or replaces_kept_policy(entry["selection/return_mean"], kept["selection/return_mean"])):
            kept = entry
        if kept is None:
            continue
        if out_of_patience(entry["iteration"], kept["iteration"], patience):
            break
    assert kept is not None, "no policy with a selection return in this summary's history"
    return {"stop": entry["iteration"], "kept": kept["iteration"], "score": kept["eval/normalized_score"], "env_steps": entry["env_steps"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patience", type=int, nargs="+", default=[3, 5, 8])
    parser.add_argument("summaries", type=Path, nargs="+")
    args = parser.parse_args()
    print("| run | as run: stop / kept / score / interactions | " + " | ".join(f"patience {n}" for n in args.patience) + " |")
    print("|---|---|" + "---|" * len(args.patience))
    for path in args.summaries:
        summary = json.loads(path.read_text())
        cells = [replay(summary, None), *(replay(summary, n) for n in args.patience)]
        text = [f"{c['stop']} / {c['kept']} / {c['score']:.3f} / {c['env_steps']:,}" for c in cells]
        print(f"| {path} | " + " | ".join(text) + " |")


if __name__ == "__main__":
    main()
