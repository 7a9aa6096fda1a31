"""Monocytes: osteoclast precursors that commit under M-CSF and RANKL.

A monocyte touching bone (where osteoblasts and osteocytes present RANKL) commits to the
osteoclast lineage (``PRE_OSTEOCLAST``) at ``commitment_per_day * drive``::

    drive = M-CSF * R * (1 + TNF and IL-17 potentiation) * inhibition
    R     = free RANKL / (free RANKL + K),
    free RANKL = (soluble RANKL + membrane RANKL of the bone surface)
                 / (1 + OPG / K_opg [+ anti-RANKL antibody / K_d, when given])
    inhibition = 1/(1 + (SCFA/K)^h) * 1/(1 + IL10/K) * 1/(1 + CGRP/K) * 1/(1 + IL4/K)
                 * (1 - block of the IL-2 interferon programme, if on)
                 * (1 - CTLA-4 block, while touching a Treg)

(monocytes without RANK, i.e. freshly isolated culture cells
before ``invitro.rank_priming_days`` under M-CSF, have R = 0) and becomes fusion competent
``maturation_days`` later (its ``committed_days`` count them). SCFAs lower the
TRAF6/NFATc1 drive by metabolic reprogramming (Lucas 2018); IL-10 blocks NFATc1 early
(Evans & Fox 2007); CGRP and IL-4/IL-13 suppress (seed 004, Omata 2020). IL-2 switches
RANKL-stimulated monocytes, uncommitted or committed, into a STAT1-IRF1 interferon
programme (seed 004) at ``ifn_induction_per_day x il2_signal x R``, where the IL-2 signal
is a steep Hill function (``il2_hill``), so endogenous marrow IL-2 barely triggers it and
therapeutic pulses do; the programme blocks commitment (``ifn_inhibition``) and the fusion
of committed precursors (``ifn_fusion_inhibition``). Committed precursors fuse with
touching precursors or osteoclasts (see :mod:`.osteoclast`), die if they stay unfused,
and are killed by Treg contact (CTLA-4, Zaiss 2007). Monocytes in the interferon programme
secrete CXCL10 (a STAT1/IRF1 target), which CXCR3+ Tregs follow (see :mod:`.rules`).
Parameters: :class:`~niche.scenario.biology.MonocyteParams`.
"""
from __future__ import annotations

import numpy as np

from ..core.cells import State
from ..kernels.fusion import touches_bone
from . import osteoblast
from .context import Ctx, add_rate, hill, occupancy

__all__ = ["decide", "commitment_drive", "il2_signal", "rank_expressed", "rankl_signal",
           "rates"]


def rankl_signal(ctx: Ctx, s: np.ndarray, on_bone: np.ndarray) -> np.ndarray:
    """RANK occupancy of cells ``s``: soluble RANKL plus the membrane RANKL of the bone
    surface for cells touching bone, with OPG, and an anti-RANKL antibody when given, as
    decoys: ``free = RANKL / (1 + OPG / opg_k_pM + drug / kd_pM)``."""
    p = ctx.P.monocyte
    rankl = ctx.conc("RANKL", s) + osteoblast.surface_rankl_pM(ctx, s, on_bone)
    drug = ctx.host.anti_rankl_marrow_pM
    if drug > 0.0:  # an anti-RANKL antibody: a second decoy (niche.scenario.therapy)
        decoy = drug / ctx.model.scenario.anti_rankl.kd_pM
        free = rankl / (1.0 + ctx.conc("OPG", s) / p.opg_k_pM + decoy)
    else:
        free = rankl / (1.0 + ctx.conc("OPG", s) / p.opg_k_pM)
    return occupancy(free, p.rankl_k_pM)


def rank_expressed(ctx: Ctx, s: np.ndarray) -> np.ndarray:
    """1.0 for monocytes ``s`` that express RANK, else 0.0. Marrow precursors do: the
    precursors that enter the marrow from blood are already RANK+ (Muto 2011 JBMR
    10.1002/jbmr.490; Mizoguchi 2009 J Cell Biol 10.1083/jcb.200807010). Freshly
    isolated cells of a culture well need ``invitro.rank_priming_days`` under M-CSF first
    (M-CSF induces RANK on c-Fms+ precursors: Arai 1999 J Exp Med 10.1084/jem.190.12.1741),
    counted by their age in the well."""
    iv = ctx.model.scenario.invitro
    if iv is None or iv.rank_priming_days <= 0.0:
        return np.ones(s.size)
    return (ctx.cells.age_days[s] >= iv.rank_priming_days).astype(np.float64)


def il2_signal(ctx: Ctx, s: np.ndarray) -> np.ndarray:
    """IL-2 signal of monocytes ``s`` for the interferon programme: the Hill function
    ``x^h / (1 + x^h)`` of ``x = IL2 / il2_k_pM``."""
    p = ctx.P.monocyte
    return hill(ctx.conc("IL2", s), p.il2_k_pM, p.il2_hill)


def commitment_drive(ctx: Ctx, s: np.ndarray, mcsf: float,
                     on_bone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The commitment drive of monocytes ``s`` (dimensionless, 1 = full RANKL + M-CSF) and
    their RANKL occupancy."""
    p = ctx.P.monocyte
    c = ctx.conc
    r = rankl_signal(ctx, s, on_bone) * rank_expressed(ctx, s)
    pot = (1.0 + p.tnf_gain * occupancy(c("TNF", s), p.tnf_k_pM)
           + p.il17_gain * occupancy(c("IL17", s), p.il17_k_pM))
    inh = (1.0 / (1.0 + (c("SCFA", s) / p.scfa_k_pM) ** p.scfa_hill)
           / (1.0 + c("IL10", s) / p.il10_k_pM)
           / (1.0 + c("CGRP", s) / p.cgrp_k_pM) / (1.0 + c("IL4", s) / p.il4_k_pM))
    ifn = ctx.has(s, State.IFN_PROGRAM)
    inh = np.where(ifn, inh * (1.0 - p.ifn_inhibition), inh)
    if "treg_contact" not in ctx.knockouts:
        touch = ctx.treg_contacts(s) > 0
        inh = np.where(touch, inh * (1.0 - p.treg_contact_inhibition), inh)
    return mcsf * r * pot * inh, r


def decide(ctx: Ctx, mcsf: float) -> None:
    p = ctx.P.monocyte
    s = ctx.slots("monocyte")
    if s.size == 0:
        return
    pre = ctx.has(s, State.PRE_OSTEOCLAST)
    pres, mono = s[pre], s[~pre]
    # committed precursors: die unfused, or by Treg contact
    kill = p.treg_contact_kill_per_day * (ctx.treg_contacts(pres) > 0) * (
        "treg_contact" not in ctx.knockouts)
    ctx.model.changes.die(ctx.events(pres, 1.0 / p.preoc_lifespan_days + kill))
    c = ctx.cells
    on_bone = touches_bone(s, c.z, c.y, c.x, ctx.model.lattice.bone,
                           np.zeros(s.size, np.uint8)).astype(bool)
    # IL-2 interferon programme of RANKL-stimulated cells, uncommitted or committed
    if "monocyte_il2_stat1" not in ctx.knockouts:
        ifn = ctx.has(s, State.IFN_PROGRAM)
        il2 = il2_signal(ctx, s)
        sig = il2 * rankl_signal(ctx, s, on_bone) * rank_expressed(ctx, s)
        ctx.set_flag(ctx.events(s[~ifn], p.ifn_induction_per_day * sig[~ifn]),
                     State.IFN_PROGRAM)
        ctx.set_flag(ctx.events(s[ifn], p.ifn_loss_per_day * (1.0 - il2[ifn])),
                     State.IFN_PROGRAM, on=False)
    c.committed_days[pres] += np.float32(ctx.dt)   # committed precursors count days
    mono_on_bone = on_bone[~pre]
    if mono.size == 0:
        return
    drive, _ = commitment_drive(ctx, mono, mcsf, mono_on_bone)
    # commitment: precursors touching bone (where RANKL is presented) commit at a rate set
    # by the drive; committed cells count days in ``committed_days`` until fusion competent
    done = ctx.events(mono[mono_on_bone], p.commitment_per_day * drive[mono_on_bone])
    c.committed_days[done] = 0.0
    ctx.set_flag(done, State.PRE_OSTEOCLAST)


def rates(ctx: Ctx, sec, vmax, idx) -> None:
    """CXCL10 from monocytes in the IL-2 interferon programme (molecules/s)."""
    s = ctx.slots("monocyte")
    if s.size == 0:
        return
    ifn = ctx.has(s, State.IFN_PROGRAM)
    add_rate(sec, idx, "CXCL10", s[ifn], ctx.P.monocyte.cxcl10_molecules_per_s)
