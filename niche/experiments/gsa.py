"""Sensitivity analysis of an experiment folder: its ``[sensitivity]`` design, analysed.

:func:`folder_sensitivity` takes the finished runs of the design's arm, averages each
sample's readouts over the replicate seeds, and hands the (samples x readouts) matrix to
:func:`niche.experiments.sensitivity.analyse` (SALib). The design's samples are the arm's
parameter sets (:meth:`niche.experiments.spec.Experiment.sensitivity_samples`), so they
run, resume and fail like every other run of the experiment.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..scenario import ConfigError
from .compare import values_at
from .folder import SPEC_FILE, load, status
from .sensitivity import analyse
from .spec import load_experiment

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["folder_sensitivity"]


def folder_sensitivity(out: str | Path) -> "pd.DataFrame":
    """The sensitivity indices of an experiment folder (tidy: output, parameter, index,
    value). Raises ConfigError if the experiment has no ``[sensitivity]`` or a run of its
    design has not finished."""
    out = Path(out)
    exp = load_experiment(out / SPEC_FILE)
    sa = exp.sensitivity
    if sa is None:
        raise ConfigError(f"experiment {exp.name!r} has no [sensitivity] section")
    st = status(out, exp)
    mine = [r for r in exp.runs() if r.arm == sa.arm and r.run_id not in st.done]
    if mine:
        raise ConfigError(f"sensitivity of {exp.name!r}: {len(mine)} runs of arm {sa.arm!r} "
                          f"are not finished (first: {mine[0].run_id}); run the experiment again")
    df = load(out)
    df = df[df["arm"] == sa.arm]
    samples = exp.sensitivity_samples()
    keys = list(sa.parameters)
    Y = np.empty((len(samples), len(sa.readouts)))
    for j, readout in enumerate(sa.readouts):
        vals = values_at(df, readout, sa.day)
        means = {tuple(k if isinstance(k, tuple) else (k,)): v
                 for k, v in vals.groupby(keys)["value"].mean().items()}
        for i, smp in enumerate(samples):
            Y[i, j] = means[tuple(float(smp[k]) for k in keys)]
    return analyse(sa.problem(), sa.method, samples, Y, exp.seed,
                   calc_second_order=sa.second_order, num_levels=sa.num_levels)
