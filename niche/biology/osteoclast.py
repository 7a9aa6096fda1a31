"""Osteoclasts: multinucleated resorbing cells.

- **Fusion**: a committed precursor fuses with a touching osteoclast (nuclei + 1, up to
  ``max_nuclei``) or with a touching precursor (a new 2-nucleus osteoclast), at
  ``fusion_per_day`` (less ``ifn_fusion_inhibition`` in the IL-2 interferon programme);
  pairs are made by the :func:`~niche.kernels.fusion.pair_fusions` kernel in a random order.
- **States**: on bone, a moving osteoclast switches to resorbing at a rate set by its RANKL
  signal (Kikuta 2013), and back to moving at ``release_per_day`` or when no bone is left
  beside it; a touching Treg (CTLA-4) makes bouts rarer and shorter by
  ``1 - treg_contact_block`` (Luo 2011; Zaiss 2007). Resorbing cells do not move; they
  resorb ``resorption_um3_per_day_per_nucleus`` x nuclei (``[cells.osteoclast]``) within a
  footprint that grows with size, and release matrix TGF-beta in proportion to their nuclei.
- **Apoptosis** at ``apoptosis_per_day * (1 + gain * estrogen) * (1 + TGF-beta term)``:
  estrogen favours osteoclast apoptosis (Nakamura 2007), so it lengthens their life after
  OVX; TGF-beta released by resorption induces it (Hughes 1996; the negative feedback of
  the Lemaire 2004 / Pivonka 2008 models), so resorption limits itself. A bisphosphonate
  bound to the mineral (``[bisphosphonate]``, :mod:`niche.scenario.therapy`) adds
  ``max_apoptosis_per_day * B / (B + K)`` for resorbing cells only: they take the drug up
  from the bone they dissolve (Rogers 2011; Vegger 2018).
- **Nuclear turnover**: each nucleus leaves at ``nucleus_loss_per_day`` (fission into
  osteomorphs, McDonald 2021; nuclei renewed by fusion, Jacome-Galarza 2019), so the size
  of a long-lived syncytium, and its resorption, follows the supply of new precursors; a
  cell left with one nucleus is gone.
Parameters: :class:`~niche.scenario.biology.OsteoclastParams`.
"""
from __future__ import annotations

import numpy as np

from ..core.cells import TYPE_CODES, State
from ..core.generic_rules import resorption_um3
from ..kernels.fusion import pair_fusions, touches_bone
from ..scenario.therapy import bisphosphonate_apoptosis_per_day
from .context import Ctx, add_rate, hazard, occupancy
from .monocyte import rankl_signal

__all__ = ["fuse", "fusion_rate", "decide", "bout_rates", "rates", "apoptosis_rate",
           "shed_nuclei"]

_OC = TYPE_CODES["osteoclast"]
_MONO = TYPE_CODES["monocyte"]


def fusion_rate(ctx: Ctx, pre: np.ndarray) -> np.ndarray:
    """Fusion rate (1/day) of fusion-competent precursors ``pre``, lowered by
    ``ifn_fusion_inhibition`` in the IL-2 interferon programme."""
    p = ctx.P.monocyte
    return p.fusion_per_day * np.where(ctx.has(pre, State.IFN_PROGRAM),
                                       1.0 - p.ifn_fusion_inhibition, 1.0)


def fuse(ctx: Ctx) -> None:
    p, c = ctx.P, ctx.cells
    mono = ctx.slots("monocyte")
    pre = mono[ctx.has(mono, State.PRE_OSTEOCLAST)]
    pre = pre[c.committed_days[pre] >= p.monocyte.maturation_days]  # fusion competent
    if pre.size == 0:
        return
    cand = pre[ctx.rng.random(pre.size) < hazard(fusion_rate(ctx, pre), ctx.dt)]
    if cand.size == 0:
        return
    cand = cand[ctx.rng.permutation(cand.size)]
    role = np.zeros(c.capacity, np.int8)
    role[pre] = 1
    role[ctx.slots("osteoclast")] = 2
    nuc = c.nuclei.astype(np.int64)
    absorbed = np.empty(cand.size, np.int64)
    into = np.empty(cand.size, np.int64)
    n = pair_fusions(cand, c.z, c.y, c.x, c.occ, role, p.osteoclast.max_nuclei, nuc,
                     absorbed, into)
    if n == 0:
        return
    absorbed, into = absorbed[:n], into[:n]
    ctx.model.changes.fuse(absorbed, into)
    new_oc = into[c.type[into] == _MONO]
    if new_oc.size:
        ctx.model.changes.differentiate(new_oc, _OC, new_state=0)


def apoptosis_rate(ctx: Ctx, s: np.ndarray) -> np.ndarray:
    """Apoptosis rate (1/day) of osteoclasts ``s``: raised by estrogen and by TGF-beta, and,
    for resorbing cells on bisphosphonate-laden bone, by the drug they take up."""
    p = ctx.P.osteoclast
    rate = (p.apoptosis_per_day * (1.0 + p.estrogen_apoptosis_gain * ctx.host.estrogen)
            * (1.0 + p.tgfb_apoptosis_gain * occupancy(ctx.conc("TGFb", s), p.tgfb_k_pM)))
    bound = ctx.host.bisphosphonate_bound_ug_per_kg
    if bound > 0.0:
        extra = bisphosphonate_apoptosis_per_day(ctx.model.scenario.bisphosphonate, bound)
        rate = rate + np.where(ctx.has(s, State.RESORBING), extra, 0.0)
    return rate


def shed_nuclei(ctx: Ctx, s: np.ndarray) -> None:
    """Nuclear turnover: each nucleus of osteoclasts ``s`` leaves at ``nucleus_loss_per_day``
    (a binomial draw per cell); a cell left with fewer than two nuclei is gone."""
    k = ctx.P.osteoclast.nucleus_loss_per_day
    if k <= 0.0 or s.size == 0:
        return
    c = ctx.cells
    nuc = c.nuclei[s].astype(np.int64)
    left = nuc - ctx.rng.binomial(nuc, hazard(k, ctx.dt))
    ctx.model.changes.die(s[left < 2])
    keep = left >= 2
    c.nuclei[s[keep]] = left[keep].astype(c.nuclei.dtype)


def bout_rates(ctx: Ctx, s: np.ndarray, on_bone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rates (1/day) at which osteoclasts ``s`` start and end resorption bouts.

    A bout starts at ``resorb_switch_per_day`` x RANK occupancy and ends at
    ``release_per_day``; a touching Treg (CTLA-4) scales the start by ``1 - block`` and
    divides the end by it (fewer, shorter bouts)."""
    p = ctx.P.osteoclast
    free = np.ones(s.size)
    if "treg_contact" not in ctx.knockouts and p.treg_contact_block > 0.0:
        free = np.where(ctx.treg_contacts(s) > 0, 1.0 - p.treg_contact_block, 1.0)
    start = p.resorb_switch_per_day * rankl_signal(ctx, s, on_bone) * free
    return start, p.release_per_day / free


def decide(ctx: Ctx) -> None:
    s = ctx.slots("osteoclast")
    if s.size == 0:
        return
    ctx.model.changes.die(ctx.events(s, apoptosis_rate(ctx, s)))
    c = ctx.cells
    shed_nuclei(ctx, s)
    on_bone = touches_bone(s, c.z, c.y, c.x, ctx.model.lattice.bone,
                           np.zeros(s.size, np.uint8)).astype(bool)
    res = ctx.has(s, State.RESORBING)
    start_rate, end_rate = bout_rates(ctx, s, on_bone)
    start = ~res & on_bone
    ctx.set_flag(ctx.events(s[start], start_rate[start]), State.RESORBING)
    ctx.set_flag(s[res & ~on_bone], State.RESORBING, on=False)
    keep = res & on_bone
    ctx.set_flag(ctx.events(s[keep], end_rate[keep]), State.RESORBING, on=False)


def rates(ctx: Ctx, sec, vmax, idx) -> None:
    p = ctx.P.osteoclast
    s = ctx.slots("osteoclast")
    if s.size == 0:
        return
    res = ctx.has(s, State.RESORBING)
    add_rate(sec, idx, "TGFb", s, np.where(res, p.tgfb_molecules_per_s_per_nucleus, 0.0)
         * ctx.cells.nuclei[s])


def adjust_motility(model, motility) -> None:
    """Osteoclasts on bone stay attached (they resorb or wait there; Kikuta 2013); only
    those off bone migrate (up the RANKL gradient) to find a surface."""
    c = model.cells
    s = c.slots_of_type(TYPE_CODES["osteoclast"])
    if s.size:
        on = touches_bone(s, c.z, c.y, c.x, model.lattice.bone, np.zeros(s.size, np.uint8))
        motility.hold(s[on.astype(bool)])


def resorption(model, dt_days: float) -> tuple[np.ndarray, np.ndarray]:
    """Resorbing osteoclasts and the bone (um^3) each removes in ``dt_days``
    (``resorption_um3_per_day_per_nucleus`` x nuclei)."""
    oc = model.cells.slots_of_type(TYPE_CODES["osteoclast"])
    oc = oc[(model.cells.state[oc] & np.uint32(State.RESORBING)) != 0]
    return oc, resorption_um3(model, oc, dt_days)
