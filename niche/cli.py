"""Command line: ``niche run``, ``niche scenarios``, ``niche info``, ``niche export``,
``niche bench``, ``niche validate``, and the 3D replay (:mod:`niche.viz`, source folder
``viz/``): ``niche render``, ``niche view``, ``niche serve`` (these three need the ``viz`` extra),
``niche export-xdmf``.

Errors in the user's input (scenario, overrides, output path, run file) print one line,
``niche: error: ...``, and exit with status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _fmt_readouts(r: dict[str, float]) -> str:
    keys = ["bv_tv", "tb_th_um", "tb_sp_um", "tb_n_per_mm", "oc_s_bs", "ob_s_bs",
            "n_tcell", "n_treg", "n_treg_cxcr3", "n_tnf_tcell", "n_ilc2", "n_ilc2_il10",
            "n_ilc2_cgrp", "n_monocyte", "n_osteoclast", "n_oc_multinuc", "n_osteoblast",
            "resorbed_mm3_per_day", "formed_mm3_per_day", "resorbed_area_um2"]
    lines = []
    for k in keys:
        if k in r:
            v = r[k]
            s = f"{v:.4g}" if not k.startswith("n_") else f"{int(v)}"
            lines.append(f"  {k:<22} {s}")
    return "\n".join(lines)


def _simulate(go) -> int:
    """Run ``go()`` (a run or a resume) and print its result; a signal's clean stop or a
    full disk become one line and a status."""
    import errno

    from .runner import RunStopped, _StopSignals

    _StopSignals.keep_after_stop = True  # this process ends right after a stop
    try:
        res = go()
    except RunStopped as e:
        import signal

        for name in _StopSignals.SIGNALS:  # more Ctrl-C while this process exits: ignored
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        print(f"niche: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        print(f"niche: error: disk full ({e.strerror or e}); the complete frames are kept in "
              "the run's journal (<out>.partial): free space, then `niche resume` or "
              "`niche repair` it", file=sys.stderr)
        return 1
    _print_result(res)
    return 0


def _cmd_run(a) -> int:
    from .runner import run

    return _simulate(lambda: run(a.scenario, a.out, seed=a.seed, days=a.days,
                                 overrides=a.set or None, overwrite=a.overwrite,
                                 progress=None if not a.quiet else False,
                                 checkpoint_every=a.checkpoint_every,
                                 allow_large=a.allow_large))


def _cmd_resume(a) -> int:
    from .runner import resume

    return _simulate(lambda: resume(a.run, days=a.days, checkpoint_every=a.checkpoint_every,
                                    progress=None if not a.quiet else False,
                                    allow_large=a.allow_large))


def _cmd_repair(a) -> int:
    from .io.journal import repair

    path, n = repair(a.run, overwrite=a.overwrite)
    print(f"repaired {path}: {n} complete frames (status incomplete)")
    return 0


def _print_result(res) -> None:
    r = res.readouts
    print(f"run file   {res.path}")
    print(f"scenario   {res.model.scenario.name}  seed {res.model.seed}  "
          f"days {res.model.t_days:g}  domain {'x'.join(map(str, res.model.lattice.shape))} voxels")
    print(f"wall time  {res.wall_s:.1f} s  frames {res.frames}  cells {res.model.cells.n_alive}")
    print("headline readouts (final frame):")
    print(_fmt_readouts(r))


def _cmd_scenarios(a) -> int:
    from .scenario import list_scenarios

    shipped = list_scenarios()
    width = max(map(len, shipped), default=0)
    for name, desc in shipped.items():
        print(f"{name:<{width}}  {desc}")
    return 0


def _cmd_info(a) -> int:
    from .io import open_run
    from .io.runfile import _frame_list

    # everything is read before anything is printed: a damaged file gives the one error line
    with open_run(a.run) as rf:
        at = rf.attrs
        out = [f"{rf.path}: {at['format']} v{at['format_version']} "
               f"(niche {at.get('niche_version', '?')}), status {rf.status}",
               f"scenario {at.get('scenario_name', '?')}  seed {at.get('seed', '?')}  "
               f"shape {'x'.join(map(str, rf.shape))} @ {rf.voxel_um:g} um"]
        t = rf.times
        if rf.n_frames:
            out.append(f"frames {rf.n_frames}  t = {t[0]:g} .. {t[-1]:g} days")
        every = f" (fields every {at['field_every']} frames)" if "field_every" in at else ""
        out.append(f"output level {rf.level}{every}")
        if rf.level != "full" and rf.n_frames:
            for kind in ("fields", "bone", "agents"):
                out.append(f"  {kind} stored at {rf.stored_frames(kind).size} of "
                           f"{rf.n_frames} frames: {_frame_list(rf.stored_frames(kind))}")
        out.append(f"fields {', '.join(rf.field_names) or '(none)'}")
        if rf.n_frames:
            import math

            ro = rf.readouts.iloc[-1].to_dict()  # a count that is not a number is left out
            ro = {k: v for k, v in ro.items() if math.isfinite(v) or not k.startswith("n_")}
            out += ["readouts at last frame:", _fmt_readouts(ro)]
    print("\n".join(out))
    return 0


def _cmd_export(a) -> int:
    from .io.export import ExportError, export_run

    try:
        files = export_run(a.run, a.to, a.out, overwrite=a.overwrite)
    except (ExportError, ImportError) as e:
        print(f"niche: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} files to {a.out}: "
          + ", ".join(f.name for f in files[:6]) + (", ..." if len(files) > 6 else ""))
    return 0


def _cmd_bench(a) -> int:
    from .tools.bench import BenchUnavailable, run_bench

    if a.throughput:
        from .tools.throughput import run_throughput

        try:
            run_throughput(a.out, days=a.days, ref_days=a.ref_days, against=a.against)
        except RuntimeError as e:
            print(f"niche: error: {str(e).splitlines()[0]}", file=sys.stderr)
            return 2
        print((Path(a.out) / "throughput.md").read_text())
        print(f"wrote {Path(a.out) / 'throughput.json'}, {Path(a.out) / 'throughput.md'}")
        return 0
    if a.against:
        print("niche: error: --against compares throughput: use it with --throughput",
              file=sys.stderr)
        return 2

    try:
        rec = run_bench(a.out, quick=a.quick, e2e_days=a.e2e_days, threads=a.threads,
                        select=a.select)
    except BenchUnavailable as e:
        print(f"niche: error: {e}", file=sys.stderr)
        return 2
    print((Path(a.out) / "bench.md").read_text())
    print(f"wrote {Path(a.out) / 'bench.json'}, {Path(a.out) / 'bench.md'}, "
          f"{Path(a.out) / 'scaling.png'} in {rec['suite_wall_s']:.0f} s")
    return 0


def _cmd_validate(a) -> int:
    from .validation import cli as validate

    try:
        return validate.main(a)
    except ValueError as e:  # bad rows / replicates / shape: one line, status 2
        print(f"niche: error: {e}", file=sys.stderr)
        return 2


def _cmd_calibrate(a) -> int:
    from .calibration import cli as calibrate

    try:
        return calibrate.main(a)
    except ValueError as e:  # bad file, key, folder: one line, status 2
        print(f"niche: error: {e}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    from .provenance import __version__

    p = argparse.ArgumentParser(prog="niche", description="Bone-marrow niche simulator")
    p.add_argument("--version", action="version", version=f"niche {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a scenario and write a run file")
    r.add_argument("scenario", help="scenario TOML file, or the name of a shipped scenario "
                                    "(see niche scenarios)")
    r.add_argument("--out", "-o", help="run file (default runs/<name>_seed<seed>.h5)")
    r.add_argument("--seed", type=int, help="random seed (overrides run.seed)")
    r.add_argument("--days", type=float, help="simulated days (overrides run.days)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a scenario value, e.g. --set cells.tcell.speed_um_per_min=8")
    r.add_argument("--overwrite", action="store_true", help="replace an existing run file")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    r.add_argument("--allow-large", action="store_true",
                   help="run although the estimated memory, compute time or run-file size "
                        "exceeds this machine (refused by default)")
    r.add_argument("--checkpoint-every", type=float, metavar="DAYS",
                   help="write a checkpoint every DAYS simulated days (niche resume continues "
                        "from the last; the finished file keeps one)")
    r.set_defaults(func=_cmd_run)
    rs = sub.add_parser("resume", help="continue a killed, stopped or finished run from its "
                                       "last checkpoint")
    rs.add_argument("run", help="run file (.h5) or its journal (.h5.partial)")
    rs.add_argument("--days", type=float, help="run to this many days in all (default: the "
                                               "scenario's run.days)")
    rs.add_argument("--checkpoint-every", type=float, metavar="DAYS",
                    help="write a checkpoint every DAYS simulated days")
    rs.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    rs.add_argument("--allow-large", action="store_true",
                    help="continue although the run exceeds this machine's estimate")
    rs.set_defaults(func=_cmd_resume)
    rp = sub.add_parser("repair", help="make the run file of a killed run from its journal "
                                       "(complete frames only)")
    rp.add_argument("run", help="run file (.h5) or its journal (.h5.partial)")
    rp.add_argument("--overwrite", action="store_true",
                    help="replace an existing run file the killed run was not asked to replace")
    rp.set_defaults(func=_cmd_repair)
    sc = sub.add_parser("scenarios", help="list the shipped scenarios (name, description)")
    sc.set_defaults(func=_cmd_scenarios)
    i = sub.add_parser("info", help="summarise a run file")
    i.add_argument("run", help="run file (.h5)")
    i.set_defaults(func=_cmd_info)
    ex = sub.add_parser("export", help="export a run file's agents (all frames: decoded "
                                       "states, um coordinates, local concentrations), "
                                       "readouts and events as csv/parquet, or cells and "
                                       "fields as VTK files for ParaView")
    ex.add_argument("run", help="run file (.h5)")
    ex.add_argument("--to", required=True, choices=("csv", "parquet", "vtk"),
                    help="csv or parquet tables, or vtk (.vtp cells, .vti fields and bone, "
                         ".pvd time series; needs the viz extra)")
    ex.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    ex.add_argument("--overwrite", action="store_true",
                    help="replace an existing output folder (after the export completes)")
    ex.set_defaults(func=_cmd_export)
    b = sub.add_parser("bench", help="run the benchmark suite (JSON + Markdown + PNG)")
    b.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in seconds")
    b.add_argument("--out", default="bench", help="output folder (default bench/)")
    b.add_argument("--threads", type=int, help="NUMBA_NUM_THREADS for the suite")
    b.add_argument("--e2e-days", type=float, default=None,
                   help="simulated days of the end-to-end reference run (default 56; quick 0.25)")
    b.add_argument("-k", dest="select", help="pytest -k expression to select benchmarks")
    b.add_argument("--throughput", action="store_true",
                   help="per-core throughput of the whole model: the validation arms at 48^3 "
                        "and the reference at 100^3, single-threaded, and the reference on 2 "
                        "threads (niche/tools/throughput.py)")
    b.add_argument("--against", metavar="REV",
                   help="with --throughput: run the same cases with git revision REV too "
                        "(a temporary worktree), interleaved, and report the speed-ups")
    b.add_argument("--days", type=float, default=14.0,
                   help="with --throughput: simulated days per 48^3 case (default 14)")
    b.add_argument("--ref-days", type=float, default=4.0,
                   help="with --throughput: simulated days of the reference cases (default 4)")
    b.set_defaults(func=_cmd_bench)
    from .validation import cli as validate

    v = sub.add_parser("validate", help="run the validation targets V1-V13 (biology.md 3)")
    validate.add_arguments(v)
    v.set_defaults(func=_cmd_validate)
    from .calibration import cli as calibrate_cli

    c = sub.add_parser("calibrate", help="fit scenario parameters to validation rows "
                                         "(ABC-SMC, pyABC)")
    calibrate_cli.add_arguments(c)
    c.set_defaults(func=_cmd_calibrate)
    from .experiments.cli import add_subcommands as add_experiment

    add_experiment(sub)
    try:
        from .viz.cli import add_subcommands  # argument parsing only: no pyvista/VTK needed
    except ImportError:  # a source checkout that was never installed: niche.viz is unmapped
        add_subcommands = _replay_unavailable
    add_subcommands(sub)
    return p


def _replay_unavailable(sub) -> None:
    """Replay commands when ``niche.viz`` cannot be imported: each says how to get it."""
    def fail(a) -> int:
        print(f"niche: error: niche {a.cmd} needs niche installed with the viz extra: "
              'pip install -e ".[viz]"', file=sys.stderr)
        return 2

    for name in ("render", "view", "serve", "export-xdmf"):
        q = sub.add_parser(name, help="3D replay (needs an installed niche)")
        q.add_argument("args", nargs=argparse.REMAINDER)
        q.set_defaults(func=fail)


def main(argv: list[str] | None = None) -> int:
    import contextlib
    import io as _io

    from .scenario import ConfigError
    from .io import RunFileError

    def error(msg) -> int:  # exactly one line: control characters (newlines) escaped
        text = str(msg)
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
        print(f"niche: error: {text}", file=sys.stderr)
        return 2

    parser = build_parser()
    argparse_err = _io.StringIO()
    try:
        with contextlib.redirect_stderr(argparse_err):
            a = parser.parse_args(argv)
    except SystemExit as e:  # bad arguments: argparse's usage + error become one line
        text = argparse_err.getvalue()
        if not e.code:  # --help, --version
            sys.stderr.write(text)
            raise
        lines = [ln for ln in text.splitlines() if ln.strip()] or ["bad arguments"]
        prog, sep, reason = lines[-1].partition(": error: ")
        return error(f"{reason} (see {prog} --help)" if sep else lines[-1])
    sys.stderr.write(argparse_err.getvalue())
    try:
        return a.func(a)
    except (ConfigError, RunFileError, FileExistsError, IndexError, KeyError) as e:
        return error(e.args[0] if e.args else e)
    except OSError as e:  # a file or folder the command could not use
        where = f"{e.filename!r}: " if e.filename is not None else ""
        return error(f"{where}{e.strerror or e}")
    except MemoryError:
        return error("out of memory (the estimate of niche.scenario.limits was exceeded; "
                     "use a smaller domain or fewer cells)")
    except RecursionError:
        return error("the input is nested too deeply")
    except KeyboardInterrupt:
        print("niche: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
