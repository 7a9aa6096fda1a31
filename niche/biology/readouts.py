"""Virtual readouts of the osteoimmune model, computed at every frame.

(micro-CT morphometry of the bone mask, BoneJ definitions, is the engine's own readout:
:meth:`niche.core.model.Model.readouts`; the surface area it measures is used here)

- histomorphometry on the 3D surface: Oc.S/BS and Ob.S/BS (share of bone-surface faces
  under an osteoclast footprint / an osteoblast), N.Oc/BS per mm^2 of surface, mineral
  apposition rate (formed volume per day per osteoblast face) and BFR/BS;
- virtual flow cytometry: counts and fractions of the cell states;
- serum-like turnover markers: resorbed and formed volume per day (from the engine);
- in culture wells: multinucleated osteoclasts and the resorbed (pit) area.
"""
from __future__ import annotations

import numpy as np

from ..core.cells import TYPE_CODES, State
from ..core import morphometry as mm

__all__ = ["biology_readouts", "OC_FOOTPRINT_VOX", "OB_FOOTPRINT_VOX"]

#: osteoclast footprint radius on the surface (voxels): 30-50 um sealing zone (biology.md)
OC_FOOTPRINT_VOX = 2
#: an osteoblast covers the faces of its own voxel (15-30 um cell on 10 um voxels)
OB_FOOTPRINT_VOX = 0


def _count(cells, code, flag=None, reg=None) -> tuple[np.ndarray, int]:
    s = cells.slots_of_type(code)
    st = cells.state[s]
    keep = np.ones(s.size, bool)
    if reg is not None:
        r = (st & np.uint32(State.REGULATORY)) != 0
        keep &= r if reg else ~r
    if flag is not None:
        keep &= (st & np.uint32(flag)) != 0
    return s[keep], int(keep.sum())


def biology_readouts(model) -> dict[str, float]:
    """The osteoimmune readouts of the current frame (the engine's own morphometry, counts
    and turnover come first; see :meth:`niche.core.model.Model.readouts`)."""
    lat, cells = model.lattice, model.cells
    out: dict[str, float] = {}
    iv = model.scenario.invitro
    bone = lat.bone
    vu = lat.voxel_um
    if "bs_um2" in model.morphometry:
        bs_um2 = model.morphometry["bs_um2"]
    else:
        bs_um2 = float(np.count_nonzero(mm.bone_surface_faces(bone))) * vu * vu
    # ---- histomorphometry
    oc = cells.slots_of_type(TYPE_CODES["osteoclast"])
    ob = cells.slots_of_type(TYPE_CODES["osteoblast"])

    def pos(s):
        return np.stack([cells.z[s], cells.y[s], cells.x[s]], axis=1).astype(np.int64)

    out["oc_s_bs"] = mm.surface_fraction_near(bone, pos(oc), OC_FOOTPRINT_VOX) if oc.size else 0.0
    out["ob_s_bs"] = mm.surface_fraction_near(bone, pos(ob), OB_FOOTPRINT_VOX) if ob.size else 0.0
    out["n_oc_per_bs_per_mm2"] = oc.size / (bs_um2 * 1e-6) if bs_um2 > 0 else float("nan")
    days = model.days_since_frame
    formed_um3_per_day = model.formed_since_frame * lat.voxel_volume_um3 / days if model.tick else 0.0
    ob_faces_um2 = out["ob_s_bs"] * bs_um2
    out["mar_um_per_day"] = formed_um3_per_day / ob_faces_um2 if ob_faces_um2 > 0 else 0.0
    out["bfr_bs_um_per_day"] = formed_um3_per_day / bs_um2 if bs_um2 > 0 else 0.0
    # ---- flow cytometry
    tc = TYPE_CODES["tcell"]
    n_t = cells.slots_of_type(tc).size
    _, n_treg = _count(cells, tc, reg=True)
    _, out["n_treg_cxcr3"] = _count(cells, tc, State.CXCR3, reg=True)
    tnf_s, n_tnf = _count(cells, tc, State.TNF_PRODUCER, reg=False)
    out["n_tnf_tcell"] = n_tnf
    _, out["n_th17"] = _count(cells, tc, State.IL17_PRODUCER, reg=False)
    _, out["n_wnt10b_tcell"] = _count(cells, tc, State.WNT10B_PRODUCER, reg=False)
    _, n_cd8 = _count(cells, tc, State.CD8, reg=False)
    out["n_cd8_tcell"] = n_cd8
    out["treg_frac_cd4"] = n_treg / (n_t - n_cd8) if n_t > n_cd8 else 0.0
    if n_tnf and "TNF" in model.field_names:
        j = model.field_index("TNF")
        out["tnf_per_producer_molecules_per_s"] = float(
            cells.secretion[tnf_s, j].mean() / model.molecules_to_pM)
    else:
        out["tnf_per_producer_molecules_per_s"] = float("nan")
    ic = TYPE_CODES["ilc2"]
    _, out["n_ilc2_il10"] = _count(cells, ic, State.IL10_PRODUCER)
    _, out["n_ilc2_cgrp"] = _count(cells, ic, State.CGRP_PRODUCER)
    mc = TYPE_CODES["monocyte"]
    _, out["n_preoc"] = _count(cells, mc, State.PRE_OSTEOCLAST)
    _, out["n_monocyte_ifn"] = _count(cells, mc, State.IFN_PROGRAM)
    nuc = cells.nuclei[oc]
    thr = model.scenario.biology.osteoclast.min_nuclei_multinucleated
    out["n_oc_multinuc"] = int(np.count_nonzero(nuc >= thr))
    out["mean_oc_nuclei"] = float(nuc.mean()) if oc.size else 0.0
    _, out["n_oc_resorbing"] = _count(cells, TYPE_CODES["osteoclast"], State.RESORBING)
    if iv is not None:  # pit area: slice columns that lost bone
        lost = model.initial_bone.sum(axis=0) > bone.sum(axis=0)
        out["resorbed_area_um2"] = float(np.count_nonzero(lost)) * vu * vu
        out["resorbed_area_frac"] = float(lost.mean())
    return {k: float(v) for k, v in out.items()}
