"""Reliability campaigns with real faults: SIGKILL at random moments and inside a
checkpoint, a frame or the assembly; SIGINT/SIGTERM/SIGHUP; a real full disk (a small
tmpfs); two runs on one output; checkpoint and resume bit-identical to the uninterrupted
run at the first, a middle and the last step, also with another thread count.

"Identical" compares every dataset of the run file (dtype, shape, bytes) and the root
attributes that the scenario and seed decide (:func:`tests.test_golden.file_hashes`),
leaving out provenance (versions) and ``/checkpoint`` (it holds wall-clock timings).
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import niche
from niche.io import open_run
from niche.io.journal import repair
from niche.runner import RunStopped, resume

from .conftest import ROOT
from .test_golden import file_hashes

#: in vivo: ovariectomy, IL-2 dosing from day 0.5, ILC2s depleted at day 1 (a perturbation)
INVIVO = ("ovx_il2", {
    "domain.shape_voxels": [16, 16, 16], "run.days": 2.0, "run.frame_interval_days": 0.25,
    "vessels.count": 2, "il2.start_day": 0.5, "run.seed": 11,
    "cells.ilc2.initial_per_mm3": 20000.0, "output.xdmf": False,
    "perturbations": [{"kind": "deplete", "target": "ilc2", "day": 1.0}]})
#: a culture well (Treg co-culture)
CULTURE = ("invitro_osteoclastogenesis_treg", {
    "domain.shape_voxels": [4, 24, 24], "run.days": 3.0, "run.frame_interval_days": 1.0,
    "run.seed": 3, "invitro.monocytes_per_mm2": 5000.0, "output.xdmf": False,
    "invitro.rank_priming_days": 0.0})   # precursors answer RANKL at once: fusions by day 3
CASES = {"invivo": INVIVO, "culture": CULTURE}


def _sim(h: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in h.items() if not k.startswith("checkpoint")}


def _differ(a: Path, b: Path) -> list[str]:
    ha, hb = _sim(file_hashes(a)), _sim(file_hashes(b))
    return sorted(k for k in set(ha) | set(hb) if ha.get(k) != hb.get(k))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run of each case."""
    d = tmp_path_factory.mktemp("reference")
    out = {}
    for name, (sc, ov) in CASES.items():
        out[name] = d / f"{name}.h5"
        niche.run(sc, out[name], overrides=ov)
    return out


def _set_args(ov: dict) -> list[str]:
    import tomli_w

    args = []
    for k, v in ov.items():
        text = tomli_w.dumps({"v": v})[4:].strip()
        args += ["--set", f"{k}={text}"]
    return args


def _env(threads: int | None = None) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    if threads is not None:
        e["NUMBA_NUM_THREADS"] = str(threads)
    return e


def _assert_frames_match(path: Path, ref: Path) -> int:
    """Every frame of ``path`` equals the same frame of ``ref``; returns the frame count."""
    with open_run(path) as a, open_run(ref) as b:
        n = a.n_frames
        assert n <= b.n_frames
        np.testing.assert_array_equal(a.times, b.times[:n])
        ra, rb = a.readouts, b.readouts.iloc[:n]
        assert list(ra.columns) == list(rb.columns)
        np.testing.assert_array_equal(ra.to_numpy(), rb.to_numpy())
        for k in range(n):
            np.testing.assert_array_equal(a.bone(k), b.bone(k))
            for name in a.field_names:
                np.testing.assert_array_equal(a.field(name, k), b.field(name, k))
            assert a.agents(k).equals(b.agents(k)), f"agents of frame {k} differ"
    return n


# ------------------------------------------------------------------ checkpoint and resume
class _SignalAt:
    """Sends this process a real SIGTERM after tick ``tick``."""

    def __init__(self, tick: int):
        self.tick = tick

    def on_tick(self, model):
        if model.tick == self.tick:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_resume_is_bit_identical(case, where, reference, tmp_path):
    import numba

    sc, ov = CASES[case]
    n_ticks = niche.NicheModel(sc, **ov).n_ticks
    tick = {"first": 1, "middle": n_ticks // 2 + 1, "last": n_ticks}[where]
    out = tmp_path / "r.h5"
    with pytest.raises(RunStopped) as e:
        niche.run(sc, out, overrides=ov, observers=[_SignalAt(tick)])
    assert e.value.exit_code == 143 and e.value.t_days > 0
    assert not out.exists() and (tmp_path / "r.h5.partial" / "checkpoint.ckpt").is_file()
    before = numba.get_num_threads()
    numba.set_num_threads(1 if before > 1 else before)  # another thread count
    try:
        res = resume(out)
    finally:
        numba.set_num_threads(before)
    assert res.path == out and not (tmp_path / "r.h5.partial").exists()
    assert _differ(out, reference[case]) == []


def test_resume_in_another_process_and_thread_count(reference, tmp_path):
    """Stopped here with the default threads, continued by ``niche resume`` in a process
    with NUMBA_NUM_THREADS=1; then a finished run (checkpointing) continued by --days."""
    sc, ov = INVIVO
    out = tmp_path / "r.h5"
    with pytest.raises(RunStopped):
        niche.run(sc, out, overrides=ov, observers=[_SignalAt(40)], checkpoint_every=0.3)
    p = subprocess.run([sys.executable, "-m", "niche.cli", "resume", str(out), "-q"],
                       capture_output=True, text=True, env=_env(threads=1), timeout=300)
    assert p.returncode == 0, p.stderr
    assert _differ(out, reference["invivo"]) == []
    # the finished file keeps its last checkpoint: continue it 1 day further, and compare
    # with a run of 3 days straight (frames of the first 2 days and the continuation)
    short = tmp_path / "short.h5"
    niche.run(sc, short, overrides={**ov, "run.days": 1.0}, checkpoint_every=0.5)
    with h5py.File(short, "r") as f:
        assert "checkpoint" in f
    res = resume(short, days=2.0)
    assert res.model.t_days == pytest.approx(2.0)
    with open_run(short) as rf:
        assert rf.n_frames == 9 and rf.status == "complete"
    _assert_frames_match(short, reference["invivo"])


def test_in_memory_run_resumes_from_its_checkpoint(tmp_path):
    """Runs without a run file (experiments) checkpoint to a file and continue from it."""
    sc, ov = INVIVO
    straight = niche.run(sc, overrides=ov, write=False)
    ck = tmp_path / "run.ckpt"
    with pytest.raises(RunStopped):
        niche.run(sc, overrides=ov, write=False, checkpoint=ck, checkpoint_every=0.5,
                  observers=[_SignalAt(100)])
    assert ck.is_file()
    res = niche.run(sc, overrides=ov, write=False, checkpoint=ck)
    assert not ck.exists()
    assert res.history.equals(straight.history)


def test_checkpoints_refuse_foreign_code(tmp_path):
    """A checkpoint is untrusted input: a pickle that calls anything but the model's own
    classes is refused before it runs."""
    import hashlib
    import json
    import pickle

    from niche.io.checkpoint import MAGIC, CheckpointError, load_checkpoint

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    payload = pickle.dumps({"model": Evil(), "observers": {}})
    meta = {"tick": 0, "frames": 0, "payload_bytes": len(payload),
            "payload_sha256": hashlib.sha256(payload).hexdigest()}
    data = MAGIC + json.dumps(meta).encode() + b"\n" + payload
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(data)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(data[:-3])


# ------------------------------------------------------------------ real kills
_KILL_AT = r"""
import os, signal, sys
what, nth = sys.argv[1], int(sys.argv[2])
seen = [0]
_write, _replace = os.write, os.replace

def write(fd, data):
    if what in ("checkpoint", "frame"):
        name = os.readlink(f"/proc/self/fd/{fd}")
        hit = ".checkpoint.ckpt." in name if what == "checkpoint" else "/frames/." in name
        if hit and len(data) > 1000:  # the file's payload (not a checkpoint's header line)
            seen[0] += 1
            if seen[0] == nth:  # half of the nth such file is written, then a SIGKILL
                _write(fd, bytes(data)[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
    return _write(fd, data)

def replace(src, dst, **kw):
    if what == "assembly" and str(src).endswith(".assembling"):
        os.kill(os.getpid(), signal.SIGKILL)
    return _replace(src, dst, **kw)

os.write, os.replace = write, replace
from niche.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _run_args(case: str, out: Path, *extra: str) -> list[str]:
    sc, ov = CASES[case]
    return ["run", sc, "--out", str(out), "-q", *_set_args(ov), *extra]


def _check_killed(out: Path, ref: Path) -> tuple[int, bool]:
    """Make the killed run's file whole and check it; returns (frames, resumed)."""
    if out.exists() and not out.with_name(out.name + ".partial").exists():
        return _assert_frames_match(out, ref), False  # it finished before the kill
    jdir = out.with_name(out.name + ".partial")
    if not (jdir / "header.h5").exists():
        return 0, False  # killed before the first frame: nothing to keep
    path, n = repair(out)
    assert path == out and not jdir.exists()
    assert _assert_frames_match(out, ref) == n
    return n, False


def _kill_once(i: int, delay: float, tmp_path: Path, ref: Path) -> dict[str, int]:
    """Start a run that checkpoints, SIGKILL it ``delay`` s after it wrote its header, then
    repair it (and, for every fifth, resume it) and compare with the reference."""
    out = tmp_path / f"k{i}.h5"
    p = subprocess.Popen([sys.executable, "-m", "niche.cli",
                          *_run_args("invivo", out, "--checkpoint-every", "0.2")],
                         env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    header = out.with_name(out.name + ".partial") / "header.h5"
    t_end = time.monotonic() + 120
    while not header.exists() and p.poll() is None and time.monotonic() < t_end:
        time.sleep(0.005)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait(60)
    n, _ = _check_killed(out, ref)
    resumed = 0
    if i % 5 == 0 and out.exists():
        with h5py.File(out, "r") as f:
            has_ck = "checkpoint" in f and f.attrs["status"] == "incomplete"
        if has_ck:
            resume(out)
            assert _differ(out, ref) == []
            resumed = 1
    return {"kills": 1, "journals": int(n > 0), "frames": n, "resumed": resumed}


def test_sigkill_campaign(reference, tmp_path):
    """>= 20 real SIGKILLs at random moments of a run that checkpoints (two at a time):
    every killed run repairs into a file whose every frame equals the uninterrupted run's;
    every fifth is also resumed to the end, bit-identical. NICHE_KILLS sets the count."""
    from concurrent.futures import ThreadPoolExecutor

    n = int(os.environ.get("NICHE_KILLS", "20"))
    rng = random.Random(2026)
    delays = [rng.uniform(0.0, 2.0) for _ in range(n)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda i: _kill_once(i, delays[i], tmp_path,
                                                     reference["invivo"]), range(n)))
    stats = {k: sum(r[k] for r in results) for k in results[0]}
    print(f"\nSIGKILL campaign: {stats}")
    assert stats["kills"] >= 20 and stats["journals"] >= 0.6 * n and stats["resumed"] >= 1


@pytest.mark.parametrize("what,nth", [("checkpoint", 1), ("checkpoint", 3), ("frame", 4),
                                      ("assembly", 1)])
def test_sigkill_inside_a_checkpoint_a_frame_or_the_assembly(what, nth, reference, tmp_path):
    """A real SIGKILL while half of a checkpoint or a frame file is written, or between the
    assembled file and its rename: the run repairs (and resumes) to the reference."""
    out = tmp_path / "x.h5"
    p = subprocess.run([sys.executable, "-c", _KILL_AT, what, str(nth),
                        *_run_args("invivo", out, "--checkpoint-every", "0.2")],
                       env=_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr
    jdir = out.with_name(out.name + ".partial")
    assert not out.exists() and jdir.is_dir()
    assert list(jdir.glob("**/*.tmp")) or what == "assembly"  # the torn file is there
    if what != "checkpoint" or nth > 1:
        res = resume(out)  # from the last complete checkpoint
        assert res.path == out and _differ(out, reference["invivo"]) == []
    else:  # no complete checkpoint yet: repair keeps the complete frames
        _, n = repair(out)
        assert n >= 1 and _assert_frames_match(out, reference["invivo"]) == n


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                      (signal.SIGHUP, 129), ("double-int", 130)])
def test_signals_stop_cleanly_and_resume(sig, code, reference, tmp_path):
    out = tmp_path / "s.h5"
    p = subprocess.Popen([sys.executable, "-m", "niche.cli", *_run_args("invivo", out)],
                         env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    header = out.with_name(out.name + ".partial") / "header.h5"
    t_end = time.monotonic() + 60
    while not header.exists() and time.monotonic() < t_end:
        time.sleep(0.005)
    time.sleep(0.3)
    if sig == "double-int":
        p.send_signal(signal.SIGINT)
        time.sleep(0.01)
        p.send_signal(signal.SIGINT)
    else:
        p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    if p.returncode == 0:
        pytest.skip("the run finished before the signal came")  # pragma: no cover
    assert p.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("niche: stopped by SIG"), err
    assert "Traceback" not in err
    res = resume(out)
    assert res.path == out and _differ(out, reference["invivo"]) == []


def test_second_writer_on_the_same_output_is_refused(reference, tmp_path):
    """A second run on an output that a running run writes is refused in one line, with
    or without --overwrite, and touches nothing of the first run's."""
    out = tmp_path / "w.h5"
    first = subprocess.Popen([sys.executable, "-m", "niche.cli",
                              *_run_args("invivo", out, "--days", "400")],
                             env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    header = out.with_name(out.name + ".partial") / "header.h5"
    t_end = time.monotonic() + 60
    while not header.exists() and time.monotonic() < t_end:
        time.sleep(0.005)
    listing = sorted(p.name for p in (tmp_path / "w.h5.partial" / "frames").iterdir())
    for extra in ([], ["--overwrite"]):
        second = subprocess.run([sys.executable, "-m", "niche.cli",
                                 *_run_args("invivo", out, *extra)],
                                env=_env(), capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first run should still be running"
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "being written by another run (pid" in lines[0], lines
    assert set(listing) <= {p.name for p in (tmp_path / "w.h5.partial" / "frames").iterdir()}
    first.send_signal(signal.SIGTERM)
    assert first.wait(120) == 143, first.stderr.read()
    path, n = repair(out)
    assert n >= 9
    _assert_frames_match(reference["invivo"], path)  # the first run's frames are intact


def test_disk_full_is_one_line_and_keeps_the_complete_frames(reference, tmp_path):
    """A real full disk: a 300 kB tmpfs. The run says so in one line; its journal's
    complete frames make a valid run file once copied where there is space."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()})")
    try:
        out = mnt / "d.h5"
        p = subprocess.run([sys.executable, "-m", "niche.cli",
                            *_run_args("invivo", out, "--checkpoint-every", "0.5",
                                      "--allow-large")],  # past the free-space check
                           env=_env(), capture_output=True, text=True, timeout=300)
        assert p.returncode == 1, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("niche: error: disk full"), p.stderr
        assert not out.exists()
        jdir = mnt / "d.h5.partial"
        assert not list(jdir.glob("**/*.tmp")), "a torn temporary file was left"
        n_frames = len(list((jdir / "frames").glob("*.h5")))
        assert n_frames >= 1
        shutil.copytree(jdir, tmp_path / "d.h5.partial")
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
    path, n = repair(tmp_path / "d.h5")
    assert n == n_frames and _assert_frames_match(path, reference["invivo"]) == n


def test_killed_experiment_resumes_its_runs_from_their_checkpoints(tmp_path, monkeypatch):
    """``niche experiment run`` killed (SIGKILL) mid-run: running it again continues the
    unfinished run from its checkpoint, and the table equals an uninterrupted experiment's."""
    import tomli_w

    from niche.experiments.folder import load, run_experiment
    from niche.experiments.spec import Experiment
    import niche.runner as runner

    desc = {"name": "ck", "seeds": [5, 6], "days": 2.0,
            "set": {"domain.shape_voxels": [16, 16, 16], "run.frame_interval_days": 0.25,
                    "vessels.count": 2},
            "arms": {"ovx": {"scenario": "ovx"}},
            "output": {"readouts": ["bv_tv", "n_tcell", "n_osteoclast"],
                       "checkpoint_every_days": 0.25}}
    toml = tmp_path / "ck.toml"
    toml.write_text(tomli_w.dumps(desc))
    killed = tmp_path / "killed"
    p = subprocess.Popen([sys.executable, "-m", "niche.cli", "experiment", "run", str(toml),
                          "--out", str(killed), "--workers", "0", "-q"], env=_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t_end = time.monotonic() + 120
    while not list((killed / "checkpoints").glob("*.ckpt")) and time.monotonic() < t_end:
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    assert p.wait(60) == -signal.SIGKILL
    left = list((killed / "checkpoints").glob("*.ckpt"))
    assert left, "the killed experiment left no checkpoint"
    loaded = []
    real = runner.load_checkpoint
    monkeypatch.setattr(runner, "load_checkpoint", lambda p: loaded.append(p) or real(p))
    run_experiment(Experiment.model_validate(desc), killed, workers=0, progress=False)
    assert [Path(x).name for x in loaded] == [x.name for x in left]
    assert not list((killed / "checkpoints").glob("*.ckpt"))
    straight = tmp_path / "straight"
    run_experiment(Experiment.model_validate(desc), straight, workers=0, progress=False)
    import pandas as pd

    pd.testing.assert_frame_equal(load(killed), load(straight))


def test_bad_resume_and_repair_arguments_touch_nothing(tmp_path, capsys):
    """resume/repair with bad arguments: one error line, status 2, no file created or
    changed (the finished file and its checkpoint stay as they were)."""
    from niche.cli import main

    sc, ov = INVIVO
    out = tmp_path / "f.h5"
    niche.run(sc, out, overrides={**ov, "run.days": 0.5}, checkpoint_every=0.25)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    cases = [["resume", str(out), "--days", "nan"], ["resume", str(out), "--days", "1e300"],
             ["resume", str(out), "--days", "0.1"], ["resume", str(out), "--days", "-3"],
             ["resume", str(out), "--checkpoint-every", "0"],
             ["resume", str(out), "--checkpoint-every", "inf"],
             ["resume", str(tmp_path / "none.h5")], ["repair", str(out)],
             ["repair", str(tmp_path / "none.h5")], ["resume", str(tmp_path)]]
    for args in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("niche: error:"), (args, err)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before, args


def test_a_journal_killed_while_starting_holds_nothing_and_is_not_in_the_way(tmp_path):
    """A run killed before its first frame leaves an empty journal: repair says there is
    nothing to keep and removes it; a new run on that output is not refused."""
    from niche.io.journal import Journal
    from niche.io import RunFileError

    out = tmp_path / "e.h5"
    Journal.create(out).release()  # what a run killed during start-up leaves
    with pytest.raises(RunFileError, match="nothing to keep"):
        repair(out)
    assert not (tmp_path / "e.h5.partial").exists()
    Journal.create(out).release()
    sc, ov = INVIVO
    res = niche.run(sc, out, overrides={**ov, "run.days": 0.25})
    assert res.path == out and not (tmp_path / "e.h5.partial").exists()


@pytest.mark.parametrize("level", ["frames", "summary"])
def test_resume_at_reduced_output_levels_is_bit_identical(level, tmp_path):
    """Frames written on a subset of frames (output levels) resume to the same file."""
    sc, ov = INVIVO
    ov = {**ov, "output.level": level, "run.days": 1.5}
    if level == "frames":
        ov["output.field_every"] = 3
    ref = tmp_path / "ref.h5"
    niche.run(sc, ref, overrides=ov)
    out = tmp_path / "r.h5"
    with pytest.raises(RunStopped):
        niche.run(sc, out, overrides=ov, observers=[_SignalAt(300)])
    resume(out)
    assert _differ(out, ref) == []


def test_runs_started_together_on_one_output_one_wins(tmp_path):
    """Three runs on the same --out (with --overwrite) started at the same moment: one
    writes, the other two are refused in one line; the journal is the winner's."""
    out = tmp_path / "t.h5"
    args = [sys.executable, "-m", "niche.cli", *_run_args("invivo", out, "--days", "400",
                                                           "--overwrite")]
    procs = [subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    t_end = time.monotonic() + 120
    while sum(p.poll() is not None for p in procs) < 2 and time.monotonic() < t_end:
        time.sleep(0.05)
    running = [p for p in procs if p.poll() is None]
    assert len(running) == 1, [p.returncode for p in procs]
    for p in procs:
        if p is not running[0]:
            err = p.stderr.read().strip().splitlines()
            assert p.returncode == 2 and len(err) == 1, err
            assert "being written by another run" in err[0], err
    winner = running[0]
    lock_pid = int((tmp_path / "t.h5.partial" / "lock").read_text())
    assert lock_pid == winner.pid
    winner.send_signal(signal.SIGTERM)
    assert winner.wait(120) == 143
    assert not list(tmp_path.glob(".t.h5.partial.*"))  # no private journal left behind


def test_a_run_in_memory_stopped_without_a_checkpoint_file_says_so():
    sc, ov = INVIVO
    with pytest.raises(RunStopped, match="nothing kept") as e:
        niche.run(sc, overrides=ov, write=False, observers=[_SignalAt(5)])
    assert not e.value.checkpointed and e.value.path is None
