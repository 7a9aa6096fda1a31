"""Osteoblasts: recruited to bone surfaces, form bone, make RANKL and OPG.

- **Recruitment** (births) onto free marrow voxels touching bone at
  ``recruit_per_mm2_per_day`` per mm^2 of bone face, raised by TGF-beta released by
  resorption (coupling; Tang 2009) and by Wnt10b from Treg-driven T cells (Tyagi 2018).
- **Formation** at the mineral apposition rate ``apposition_um_per_day``
  (``[cells.osteoblast]``) over one voxel face.
- **RANKL and OPG**: RANKL falls with estrogen and rises with TNF and IL-17 (Cenci 2000,
  Li 2016); OPG rises with estrogen (Hofbauer 1999).
Lifespan and motility come from ``[cells.osteoblast]``.
Parameters: :class:`~niche.biology.params.OsteoblastParams`.
"""
from __future__ import annotations

import numpy as np

from ..cells import TYPE_CODES
from ..lattice import face_neighbour_any
from .context import Ctx, add_rate, hazard, occupancy

__all__ = ["recruit", "rates"]

_OB = TYPE_CODES["osteoblast"]


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
    rate = p.recruit_per_mm2_per_day * face_mm2 * (
        1.0 + p.tgfb_recruit_gain * occupancy(at("TGFb"), p.tgfb_k_pM)
        + p.wnt10b_recruit_gain * occupancy(at("WNT10B"), p.wnt10b_k_pM))
    hit = ctx.rng.random(cand.size) < hazard(rate, ctx.dt)
    if hit.any():
        m.changes.birth_at(_OB, z[hit], y[hit], x[hit])


def rates(ctx: Ctx, sec, vmax, idx) -> None:
    p = ctx.P.osteoblast
    s = ctx.slots("osteoblast")
    if s.size == 0:
        return
    e = ctx.host.estrogen
    # at intact estrogen (e = 1) RANKL is rankl_molecules_per_s; without it, 1 / (1 - s) x
    sup = p.estrogen_rankl_suppression
    rankl = p.rankl_molecules_per_s * (1.0 - sup * e) / max(1.0 - sup, 1e-6)
    rankl = rankl * (1.0 + p.tnf_rankl_gain * occupancy(ctx.conc("TNF", s), p.tnf_k_pM)
                     + p.il17_rankl_gain * occupancy(ctx.conc("IL17", s), p.il17_k_pM))
    if "osteoblast_rankl" in ctx.knockouts:
        rankl = np.zeros(s.size)
    opg = p.opg_molecules_per_s * (1.0 - p.estrogen_opg_gain * (1.0 - e))
    add_rate(sec, idx, "RANKL", s, rankl)
    add_rate(sec, idx, "OPG", s, np.full(s.size, opg))
