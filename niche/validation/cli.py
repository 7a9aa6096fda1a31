"""``niche validate`` on the command line: the subcommand's options and what it does.

:func:`add_arguments` adds the options to a (sub)parser; :func:`main` runs the validation
(or, with ``--from``, evaluates saved histories), prints the table and returns the exit
status: 0 if every row passes, 1 otherwise. Bad input raises ValueError with a one-line
message (``niche.cli`` maps it to status 2).
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..experiments.execution import Arm
from .report import seed_text
from .rows import ROWS, Row
from .stability import parse_sizes, stability_markdown, verdict_stability, write_stability
from .run import (DEFAULT_REPLICATES, FULL_SHAPE, QUICK_REPLICATES, QUICK_ROWS, QUICK_SHAPE,
                  evaluate_saved, run_validation)

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``niche validate`` options to ``parser`` (a subcommand parser)."""
    parser.add_argument("--replicates", "-n", type=int, default=None, metavar="N",
                        help=f"seeds per arm (default {DEFAULT_REPLICATES}; "
                             f"{QUICK_REPLICATES} with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: rows {','.join(QUICK_ROWS)} (cheap in-vitro arms) "
                             f"unless --rows; {QUICK_REPLICATES} seeds unless --replicates; "
                             f"in-vivo arms keep their days but run on "
                             f"{'x'.join(map(str, QUICK_SHAPE))} voxels unless --shape")
    parser.add_argument("--workers", "-w", type=int, default=None, metavar="W",
                        help="dask worker processes (default: CPU count), 1 thread each; 0 "
                             "runs every task here, one after another")
    parser.add_argument("--out", "-o", default="validation", metavar="DIR",
                        help="report folder (default validation/)")
    parser.add_argument("--rows", default=None, metavar="V1,V5",
                        help="comma-separated row ids (default: all V1-V13)")
    parser.add_argument("--shape", default=None, metavar="Z,Y,X",
                        help="domain of the in-vivo arms in voxels (default "
                             f"{'x'.join(map(str, FULL_SHAPE))}, or the quick shape; in-vitro "
                             "arms keep theirs)")
    parser.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                        help="override a scenario value in every arm (repeatable), e.g. "
                             "--set biology.osteoblast.recruit_per_mm2_per_day=20: a "
                             "sensitivity check; the report lists the overrides")
    parser.add_argument("--first-seed", type=int, default=1, metavar="S",
                        help="seeds S .. S+N-1 (default 1): another block of seeds is an "
                             "out-of-sample check of the rows")
    parser.add_argument("--from", dest="sources", action="append", default=None,
                        metavar="CSV", help="evaluate the rows on the histories.csv of earlier "
                        "validations instead of running (repeatable: seeds are pooled, e.g. "
                        "the blocks of --first-seed 1 and --first-seed 6 as 10 seeds)")
    parser.add_argument("--stability", default=None, metavar="5,8,10",
                        help="also estimate, by a bootstrap over this validation's seeds, "
                             "the probability that a fresh block of each size passes each "
                             "row (written to stability.md / stability.csv)")
    parser.add_argument("--draws", type=int, default=400, metavar="D",
                        help="bootstrap draws per block size for --stability (default 400)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no per-run progress lines")
    return parser


def main(args: argparse.Namespace, *, table: Sequence[Row] = ROWS,
         arms: Mapping[str, Arm] | None = None, client: Any = None) -> int:
    """``niche validate``: run, print the table, write the report. Returns 0 if every row
    passes, 1 otherwise; bad input raises ValueError (the CLI maps it to status 2)."""
    sources = getattr(args, "sources", None)
    stab = getattr(args, "stability", None)
    sizes = parse_sizes(stab) if stab is not None else None
    draws = getattr(args, "draws", 400)
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"bad --draws {draws!r}: must be an integer >= 1")
    if sources:
        clash = [o for o, on in (("--replicates", args.replicates is not None),
                                 ("--quick", args.quick), ("--shape", args.shape is not None),
                                 ("--workers", args.workers is not None),
                                 ("--set", bool(getattr(args, "set", None))),
                                 ("--first-seed", getattr(args, "first_seed", 1) != 1)) if on]
        if clash:
            raise ValueError(f"--from evaluates saved runs, so {', '.join(clash)} cannot be "
                             "used with it")
        rep = evaluate_saved(sources, rows=args.rows, out_dir=args.out, table=table,
                             arms=arms)
    else:
        rep = run_validation(rows=args.rows, replicates=args.replicates, quick=args.quick,
                             workers=args.workers, out_dir=args.out, shape=args.shape,
                             progress=not getattr(args, "quiet", False), table=table,
                             arms=arms, client=client, overrides=getattr(args, "set", None),
                             first_seed=getattr(args, "first_seed", 1))
    print(rep.table_text())
    for o in rep.failures:
        print(f"run failed: arm {o.arm} seed {o.seed}: {o.error}")
    if sizes is not None:
        tab = verdict_stability(rep, sizes, draws=draws)
        print(stability_markdown(tab, draws))
        if args.out is not None:
            print(f"stability: {write_stability(tab, draws, args.out)}")
    n_pass = sum(r.passed for r in rep.results.values())
    print(f"{n_pass}/{len(rep.results)} rows pass; {rep.replicates} seeds per arm "
          f"({seed_text(rep.seeds)}); "
          f"wall {rep.wall_s:.1f} s; report {Path(args.out) / 'report.md'}")
    return 0 if rep.passed else 1
