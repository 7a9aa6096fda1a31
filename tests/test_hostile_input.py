"""Hostile input (issue 17): scenario files, experiment files and CLI arguments are untrusted.

Every malformed input must end in one ``niche: error: ...`` line on stderr, exit status 2,
no traceback, and no file created or changed. A hypothesis campaign (derandomized: CI sees
the same cases every run) feeds malformed values, override lists, scenario and experiment
files, file names and arguments to the loading / validation / resource-limit path and to
``niche.cli.main`` in this process; a dozen real ``niche`` processes, started together,
cover each class of input once.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from niche.cli import build_parser, main
from niche.experiments.spec import load_experiment
from niche.scenario import ConfigError, load_scenario, parse_overrides
from niche.scenario import limits
from niche.scenario.biology import KNOCKOUTS

ROOT = Path(__file__).resolve().parent.parent

#: a case that is wrongly accepted stays small (the test then fails on its exit status)
SMALL = ["--set", "domain.shape_voxels=[8,8,8]", "--quiet"]
#: this machine's memory as the limit check sees it during the campaign (deterministic)
FAKE_RAM = 16 * 2**30
#: each generated case must be answered within this many milliseconds
DEADLINE_MS = 3000
#: seconds each in-process case took (summarised by the last test)
TIMES: list[float] = []

build_parser()  # import the subcommands' modules once, outside the timed cases


def fuzz(n: int):
    return settings(max_examples=n, derandomize=True, deadline=DEADLINE_MS, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ----------------------------------------------------------------------------- values

def _not_number(s: str) -> bool:
    try:
        float(s)
    except (ValueError, OverflowError):
        return True
    return False


NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
WRONG_TYPE = st.one_of(
    st.text(max_size=12).filter(_not_number),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), min_size=1, max_size=2),
)


def floats_outside(lo: float | None, hi: float | None, lo_open: bool = False,
                   hi_open: bool = False) -> st.SearchStrategy:
    """Values a float key bounded by ``lo`` and ``hi`` must reject."""
    parts = [NON_FINITE, WRONG_TYPE]
    if lo is not None:
        top = lo if lo_open else math.nextafter(lo, -math.inf)
        parts.append(st.floats(-1e308, top, allow_nan=False, allow_infinity=False))
    if hi is not None:
        bottom = hi if hi_open else math.nextafter(hi, math.inf)
        parts.append(st.floats(bottom, 1e308, allow_nan=False, allow_infinity=False))
    return st.one_of(parts)


def ints_outside(lo: int, hi: int | None) -> st.SearchStrategy:
    parts = [NON_FINITE, WRONG_TYPE, st.integers(max_value=lo - 1),
             st.floats(-1e6, 1e6).filter(lambda v: v != int(v))]  # a fraction is not an int
    if hi is not None:
        parts.append(st.integers(min_value=hi + 1))
    return st.one_of(parts)


CELL = st.sampled_from(["tcell", "ilc2", "monocyte", "osteoclast", "osteoblast"])
BAD_NAME = st.one_of(
    st.just(""), st.text(min_size=101, max_size=140),
    st.tuples(st.text(max_size=8), st.characters(categories=["Cc"]), st.text(max_size=8))
    .map("".join),
    st.tuples(st.text(max_size=8), st.sampled_from(["/", "\\"]), st.text(max_size=8))
    .map("".join))
BAD_SHAPE = st.one_of(
    st.lists(st.integers(4, 1024), min_size=3, max_size=3).flatmap(
        lambda s: st.tuples(st.integers(0, 2), st.one_of(st.integers(max_value=3),
                                                          st.integers(min_value=1025)))
        .map(lambda t: [t[1] if i == t[0] else v for i, v in enumerate(s)])),
    st.lists(st.integers(4, 64), max_size=6).filter(lambda s: len(s) != 3),
    WRONG_TYPE.filter(lambda v: not isinstance(v, list)))
BAD_PERTURBATION = st.one_of(
    st.builds(lambda n: {"kind": "transfer", "target": "tcell", "count": n},
              st.one_of(st.integers(min_value=10_000_001), st.integers(max_value=0))),
    st.builds(lambda p: {"kind": "knockout", "pathway": p},
              st.text(max_size=12).filter(lambda p: p not in KNOCKOUTS)),
    st.builds(lambda k: {"kind": k},
              st.text(max_size=10).filter(lambda k: k not in ("knockout",))),
    st.builds(lambda d: {"kind": "deplete", "target": "tcell", "day": d},
              floats_outside(0.0, None)),
    st.builds(lambda d: {"kind": "deplete", "target": "tcell", "day": 5.0, "end_day": d},
              st.floats(-1e6, 4.9)),
    st.integers(),
)
BAD_INTERVENTIONS = st.one_of(
    st.builds(lambda k: [{"kind": k}],
              st.one_of(st.text(max_size=10), st.integers(), st.lists(st.integers(),
                                                                      max_size=2))
              .filter(lambda k: k not in ("fmt", "probiotic", "prebiotic", "scfa_supplement"))),
    st.lists(st.integers(), min_size=1, max_size=3),
    st.builds(lambda e: [{"kind": "probiotic", "efficacy": e}], floats_outside(0.0, 1.0)),
    st.builds(lambda f: [{"kind": "prebiotic", "scfa_fold": f}], floats_outside(1.0, None)),
    st.builds(lambda d: [{"kind": "fmt", "start_day": d}], NON_FINITE),
    st.builds(lambda e: [{"kind": "scfa_supplement", "start_day": 5.0, "end_day": e}],
              st.floats(-1e6, 5.0)),
    st.just({"kind": "fmt"}), st.just([{}]), st.text(max_size=8),
)

#: (dotted key, values it must reject): the keys the issue names, and their neighbours
BAD_VALUES: list[tuple[st.SearchStrategy, st.SearchStrategy]] = [
    (st.just("run.days"), floats_outside(0.0, 730.0, lo_open=True)),
    (st.just("run.frame_interval_days"), floats_outside(0.0, 730.0, lo_open=True)),
    (st.just("run.seed"), ints_outside(0, 2**63 - 1)),
    (st.just("domain.shape_voxels"), BAD_SHAPE),
    (st.just("domain.voxel_um"), floats_outside(1.0, 100.0)),
    (st.just("time.move_step_min"), floats_outside(0.1, 10080.0)),
    (st.sampled_from(["time.field_step_min", "time.decision_step_min", "time.bone_step_min"]),
     floats_outside(0.0, 10080.0, lo_open=True)),
    (CELL.map(lambda c: f"cells.{c}.initial_per_mm3"), floats_outside(0.0, 1e7)),
    (CELL.map(lambda c: f"cells.{c}.influx_per_mm3_per_day"), floats_outside(0.0, 1e7)),
    (CELL.map(lambda c: f"cells.{c}.speed_um_per_min"), floats_outside(0.0, 100.0)),
    (CELL.map(lambda c: f"cells.{c}.persistence"), floats_outside(0.0, 1.0, hi_open=True)),
    (st.just("vessels.count"), ints_outside(0, 1000)),
    (st.just("bone.bv_tv"), floats_outside(0.0, 0.6)),
    (st.just("il2.dose_iu"), floats_outside(0.0, None)),
    (st.just("il2.interval_days"), floats_outside(0.0, None, lo_open=True)),
    (st.just("microbiota.th17_priming_gain"), floats_outside(0.0, 100.0)),
    (st.just("biology.tcell.priming_influx_gain"), floats_outside(0.0, 100.0)),
    (st.sampled_from(["biology.monocyte.tnf_gain", "biology.osteoblast.tgfb_recruit_gain",
                      "biology.osteoclast.apoptosis_per_day"]), floats_outside(0.0, None)),
    (st.just("invitro.treg_per_monocyte"), floats_outside(0.0, 100.0)),
    (st.just("invitro.monocytes_per_mm2"), floats_outside(0.0, 1e6, lo_open=True)),
    (st.just("name"), BAD_NAME),
    (st.just("perturbations"), st.lists(BAD_PERTURBATION, min_size=1, max_size=3)),
    (st.just("microbiota.interventions"), BAD_INTERVENTIONS),
    (st.sampled_from(["run", "domain", "cells.tcell", "biology.ilc2", "il2", "zz"])
     .flatmap(lambda sec: st.from_regex(r"\Azz[a-z_]{0,10}\Z").map(lambda k: f"{sec}.{k}")),
     st.integers()),  # unknown keys
]
BAD_SETTING = st.sampled_from(BAD_VALUES).flatmap(lambda kv: st.tuples(*kv))


def toml_value(v) -> str:
    """``v`` as a TOML value on one line (the right-hand side of ``--set KEY=VALUE``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) \
            else repr(v)
    if isinstance(v, str):
        return '"' + "".join("\\" + c if c in '"\\' else
                             f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c
                             for c in v) + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_value(str(k))} = {toml_value(x)}"
                               for k, x in v.items()) + "}"
    raise TypeError(type(v))


# ----------------------------------------------------------------------------- harness

@contextlib.contextmanager
def sandbox(files: dict[str, bytes] | None = None):
    """A fresh empty working folder (with ``files``) for one case; on leaving it, asserts
    that nothing was created or changed there."""
    with tempfile.TemporaryDirectory() as d, contextlib.chdir(d):
        for name, data in (files or {}).items():
            Path(name).write_bytes(data)
        before = {p: p.read_bytes() for p in Path(".").iterdir() if p.is_file()}
        yield Path(d)
        after = sorted(str(p) for p in Path(".").rglob("*"))
        assert after == sorted(str(p) for p in before), f"left behind: {after}"
        for p, data in before.items():
            assert p.read_bytes() == data, f"{p} changed"


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("niche: error: "), err
    return lines[0]


def cli(*argv: str, files: dict[str, bytes] | None = None) -> str:
    """Run ``niche.cli.main(argv)`` in a sandbox; assert exit status 2 with one error line
    and nothing left behind; return the line."""
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    with sandbox(files), mock.patch.object(limits, "machine_memory_bytes",
                                           return_value=FAKE_RAM):
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(list(argv))
    TIMES.append(time.perf_counter() - t0)
    assert rc == 2, (argv, rc, out.getvalue(), err.getvalue())
    return one_error_line(err.getvalue())


def rejected(fn, *args, **kwargs) -> str:
    """``fn(*args, **kwargs)`` raises a one-line ConfigError; return its message."""
    t0 = time.perf_counter()
    with mock.patch.object(limits, "machine_memory_bytes", return_value=FAKE_RAM):
        with pytest.raises(ConfigError) as e:
            fn(*args, **kwargs)
    TIMES.append(time.perf_counter() - t0)
    msg = str(e.value)
    assert "\n" not in msg and "\r" not in msg, msg
    return msg


def _load_and_check(source, overrides=None):
    limits.check_resources(load_scenario(source, overrides))


# ----------------------------------------------------------------------------- campaign

@fuzz(160)
@given(BAD_SETTING)
def test_bad_values_are_rejected_by_the_schema(setting):
    key, value = setting
    msg = rejected(_load_and_check, "default", {key: value})
    top = key.split(".")[0]
    assert top in msg, msg  # the message names the key (or its section)


@fuzz(110)
@given(BAD_SETTING)
def test_bad_values_on_the_command_line(setting):
    key, value = setting
    line = cli("run", "default", *SMALL, "--set", f"{key}={toml_value(value)}")
    assert key.split(".")[0] in line


@fuzz(60)
@given(st.lists(st.one_of(
    st.text(max_size=15).filter(lambda s: "=" not in s),                  # no '='
    st.from_regex(r"\A(\.[a-z.]*|[a-z.]*\.\.[a-z.]*|[a-z.]*\.)=1\Z"),     # empty key parts
    st.just("=5"), st.integers(), st.none(), st.binary(max_size=4)),      # not strings
    min_size=1, max_size=4).map(lambda items: ["run.days=1", *items]))
def test_malformed_override_lists(items):
    rejected(parse_overrides, items)
    text_items = [i for i in items if isinstance(i, str)]
    if len(text_items) == len(items):
        args = [a for i in items for a in ("--set", i)]
        cli("run", "default", *SMALL, *args)


@fuzz(20)
@given(st.dictionaries(st.one_of(st.integers(), st.just(""), st.just("a..b"), st.just(".a")),
                       st.integers(), min_size=1, max_size=3))
def test_malformed_override_mappings(mapping):
    rejected(parse_overrides, mapping)


GARBAGE_FILE = st.one_of(
    st.tuples(st.binary(max_size=200), st.binary(max_size=200))
    .map(lambda t: t[0] + b"\xff\xfe" + t[1]),                            # not UTF-8
    st.tuples(st.text(max_size=50), st.text(max_size=50))
    .map(lambda t: (t[0] + "\x00" + t[1]).encode()),                      # NUL bytes
    st.sampled_from(["", " ", "\n\n", "# only a comment\n", "\t# a\n# b\n"])
    .map(str.encode),                                                     # empty
    st.integers(1, 20000).map(lambda n: ("a = " + "[" * n + "]" * n).encode()),  # deep
    st.text(max_size=40).map(lambda s: f"zz_unknown = {toml_value(s)}\n".encode()),
    st.sampled_from(["[zz", "[[zz", "zz =", "= 1", 'zz = "open', "[[a]]\n[a]", "a = 1\na = 2"])
    .flatmap(lambda head: st.text(max_size=30).map(lambda s: (head + s).encode())),
    BAD_SETTING.map(lambda kv: f"{kv[0]} = {toml_value(kv[1])}\n".encode()),  # bad values
)


@fuzz(80)
@given(GARBAGE_FILE)
def test_garbage_scenario_files(data):
    with sandbox({"s.toml": data}):
        rejected(_load_and_check, "s.toml")
    cli("run", "s.toml", *SMALL, files={"s.toml": data})


@fuzz(40)
@given(GARBAGE_FILE)
def test_garbage_experiment_files(data):
    with sandbox({"e.toml": data}):
        rejected(load_experiment, "e.toml")
    cli("experiment", "run", "e.toml", "--workers", "0", files={"e.toml": data})


@fuzz(30)
@given(st.one_of(
    st.tuples(st.text(max_size=10), st.text(max_size=10)).map(lambda t: f"{t[0]}\x00{t[1]}"),
    st.integers(256, 600).map(lambda n: "s" * n + ".toml"),
    st.integers(2, 8).map(lambda n: "/".join(["d" * 200] * n) + "/s.toml"),
    st.sampled_from([".", "..", "/", "", "nope.toml", "no/such/dir/s.toml", "shamm"])))
def test_bad_scenario_names(name):
    rejected(load_scenario, name)
    cli("run", name, *SMALL)


@fuzz(40)
@given(st.one_of(
    st.tuples(st.just("--days"), st.one_of(
        st.sampled_from(["nan", "inf", "-inf", "0", "-1", "731", "1e15", "1e300", "1e400"]),
        st.text(max_size=8).filter(_not_number).filter(lambda s: not s.startswith("-")))),
    st.tuples(st.just("--seed"), st.one_of(
        st.integers(max_value=-1).map(str), st.integers(min_value=2**63).map(str),
        st.sampled_from(["1.5", "x", "1e3", ""]))),
    st.tuples(st.just("--out"), st.one_of(
        st.tuples(st.text(max_size=5), st.text(max_size=5)).map(lambda t: f"{t[0]}\x00{t[1]}.h5"),
        st.integers(240, 400).map(lambda n: "o" * n + ".h5"),
        st.sampled_from([".", "in.toml/x.h5", "in.toml"]))),
    st.tuples(st.just("--checkpoint-every"), st.one_of(
        st.sampled_from(["nan", "inf", "0", "-1", "-inf"]).map(lambda v: f"={v}"),
        st.floats(-1e300, 0.0).map(lambda v: f"={v!r}"))).map(lambda t: (t[0] + t[1],)),
    st.tuples(st.sampled_from(["--bogus", "--days", "-z", "--set"]))))
def test_bad_command_line_arguments(args):
    # in.toml exists (a file where a folder must be, or an output that exists)
    cli("run", "default", *SMALL, *args, files={"in.toml": b'extends = "default.toml"\n'})


@fuzz(20)
@given(st.integers(4, 12).flatmap(lambda h: st.tuples(
    st.just(h), st.floats(10.0 * (h - 1) + 0.5, 1000.0))))
def test_culture_wells_too_shallow_for_their_layers(well):
    height, slice_um = well
    line = cli("run", "invitro_osteoclastogenesis", "--quiet", "--set",
               f"domain.shape_voxels=[{height},16,16]", "--set",
               f"invitro.bone_slice_um={slice_um!r}")
    assert "a well needs height" in line


@fuzz(60)
@given(st.one_of(
    # memory: domains beyond FAKE_RAM
    st.lists(st.integers(400, 1024), min_size=3, max_size=3).map(
        lambda s: {"domain.shape_voxels": s}),
    # compute: many ticks of a large domain
    st.tuples(st.integers(300, 400), st.floats(0.1, 0.5), st.floats(200.0, 730.0)).map(
        lambda t: {"domain.shape_voxels": [t[0]] * 3, "time.move_step_min": t[1],
                   "time.field_step_min": t[1], "time.decision_step_min": 60 * t[1],
                   "time.bone_step_min": 360 * t[1], "run.days": t[2]}),
    # cells: dense populations of a large domain of coarse voxels
    st.tuples(CELL, st.floats(5e6, 1e7)).map(
        lambda t: {"domain.shape_voxels": [300, 300, 300], "domain.voxel_um": 100.0,
                   f"cells.{t[0]}.initial_per_mm3": t[1]})))
def test_absurd_runs_are_refused_before_allocating(ov):
    msg = rejected(_load_and_check, "default", ov)
    assert "--allow-large" in msg and ("memory" in msg or "compute" in msg), msg
    assert "domain.shape_voxels" in msg or "cells" in msg, msg
    with mock.patch.object(limits, "machine_memory_bytes", return_value=FAKE_RAM):
        est = limits.check_resources(load_scenario("default", ov), allow_large=True)
    assert est.memory_bytes > FAKE_RAM or est.compute_s > limits.MAX_COMPUTE_S
    args = [a for k, v in ov.items() for a in ("--set", f"{k}={toml_value(v)}")]
    cli("run", "default", "--quiet", *args)


def test_models_refuse_too(tmp_path, monkeypatch):
    """Model construction (NicheModel, Mesa's batch_run) checks before allocating, and
    niche.run before creating the output's folder; allow_large is the override."""
    from niche import NicheModel, run

    monkeypatch.setattr(limits, "machine_memory_bytes", lambda: FAKE_RAM)
    huge = {"domain.shape_voxels": [1024, 1024, 1024]}
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"domain.shape_voxels \[1024, 1024, 1024\].*memory"):
        NicheModel("default", **huge)
    out = tmp_path / "runs" / "x.h5"
    with pytest.raises(ConfigError, match="allow_large=True"):
        run("default", out, overrides=huge)
    assert time.perf_counter() - t0 < 5 and not (tmp_path / "runs").exists()
    est = limits.estimate(load_scenario("reference"))  # the benchmark run stays allowed
    assert est.memory_bytes < 2e9 and 60 < est.compute_s < 3600


def test_oversized_and_unreadable_files(tmp_path):
    big = tmp_path / "big.toml"
    big.write_bytes(b"# " + b"x" * (4 * 2**20) + b"\n")
    assert "larger than 4 MiB" in rejected(load_scenario, big)
    assert "not a file" in rejected(load_scenario, tmp_path)
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.toml"
        locked.write_text('name = "x"\n')
        locked.chmod(0)
        assert "cannot read" in rejected(load_scenario, locked)


def test_campaign_summary():
    """The in-process cases (>= 300 in the full file) were each answered quickly."""
    if not TIMES:
        pytest.skip("no campaign case ran")
    print(f"\nhostile-input campaign: {len(TIMES)} cases, mean {1e3 * sum(TIMES) / len(TIMES):.1f}"
          f" ms, max {1e3 * max(TIMES):.0f} ms")
    assert max(TIMES) < DEADLINE_MS / 1e3


# ----------------------------------------------------------------------------- processes

SCENARIO_FILES = {
    "garbage.toml": bytes(range(256)) * 2,
    "nul.toml": b'name = "a\\u0000b"\n',
    "empty.toml": b"",
    "interventions.toml": b'extends = "default.toml"\n[microbiota]\n'
                          b'interventions = [{ kind = "probiotic", efficacy = "x" }, 3]\n',
    "experiment.toml": b"\x89PNG\r\n\x1a\n" + bytes(range(128, 256)),
}
PROCESS_CASES = {
    "garbage file": ["run", "garbage.toml"],
    "NUL in the scenario name": ["run", "nul.toml"],
    "300-character file name": ["run", "n" * 295 + ".toml"],
    "empty file": ["run", "empty.toml"],
    "huge domain": ["run", "default", "--set", "domain.shape_voxels=[1024,1024,1024]"],
    "1e15 cells per mm^3": ["run", "default", "--set", "cells.tcell.initial_per_mm3=1e15"],
    "--days 1e300": ["run", "default", "--days", "1e300"],
    "run.days = 1_000 at full size": ["run", "reference", "--set", "run.days=1_000"],
    "tiny move step": ["run", "default", "--set", "time.move_step_min=1e-6"],
    "huge speed": ["run", "default", "--set", "cells.tcell.speed_um_per_min=1e12"],
    "malformed interventions": ["run", "interventions.toml"],
    "experiment file garbage": ["experiment", "run", "experiment.toml"],
}


@pytest.fixture(scope="module")
def processes(tmp_path_factory):
    """Every case as a real ``niche`` process, all started at once (2 cores: ~10 s)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    started = {}
    for case, argv in PROCESS_CASES.items():
        d = tmp_path_factory.mktemp("proc")
        for name, data in SCENARIO_FILES.items():
            (d / name).write_bytes(data)
        p = subprocess.Popen([sys.executable, "-m", "niche.cli", *argv], cwd=d, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started[case] = (p, d, time.perf_counter())
    done = {}
    for case, (p, d, t0) in started.items():
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        done[case] = (p.returncode, out, err, d, time.perf_counter() - t0)
    return done


@pytest.mark.parametrize("case", list(PROCESS_CASES))
def test_real_processes(processes, case):
    if case == "huge domain":
        est = limits.estimate(load_scenario("default", {"domain.shape_voxels": [1024] * 3}))
        if (limits.machine_memory_bytes() or 0) > est.memory_bytes:
            pytest.skip("this machine could hold a 1024^3 domain")
    rc, out, err, d, wall = processes[case]
    assert rc == 2, (case, rc, out, err)
    one_error_line(err)
    left = sorted(p.name for p in d.iterdir())
    assert left == sorted(SCENARIO_FILES), f"{case}: left behind {left}"
    for name, data in SCENARIO_FILES.items():
        assert (d / name).read_bytes() == data
    assert wall < 60
