"""T cells: effector CD4 (TNF+ / IL-17+) and regulatory T cells (Tregs).

What they sense and do (parameters: :class:`~niche.scenario.biology.TCellParams`):

- **Entry** at vessels. Effector entry rises with the gut Th17 priming drive (Li 2016),
  and the TNF+ / IL-17+ fractions of entering effectors rise with it (Roggia 2001: more
  TNF+ T cells after OVX, the same TNF per cell). The Treg share of entry depends on
  estrogen (Polanczyk 2004) and on blood butyrate (Tyagi 2018); Treg entry scales with
  the systemic Treg pool that IL-2 therapy expands (``niche.scenario.host.il2_treg_pool_fold``).
- **Tregs** consume IL-2 through saturable high-affinity receptors (Thurley 2015) and,
  with their IL-2 signal ``IL2 / (IL2 + K_treg)``, divide (faster with estrogen,
  Polanczyk 2004) and acquire CXCR3 (seed 004);
  they secrete IL-10 and TGF-beta and suppress precursors they touch (see monocyte).
- **CD8 T cells** are a fixed share (``cd8_fraction``) of entering T cells: the Treg share
  (Tregs are CD4) and the Th17 priming drive change CD4 entry only.
- **Butyrate** in the marrow converts CD4 effectors into Tregs (peripheral induction).
- **Wnt10b**: a CD8 T cell starts to make Wnt10b at a rate proportional to the
  number of Tregs it touches and stops at a constant rate (CD8 T cells driven by Tregs,
  Tyagi 2018), so Wnt10b follows marrow Treg density; it recruits osteoblasts and keeps
  them alive.
"""
from __future__ import annotations

import numpy as np

from ..core.cells import TYPE_CODES, State
from .context import Ctx, add_rate, occupancy

__all__ = ["influx", "decide", "rates", "treg_division_rate", "butyrate_signal"]

_TC = TYPE_CODES["tcell"]


def treg_fraction(ctx: Ctx, butyrate_pM: float) -> float:
    p = ctx.P.tcell
    d = p.treg_estrogen_dependence
    f = p.treg_fraction * ((1.0 - d) + d * ctx.host.estrogen)
    f *= 1.0 + p.treg_butyrate_gain * butyrate_signal(p, butyrate_pM)
    return float(min(f, 0.95))


def butyrate_signal(p, butyrate_pM):
    """Butyrate's signal on Tregs, ``b^h / (b^h + K^h)`` (``butyrate_k_pM``,
    ``butyrate_treg_hill``): the HDAC-inhibition that stabilises Foxp3 and induces Tregs
    (Furusawa 2013, Arpaia 2013). ``p``: :class:`~niche.scenario.biology.TCellParams`."""
    b = np.maximum(butyrate_pM, 0.0) / p.butyrate_k_pM
    bh = b ** p.butyrate_treg_hill
    return bh / (1.0 + bh)


def cd8_share(cd8_fraction: float, f_reg: float) -> float:
    """Share of non-regulatory T cells that are CD8+ when CD8 cells are ``cd8_fraction``
    of all T cells and ``f_reg`` of them are Tregs (Tregs are CD4): the day-0 marrow."""
    return float(min(1.0, cd8_fraction / max(1.0 - f_reg, 1e-9)))


def influx(ctx: Ctx, base_per_day: float, blocked: set[str]) -> None:
    """Queue the T cells entering at vessels during this step."""
    p, m = ctx.P.tcell, ctx.model
    prime = ctx.host.th17_priming
    but_blood = ctx.scfa_blood_pM * ctx.host.butyrate_fraction
    f_reg = treg_fraction(ctx, but_blood)
    lam = base_per_day * m.lattice.volume_mm3 * ctx.dt
    n_reg = 0 if "treg" in blocked else ctx.rng.poisson(lam * f_reg * ctx.host.treg_pool_fold)
    n_cd4 = n_cd8 = 0
    if "effector_tcell" not in blocked:
        # CD8: a fixed share of entry; CD4 effectors: the rest, expanded by Th17 priming
        f8 = min(p.cd8_fraction, 1.0 - f_reg)
        n_cd8 = ctx.rng.poisson(lam * f8)
        n_cd4 = ctx.rng.poisson(lam * (1.0 - f_reg - f8)
                                * max(0.0, 1.0 + p.priming_influx_gain * (prime - 1.0)))
    n_eff = n_cd4 + n_cd8
    if n_reg:
        m.changes.birth_random(_TC, n_reg, state=np.full(n_reg, State.REGULATORY, np.uint32),
                               at_vessels=True)
    if n_eff:
        f_tnf = min(0.9, p.tnf_fraction * prime)
        f_17 = min(0.9, p.th17_fraction * prime)
        u = ctx.rng.random((2, n_eff))
        st = (np.where(u[0] < f_tnf, np.uint32(State.TNF_PRODUCER), np.uint32(0))
              | np.where(u[1] < f_17, np.uint32(State.IL17_PRODUCER), np.uint32(0)))
        st[n_cd4:] |= np.uint32(State.CD8)
        m.changes.birth_random(_TC, n_eff, state=st.astype(np.uint32), at_vessels=True)


def treg_division_rate(ctx: Ctx, sig: np.ndarray) -> np.ndarray:
    """Treg division rate (1/day) at IL-2 signal ``sig``: ``rate * sig^2``, scaled by
    estrogen (``(1 - d) + d * estrogen``; estrogen expands the Treg compartment,
    Polanczyk 2004)."""
    p = ctx.P.tcell
    d = p.treg_division_estrogen_dependence
    return p.treg_division_per_day * sig ** 2 * ((1.0 - d) + d * ctx.host.estrogen)


def decide(ctx: Ctx) -> None:
    p = ctx.P.tcell
    s = ctx.slots("tcell")
    if s.size == 0:
        return
    reg = ctx.has(s, State.REGULATORY)
    tregs, effs = s[reg], s[~reg]
    # Tregs: IL-2 signal drives division and CXCR3
    sig = occupancy(ctx.conc("IL2", tregs), p.treg_il2_k_pM)
    cx = ctx.has(tregs, State.CXCR3)
    par = ctx.events(tregs, treg_division_rate(ctx, sig))
    ctx.divide(par, "tcell", ctx.cells.state[par] & np.uint32(State.REGULATORY | State.CXCR3))
    scx = occupancy(ctx.conc("IL2", tregs[~cx]), p.cxcr3_il2_k_pM)
    ctx.set_flag(ctx.events(tregs[~cx], p.cxcr3_induction_per_day * scx ** 2), State.CXCR3)
    ctx.set_flag(ctx.events(tregs[cx], p.cxcr3_loss_per_day), State.CXCR3, on=False)
    # CD4 effectors: butyrate converts them to Tregs (peripheral induction)
    cd8 = ctx.has(effs, State.CD8)
    cd4 = effs[~cd8]
    but = ctx.conc("SCFA", cd4) * ctx.host.butyrate_fraction
    conv = ctx.events(cd4, p.treg_induction_per_day * butyrate_signal(p, but))
    ctx.set_flag(conv, State.TNF_PRODUCER | State.IL17_PRODUCER, on=False)
    ctx.set_flag(conv, State.REGULATORY)
    # CD8 T cells: Wnt10b started at a rate per touching Treg, so producers follow Treg
    # density (not saturating in it); production stops at a constant rate
    cd8s = effs[cd8]
    n_touch = ctx.treg_contacts(cd8s)
    wnt = ctx.has(cd8s, State.WNT10B_PRODUCER)
    ctx.set_flag(ctx.events(cd8s[~wnt], p.wnt10b_contact_per_day * n_touch[~wnt]),
                 State.WNT10B_PRODUCER)
    ctx.set_flag(ctx.events(cd8s[wnt], p.wnt10b_off_per_day), State.WNT10B_PRODUCER, on=False)


def rates(ctx: Ctx, sec, vmax, idx) -> None:
    """Add state-dependent secretion and IL-2 uptake (molecules/s) of T cells."""
    p = ctx.P.tcell
    s = ctx.slots("tcell")
    if s.size == 0:
        return
    st = ctx.cells.state[s]
    reg = (st & np.uint32(State.REGULATORY)) != 0
    tnf = (st & np.uint32(State.TNF_PRODUCER)) != 0
    il17 = (st & np.uint32(State.IL17_PRODUCER)) != 0
    wnt = (st & np.uint32(State.WNT10B_PRODUCER)) != 0
    ko = ctx.knockouts
    add_rate(sec, idx, "TNF", s, np.where(tnf & ("tcell_tnf" not in ko), p.tnf_molecules_per_s, 0.0))
    add_rate(sec, idx, "IL17", s, np.where(il17, p.il17_molecules_per_s, 0.0))
    add_rate(sec, idx, "RANKL", s, np.where(tnf | il17, p.rankl_molecules_per_s, 0.0))
    add_rate(sec, idx, "IL2", s, np.where(reg, 0.0, p.il2_molecules_per_s))
    add_rate(sec, idx, "IL10", s, np.where(reg, p.treg_il10_molecules_per_s, 0.0))
    add_rate(sec, idx, "TGFb", s, np.where(reg, p.treg_tgfb_molecules_per_s, 0.0))
    add_rate(sec, idx, "WNT10B", s, np.where(wnt, p.wnt10b_molecules_per_s, 0.0))
    if "treg_il2_uptake" not in ko:
        add_rate(vmax, idx, "IL2", s, np.where(reg, p.treg_il2_vmax_molecules_per_s, 0.0))



def adjust_motility(model, motility) -> None:
    """CXCR3+ Tregs climb the CXCL10 gradient instead of their type's chemotaxis, with a
    bias ``cxcr3_chemotaxis_strength x c^2 / (c^2 + K^2)`` at their CXCL10 level ``c``
    (receptors must be engaged to read a gradient; Koch 2009)."""
    p = model.scenario.biology.tcell
    k = p.cxcr3_chemotaxis_strength
    if k <= 0 or "CXCL10" not in model.field_names:
        return
    c = model.cells
    t = c.slots_of_type(TYPE_CODES["tcell"])
    want = np.uint32(State.REGULATORY | State.CXCR3)
    sel = t[(c.state[t] & want) == want]
    if sel.size:
        fi = model.field_index("CXCL10")
        cc = model.fields.c[fi][c.z[sel], c.y[sel], c.x[sel]].astype(np.float64)
        r = (np.maximum(cc, 0.0) / p.cxcr3_k_pM) ** 2
        motility.follow(sel, fi, k * r / (1.0 + r))
