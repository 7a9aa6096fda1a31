"""Osteoblasts: recruited to bone surfaces, form bone, make RANKL and OPG.

- **Recruitment** (births) onto free marrow voxels touching bone at
  ``recruit_per_mm2_per_day`` per mm^2 of bone face, raised by TGF-beta released by
  resorption (coupling; Tang 2009), by Wnt10b from Treg-driven T cells (Tyagi 2018), by
  CGRP from ILC2s (anabolic: Ballica 1999, Schinke 2004) and by estrogen loss itself
  (``estrogen_loss_recruit_gain``; Jilka 1998),
  and scaled by the **mechanostat**: the habitual load is carried by less bone when
  BV/TV falls, so the apparent strain rises as (BV/TV_0 / BV/TV)^2 (trabecular modulus
  ~ density^2, Gibson 1985), osteocytes release less sclerostin and recruit more
  osteoblasts (Frost 1987; Robling 2008; Huiskes 2000). BV/TV_0 is the structure the
  adult animal is adapted to, the bone at day 0. The same strain signal lowers osteocyte
  membrane RANKL (unloading raises it: Xiong 2011), the fast arm of the mechanostat.
- **Formation** at the mineral apposition rate ``apposition_um_per_day``
  (``[cells.osteoblast]``) over one voxel face.
- **RANKL and OPG**: osteoblast-lineage RANKL falls with estrogen and rises with TNF and
  IL-17 (Cenci 2000, Li 2016); OPG rises with estrogen (Hofbauer 1999). Most RANKL is
  membrane-bound on osteocytes and lining cells and presented to cells touching bone
  (``surface_rankl_pM``; Nakashima 2011, Xiong 2011, Fujiwara 2016); osteoblasts secrete
  some soluble RANKL and most of the OPG, so more osteoblasts mean less free RANKL
  (the osteoblast-to-osteoclast inhibition of Komarova 2003).
- **Survival**: Wnt10b lowers the death rate below ``1/lifespan`` (Almeida 2005).
- **Intermittent PTH** (``[pth]``, :mod:`niche.scenario.therapy`): while a pulse occupies
  PTH1R, recruitment rises by ``1 + recruit_gain * signal`` and the death rate falls by
  ``1 + survival_gain * signal`` (Jilka 1999; Li 2020).
Lifespan and motility come from ``[cells.osteoblast]``.
Parameters: :class:`~niche.scenario.biology.OsteoblastParams`.
"""
from __future__ import annotations

import numpy as np

from ..core.cells import TYPE_CODES
from ..core.generic_rules import formation_um3
from ..core.lattice import face_neighbour_any
from ..scenario.therapy import pth_recruit_factor, pth_survival_factor
from .context import Ctx, add_rate, hazard, occupancy

__all__ = ["recruit", "recruit_signal", "rates", "mechanostat", "apparent_strain",
           "surface_rankl_pM", "death_rate", "estrogen_recruit_factor"]

_OB = TYPE_CODES["osteoblast"]


def apparent_strain(ctx: Ctx) -> float:
    """Apparent strain relative to the adapted one, (BV/TV_0 / BV/TV) ** 2 at constant load
    (trabecular modulus ~ density^2, Gibson 1985; 1 at day 0, capped at 100)."""
    m = ctx.model
    bv0 = float(np.count_nonzero(m.initial_bone))
    if bv0 == 0.0:
        return 1.0
    bv = float(np.count_nonzero(m.lattice.bone))
    return min((bv0 / max(bv, 1.0)) ** 2, 100.0)  # capped: a near-empty domain


def mechanostat(ctx: Ctx) -> float:
    """Recruitment factor of the mechanostat: (apparent strain / adapted strain) ** n."""
    n = ctx.P.osteoblast.mechanostat_exponent
    return 1.0 if n == 0.0 else float(apparent_strain(ctx) ** n)


def estrogen_recruit_factor(ctx: Ctx) -> float:
    """Recruitment factor ``1 + gain * (1 - estrogen)``: estrogen loss raises
    osteoblastogenesis independently of resorption (Jilka 1998)."""
    return 1.0 + ctx.P.osteoblast.estrogen_loss_recruit_gain * (1.0 - ctx.host.estrogen)


def recruit_signal(p, tgfb_pM, wnt10b_pM, cgrp_pM) -> np.ndarray:
    """Relative recruitment at local TGF-beta, Wnt10b and CGRP levels: 1 plus a saturating
    term for each (coupling, Tang 2009; Treg-driven Wnt10b, Tyagi 2018; CGRP from ILC2s,
    Ballica 1999, Schinke 2004). ``p``: :class:`~niche.scenario.biology.OsteoblastParams`."""
    return (1.0 + p.tgfb_recruit_gain * occupancy(tgfb_pM, p.tgfb_k_pM)
            + p.wnt10b_recruit_gain * occupancy(wnt10b_pM, p.wnt10b_k_pM)
            + p.cgrp_recruit_gain * occupancy(cgrp_pM, p.cgrp_k_pM))


def recruit(ctx: Ctx) -> None:
    p, m = ctx.P.osteoblast, ctx.model
    lat = m.lattice
    near = face_neighbour_any(lat.bone).ravel()
    free = near & (m.wall.ravel() == 0) & (m.cells.occ.ravel() == 0)
    cand = np.flatnonzero(free)
    if cand.size == 0:
        return
    z, y, x = np.unravel_index(cand, lat.shape)

    def at(name):
        if name not in m.field_names:
            return np.zeros(cand.size)
        return m.fields.c[m.field_index(name)][z, y, x].astype(np.float64)

    face_mm2 = (lat.voxel_um * 1e-3) ** 2
    base = p.recruit_per_mm2_per_day * face_mm2 * mechanostat(ctx) * estrogen_recruit_factor(ctx)
    pth = ctx.host.pth_serum_pM
    if pth > 0.0:  # an intermittent PTH pulse (niche.scenario.therapy)
        base = base * pth_recruit_factor(m.scenario.pth, pth)
    rate = base * recruit_signal(p, at("TGFb"), at("WNT10B"), at("CGRP"))
    hit = ctx.rng.random(cand.size) < hazard(rate, ctx.dt)
    if hit.any():
        m.changes.birth_at(_OB, z[hit], y[hit], x[hit])


def death_rate(ctx: Ctx, s: np.ndarray, lifespan_days: float) -> np.ndarray:
    """Death rate (1/day) of osteoblasts ``s``: ``1/lifespan`` lowered by Wnt10b, which
    prevents osteoblast apoptosis (Almeida 2005; Bennett 2005), and during a PTH pulse by
    ``1 + survival_gain * signal`` (Jilka 1999; ``[pth]``)."""
    p = ctx.P.osteoblast
    w = occupancy(ctx.conc("WNT10B", s), p.wnt10b_k_pM)
    rate = (1.0 / lifespan_days) / (1.0 + p.wnt10b_survival_gain * w)
    pth = ctx.host.pth_serum_pM
    if pth > 0.0:  # PTH pulses prevent osteoblast apoptosis (Jilka 1999)
        rate = rate / pth_survival_factor(ctx.model.scenario.pth, pth)
    return rate


def _lineage_rankl(ctx: Ctx, s: np.ndarray) -> np.ndarray:
    """Relative RANKL expression of osteoblast-lineage cells near cells ``s``: 1 at intact
    estrogen without TNF/IL-17; 1 / (1 - suppression) without estrogen (Eghbali-Fatourechi
    2003), raised by TNF and IL-17 (Cenci 2000, Li 2016); 0 when knocked out."""
    p = ctx.P.osteoblast
    if "osteoblast_rankl" in ctx.knockouts:
        return np.zeros(s.size)
    sup = p.estrogen_rankl_suppression
    f = (1.0 - sup * ctx.host.estrogen) / max(1.0 - sup, 1e-6)
    return f * (1.0 + p.tnf_rankl_gain * occupancy(ctx.conc("TNF", s), p.tnf_k_pM)
                + p.il17_rankl_gain * occupancy(ctx.conc("IL17", s), p.il17_k_pM))


def surface_rankl_pM(ctx: Ctx, s: np.ndarray, on_bone: np.ndarray) -> np.ndarray:
    """Membrane RANKL that osteocytes and lining cells present to cells ``s`` touching bone
    (``on_bone``); none in culture wells (devitalised bone slices)."""
    if ctx.model.scenario.invitro is not None:
        return np.zeros(s.size)
    p = ctx.P.osteoblast
    mech = 1.0 if p.mechanostat_rankl_exponent == 0.0 else (
        apparent_strain(ctx) ** -p.mechanostat_rankl_exponent)
    return np.where(on_bone, p.surface_rankl_pM * mech * _lineage_rankl(ctx, s), 0.0)


def rates(ctx: Ctx, sec, vmax, idx) -> None:
    p = ctx.P.osteoblast
    s = ctx.slots("osteoblast")
    if s.size == 0:
        return
    e = ctx.host.estrogen
    opg = p.opg_molecules_per_s * (1.0 - p.estrogen_opg_gain * (1.0 - e))
    add_rate(sec, idx, "RANKL", s, p.rankl_molecules_per_s * _lineage_rankl(ctx, s))
    add_rate(sec, idx, "OPG", s, np.full(s.size, opg))


def formation(model, dt_days: float) -> tuple[np.ndarray, np.ndarray]:
    """Osteoblasts and the bone (um^3) each forms in ``dt_days`` (``apposition_um_per_day``
    over one voxel face)."""
    ob = model.cells.slots_of_type(TYPE_CODES["osteoblast"])
    return ob, formation_um3(model, ob, dt_days)
