"""ILC2s: IL-2 responsive innate lymphoid cells that hold osteoclastogenesis back.

With their IL-2 signal ``IL2 / (IL2 + K)`` (CD25; Van Gool 2014) ILC2s divide. The IL-10
and CGRP programmes (seed 004: low-dose IL-2 promotes IL-10+ and CGRP+ ILC2s, required
for protection) answer a steep, high-threshold IL-2 signal ``x^h / (1 + x^h)``, ``x = IL2 /
program_il2_k_pM`` (:func:`program_signal`): the pulses of therapy switch them on within
hours, the endogenous marrow level hardly does, and they fade over days without IL-2.
All ILC2s make IL-4/IL-13 (Omata 2020). Parameters:
:class:`~niche.scenario.biology.ILC2Params`.
"""
from __future__ import annotations

import numpy as np

from ..core.cells import State
from .context import Ctx, add_rate, hill, occupancy

__all__ = ["decide", "rates", "program_signal"]


def program_signal(p, il2_pM: np.ndarray) -> np.ndarray:
    """The IL-2 signal of the IL-10 / CGRP programmes of ILC2s at ``il2_pM``: the Hill
    function ``x^h / (1 + x^h)`` of ``x = IL2 / program_il2_k_pM``, ``h =
    program_il2_hill``. ``p``: :class:`~niche.scenario.biology.ILC2Params`."""
    return hill(np.maximum(il2_pM, 0.0), p.program_il2_k_pM, p.program_il2_hill)


def decide(ctx: Ctx) -> None:
    p = ctx.P.ilc2
    s = ctx.slots("ilc2")
    if s.size == 0:
        return
    il2 = ctx.conc("IL2", s)
    sig = occupancy(il2, p.il2_k_pM)
    par = ctx.events(s, p.division_per_day * sig ** 2)
    ctx.divide(par, "ilc2", ctx.cells.state[par] & np.uint32(State.IL10_PRODUCER
                                                            | State.CGRP_PRODUCER))
    prog = program_signal(p, il2)
    for flag, rate, ko in ((State.IL10_PRODUCER, p.il10_induction_per_day, "ilc2_il10"),
                           (State.CGRP_PRODUCER, p.cgrp_induction_per_day, "ilc2_cgrp")):
        on = ctx.has(s, flag)
        if ko not in ctx.knockouts:
            ctx.set_flag(ctx.events(s[~on], rate * prog[~on]), flag)
        ctx.set_flag(ctx.events(s[on], p.program_loss_per_day * (1.0 - prog[on])), flag,
                     on=False)


def rates(ctx: Ctx, sec, vmax, idx) -> None:
    p = ctx.P.ilc2
    s = ctx.slots("ilc2")
    if s.size == 0:
        return
    st = ctx.cells.state[s]
    il10 = ((st & np.uint32(State.IL10_PRODUCER)) != 0) & ("ilc2_il10" not in ctx.knockouts)
    cgrp = ((st & np.uint32(State.CGRP_PRODUCER)) != 0) & ("ilc2_cgrp" not in ctx.knockouts)
    add_rate(sec, idx, "IL4", s, np.full(s.size, p.il4_molecules_per_s))
    add_rate(sec, idx, "IL10", s, np.where(il10, p.il10_molecules_per_s, 0.0))
    add_rate(sec, idx, "CGRP", s, np.where(cgrp, p.cgrp_molecules_per_s, 0.0))
    add_rate(vmax, idx, "IL2", s, np.full(s.size, p.il2_vmax_molecules_per_s))
