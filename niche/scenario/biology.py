"""The osteoimmune parameter table: every value with its unit and its source.

Each cell type's decision parameters live in one pydantic model (section
``[biology.<type>]`` of a scenario, every key overridable with ``--set``). A parameter is
declared with :func:`param`, which records the unit and the source (a citation, or
``calibrated: how``) next to the value; ``docs/parameters.md`` is generated from these
declarations (``python -m niche.tools.paramdocs > docs/parameters.md``) and a test keeps it
in sync.

Signals are dimensionless occupancies ``c / (c + K)`` of a receptor with half-saturation
``K`` (pM), so every ``*_k_pM`` below is a receptor affinity or an effective one.
Rates are per day; secretion is in molecules per second per cell (converted to pM/s in
the cell's voxel by the engine).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Strict
from .base import param as _param

__all__ = ["BiologyParams", "Perturbation", "InVitroConfig", "KNOCKOUTS"]

#: most cells one ``transfer`` perturbation injects: adoptive transfers put 1e6-1e7 cells
#: into a whole mouse, of which a marrow fragment receives a small share
MAX_TRANSFER_CELLS = 10_000_000
#: densest seeding of a culture well (cells per mm^2): a confluent monolayer of ~10-um
#: cells is ~1e4 per mm^2
MAX_SEEDING_PER_MM2 = 1e6


def param(value, unit: str, source: str, description: str, **constraints):
    """A documented parameter (:func:`niche.scenario.base.param`) that must be finite:
    ``inf`` and ``nan`` are rejected as the scenario is read."""
    return _param(value, unit, source, description, allow_inf_nan=False, **constraints)


class TCellParams(Strict):
    """Effector CD4 T cells (TNF / IL-17 producers) and regulatory T cells."""

    treg_fraction: float = param(
        0.15, "1", "calibrated: with the basal blood-butyrate signal (~0.17) the entering "
        "share is 0.15 x 1.67 = 0.25 of T cells (~40 % of CD4); Tregs are 10-30 % of marrow "
        "CD4 by biology.md section 2 (unverified), and the model's marrow share comes out "
        "higher (~55 % of CD4 in sham, ~25 % after OVX): a known gap",
        "fraction of entering T cells that are Foxp3+ Tregs in an intact eubiotic mouse",
        ge=0, le=1)
    treg_estrogen_dependence: float = param(
        0.5, "1", "calibrated: Polanczyk 2004 J Immunol 10.4049/jimmunol.173.4.2227 (E2 "
        "raises Treg number and Foxp3); half of Treg recruitment is made E2-dependent",
        "Treg fraction scales as (1 - d) + d * estrogen", ge=0, le=1)
    treg_division_estrogen_dependence: float = param(
        0.25, "1", "calibrated: estrogen expands the Treg compartment (Polanczyk 2004 J Immunol "
        "10.4049/jimmunol.173.4.2227); a quarter of IL-2-driven Treg division is made "
        "E2-dependent, so OVX marrow Tregs fall rather than follow the IL-2 of the more "
        "numerous primed effectors", "Treg division rate scales as (1 - d) + d * estrogen",
        ge=0, le=1)
    treg_butyrate_gain: float = param(
        4.0, "1", "calibrated: Tyagi 2018 Immunity 10.1016/j.immuni.2018.10.013 (butyrate "
        "about doubles marrow Tregs)",
        "maximal relative rise of Treg induction by butyrate (saturating)", ge=0)
    butyrate_k_pM: float = param(
        2.0e6, "pM", "calibrated: half-effect near physiological blood butyrate+propionate "
        "(1-5 uM, Cummings 1987 Gut)", "butyrate level of half-maximal Treg induction", gt=0)
    butyrate_treg_hill: float = param(
        2.0, "1", "calibrated: supplemented, not basal, SCFA levels expand Tregs (Smith 2013 "
        "Science 10.1126/science.1241165: SCFAs in drinking water expand colonic Tregs; "
        "Furusawa 2013 Nature 10.1038/nature12721, Arpaia 2013 Nature 10.1038/nature12726: "
        "butyrate's HDAC inhibition induces Foxp3). With 2 the basal blood level (~0.9 uM) "
        "gives a signal of 0.17 and butyrate in the water (~2.7 uM) 0.65, so supplementation "
        "raises the Treg share of entry ~2x, as Tyagi 2018 report for marrow Tregs; with 1 "
        "(0.31 vs 0.57) marrow Tregs rose only ~25 % and basal butyrate converted most CD4 "
        "effectors", "Hill coefficient of butyrate's action on Tregs (entry share and "
        "induction): signal b^h / (b^h + K^h)", gt=0)
    treg_induction_per_day: float = param(
        0.15, "1/day", "calibrated: peripheral Treg induction is slow (days)",
        "maximal rate at which effector T cells convert to Tregs under butyrate", ge=0)
    treg_il2_k_pM: float = param(
        10.0, "pM", "IL-2R alpha-beta-gamma Kd ~10 pM (Busse 2010 PNAS 10.1073/pnas.0909278107)",
        "IL-2 half-saturation of Tregs (CD25 high)", gt=0)
    effector_il2_k_pM: float = param(
        100.0, "pM", "Tregs respond to ~10x less IL-2 than effectors (Yu 2015 Diabetes 64:2172)",
        "IL-2 half-saturation of effector T cells", gt=0)
    treg_division_per_day: float = param(
        0.3, "1/day", "calibrated: IL-2 complexes give >10-fold Tregs in 3 days "
        "(Webster 2009 JEM 10.1084/jem.20082004)",
        "Treg division rate at saturating IL-2 signal (rate x signal^2: STAT5-driven proliferation needs strong signals)", ge=0)
    cxcr3_induction_per_day: float = param(
        1.0, "1/day", "calibrated: low-dose IL-2 expands CXCR3+ Tregs (seed 004)",
        "rate at which Tregs acquire CXCR3 at saturating IL-2 signal (signal squared)", ge=0)
    cxcr3_il2_k_pM: float = param(
        50.0, "pM", "calibrated: CXCR3 (T-bet) induction on Tregs needs sustained strong "
        "IL-2/STAT5 signals, as under low-dose IL-2 (seed 004)",
        "IL-2 half-saturation of CXCR3 induction (rate x occupancy^2)", gt=0)
    cxcr3_chemotaxis_strength: float = param(
        1.0, "1", "calibrated: CXCR3 is the receptor for CXCL9/10 and directs Tregs to "
        "interferon-driven sites (Koch 2009 Nat Immunol 10.1038/ni.1731); low-dose IL-2 "
        "expands CXCR3+ marrow Tregs (seed 004)", "maximal chemotactic bias of CXCR3+ "
        "Tregs up the CXCL10 gradient (0 = none); the bias is this x c^2 / (c^2 + K^2) at "
        "the cell's CXCL10 level c", ge=0, le=1)
    cxcr3_k_pM: float = param(
        200.0, "pM", "calibrated: a cell senses a chemokine gradient only while its receptors "
        "are engaged; K above the endogenous marrow CXCL10 (~20 pM intact, ~50 pM after OVX) "
        "and near the level around therapy-switched monocytes (~200 pM), so homing is a "
        "response to IL-2 therapy. With a constant bias of 0.5 the endogenous programme of "
        "OVX marrow drew Tregs to bone too and halved the OVX loss in one seed's domain",
        "CXCL10 level of half-maximal chemotactic bias (Hill 2)", gt=0)
    cxcr3_loss_per_day: float = param(
        0.1, "1/day", "calibrated: CXCR3 expression persists days after stimulation",
        "rate at which CXCR3+ Tregs return to CXCR3-", ge=0)
    priming_influx_gain: float = param(
        1.0, "1", "calibrated: Th17/TNF T cells primed in the gut home to marrow after OVX "
        "(Li 2016 JCI 10.1172/JCI86062); marrow TNF+ T cells about double (Roggia 2001 PNAS "
        "10.1073/pnas.251534698); the priming acts on CD4 entry only (Th17 cells are CD4), "
        "so at full priming non-regulatory T-cell entry rises by about half, as with the "
        "earlier 0.5 on all non-regulatory entry",
        "CD4 effector entry scales as 1 + gain * (priming - 1); priming = 1 in an intact "
        "eubiotic mouse (niche.scenario.host)", ge=0, le=100)
    tnf_fraction: float = param(
        0.1, "1", "calibrated: a minority of marrow T cells make TNF in intact mice "
        "(Roggia 2001)", "TNF+ fraction of entering effectors at priming 1 (scales with "
        "priming, capped at 0.9)", ge=0, le=1)
    th17_fraction: float = param(
        0.03, "1", "calibrated: few IL-17+ T cells in intact marrow; Th17 expand after "
        "sex-steroid deficiency (Li 2016)", "IL-17+ fraction of entering effectors at "
        "priming 1 (scales with priming)", ge=0, le=1)
    tnf_molecules_per_s: float = param(
        2.0, "molecules/s", "calibrated: activated T cells secrete order 1-10 cytokine "
        "molecules/s (Thurley 2015 PLoS Comput Biol 10.1371/journal.pcbi.1004206)",
        "TNF secretion per TNF+ T cell (the same after OVX: Roggia 2001)", ge=0)
    il17_molecules_per_s: float = param(
        2.0, "molecules/s", "calibrated as TNF (Thurley 2015)", "IL-17 secretion per Th17 cell",
        ge=0)
    rankl_molecules_per_s: float = param(
        0.5, "molecules/s", "calibrated: activated T cells express RANKL (Kong 1999 Nature "
        "10.1038/46303), less than osteoblasts", "RANKL release per TNF+/Th17 T cell", ge=0)
    il2_molecules_per_s: float = param(
        0.1, "molecules/s", "calibrated: activated CD4 secrete ~1-10 IL-2/s (Thurley 2015); "
        "a few % of marrow effectors are active at a time (mean over all effectors)",
        "IL-2 secretion per effector T cell", ge=0)
    treg_il2_vmax_molecules_per_s: float = param(
        10.0, "molecules/s", "~1e4 IL-2R per Treg internalised with ~1e-3/s turnover "
        "(Thurley 2015)", "saturable IL-2 uptake of a Treg (Km = fields.IL2.km_pM)", ge=0)
    treg_il10_molecules_per_s: float = param(
        0.1, "molecules/s", "calibrated: human Tregs act partly through IL-10 (PMC4002989)",
        "IL-10 secretion per Treg", ge=0)
    treg_tgfb_molecules_per_s: float = param(
        0.02, "molecules/s", "calibrated: Treg TGF-beta1 (PMC4002989)",
        "TGF-beta secretion per Treg", ge=0)
    cd8_fraction: float = param(
        0.4, "1", "calibrated: CD8+ T cells are a large share of mouse marrow T cells, larger "
        "than in blood (Di Rosa & Pabst 2005 Trends Immunol 10.1016/j.it.2005.05.003)",
        "fraction of entering T cells that are CD8+ (the Treg share comes out of CD4)",
        ge=0, le=1)
    wnt10b_contact_per_day: float = param(
        0.3, "1/day", "calibrated: Tregs drive CD8 T cells to make Wnt10b and removing Tregs "
        "abolishes it (Tyagi 2018 Immunity 10.1016/j.immuni.2018.10.013); per touching Treg, "
        "so that Wnt10b producers rise with marrow Treg density instead of saturating",
        "rate, per touching Treg, at which a CD8 T cell starts making Wnt10b", ge=0)
    wnt10b_off_per_day: float = param(
        1.0, "1/day", "calibrated: Wnt10b expression needs ongoing Treg signals (Tyagi 2018)",
        "rate at which Wnt10b production stops", ge=0)
    wnt10b_molecules_per_s: float = param(
        5.0, "molecules/s", "calibrated", "Wnt10b secretion per producing T cell", ge=0)


class ILC2Params(Strict):
    """Group-2 innate lymphoid cells."""

    il2_k_pM: float = param(
        20.0, "pM", "calibrated: ILC2s express CD25 (high-affinity IL-2R; Van Gool 2014 Blood "
        "10.1182/blood-2014-03-564120)", "IL-2 half-saturation of ILC2s", gt=0)
    division_per_day: float = param(
        0.3, "1/day", "calibrated: IL-2 complexes make ILC2s proliferate (Van Gool 2014)",
        "ILC2 division rate at saturating IL-2 (rate x signal^2)", ge=0)
    program_il2_k_pM: float = param(
        100.0, "pM", "calibrated: low-dose IL-2 promotes IL-10+ and CGRP+ ILC2s (seed 004), a "
        "response to therapy: K lies between the endogenous marrow IL-2 (~8 pM) and the "
        "marrow level of a therapeutic pulse (~100-200 pM for about an hour a day). With "
        "the ILC2 division signal (K = 20 pM, squared) driving the programmes, 30-40 % of "
        "OVX ILC2s were programme-positive without therapy and IL-2 raised them by only "
        "~55 %, so depleting ILC2s removed a third of the IL-2 benefit (V13 needs half)",
        "IL-2 level of half-maximal induction of the IL-10 / CGRP programmes", gt=0)
    program_il2_hill: float = param(
        3.0, "1", "calibrated: steep, sigmoidal single-cell IL-2 responses (Feinerman 2010 "
        "Mol Syst Biol 6:437), as for the monocyte STAT1-IRF1 programme: the endogenous "
        "level gives a signal of ~5e-4, a 150-pM pulse ~0.77",
        "Hill coefficient of the programmes' IL-2 signal", gt=0)
    il10_induction_per_day: float = param(
        24.0, "1/day", "calibrated: low-dose IL-2 promotes IL-10+ ILC2s (seed 004); cytokine "
        "programmes of ILC2s switch on within hours of IL-2/IL-33 stimulation, so an "
        "hour-long therapeutic pulse switches most ILC2s it reaches",
        "rate of acquiring IL-10 production at full programme signal", ge=0)
    cgrp_induction_per_day: float = param(
        24.0, "1/day", "calibrated as il10_induction_per_day (seed 004: CGRP+ ILC2s)",
        "rate of acquiring CGRP production at full programme signal", ge=0)
    program_loss_per_day: float = param(
        0.2, "1/day", "calibrated: the programmes persist for days between daily doses and "
        "fade within a week or two after therapy (seed 004: ILC2s required for protection "
        "during therapy)", "rate of losing the IL-10 / CGRP programme (x (1 - signal))", ge=0)
    il4_molecules_per_s: float = param(
        0.3, "molecules/s", "calibrated: ILC2s make IL-4/IL-13 constitutively (Omata 2020 Bone "
        "10.1016/j.bone.2020.115335)", "IL-4/IL-13 secretion per ILC2", ge=0)
    il10_molecules_per_s: float = param(
        6.0, "molecules/s", "calibrated: order of magnitude of activated lymphocyte secretion "
        "(1-10 molecules/s, Thurley 2015 PLoS Comput Biol 10.1371/journal.pcbi.1004206); "
        "at 3 the ILC2s that IL-2 switches on carried about a third of the IL-2 benefit, "
        "against seed 004's ILC2s being required (V13)",
        "IL-10 secretion per IL-10+ ILC2", ge=0)
    cgrp_molecules_per_s: float = param(
        6.0, "molecules/s", "calibrated: order of magnitude of activated lymphocyte secretion "
        "(1-10 molecules/s, Thurley 2015 PLoS Comput Biol 10.1371/journal.pcbi.1004206); "
        "at 3 the ILC2s that IL-2 switches on carried about a third of the IL-2 benefit, "
        "against seed 004's ILC2s being required (V13)",
        "CGRP secretion per CGRP+ ILC2", ge=0)
    il2_vmax_molecules_per_s: float = param(
        3.0, "molecules/s", "calibrated: fewer IL-2R than Tregs", "saturable IL-2 uptake per ILC2",
        ge=0)


class MonocyteParams(Strict):
    """Monocytes / osteoclast precursors."""

    mcsf_level: float = param(
        1.0, "1", "calibrated: constitutive stromal M-CSF is permissive in marrow (1 = enough)",
        "M-CSF signal (0-1) in vivo; culture wells set their own", ge=0, le=1)
    rankl_k_pM: float = param(
        500.0, "pM", "calibrated: RANK-RANKL Kd in the 0.1-1 nM range (Nelson 2012 Structure)",
        "free-RANKL half-saturation of RANK signalling", gt=0)
    opg_k_pM: float = param(
        1000.0, "pM", "calibrated: OPG binds RANKL with high affinity (Kd ~ pM-nM; Lemaire 2004 "
        "J Theor Biol)", "OPG level that halves free RANKL (decoy)", gt=0)
    tnf_gain: float = param(
        8.0, "1", "calibrated: TNF potentiates RANKL signalling in precursors (Cenci 2000 JCI "
        "10.1172/JCI11066)", "maximal relative rise of commitment by TNF", ge=0)
    tnf_k_pM: float = param(
        20.0, "pM", "calibrated: TNFR1 Kd ~ 20-500 pM; at the low end so that the OVX rise of "
        "marrow TNF (Roggia 2001) is felt",
        "TNF half-saturation", gt=0)
    il17_gain: float = param(
        0.5, "1", "calibrated: IL-17 raises RANKL responsiveness (Li 2016)",
        "maximal relative rise of commitment by IL-17", ge=0)
    il17_k_pM: float = param(5.0, "pM", "calibrated", "IL-17 half-saturation", gt=0)
    commitment_per_day: float = param(
        4.0, "1/day", "calibrated: in culture with saturating RANKL + M-CSF most precursors "
        "commit within a day or two (NFATc1 induction); the precursor supply that renews "
        "osteoclast nuclei (nucleus_loss_per_day) in the sham arm",
        "commitment rate at full drive (precursors must touch bone, where RANKL is presented)",
        ge=0)
    maturation_days: float = param(
        1.5, "day", "calibrated: TRAP+ multinucleated cells appear by day 3-5 of culture "
        "(biology.md); fusion competence (DC-STAMP, OC-STAMP) follows NFATc1 by 1-2 days. "
        "A calibration of it on the culture rows (docs/calibration/culture-fusion.md) put "
        "it at 2.9 d, but that value blunts the in-vivo OVX response (V1 -4 to -7 % instead "
        "of -18 %); the late culture onset is the culture precursors' RANK priming "
        "(invitro.rank_priming_days) instead",
        "time from commitment to fusion competence", ge=0)
    scfa_k_pM: float = param(
        1.5e6, "pM", "calibrated: propionate/butyrate 150 mM in water prevent OVX loss "
        "(Lucas 2018 Nat Commun 10.1038/s41467-017-02490-4); little effect at baseline blood "
        "levels", "SCFA level halving the TRAF6/NFATc1 drive (metabolic reprogramming)", gt=0)
    scfa_hill: float = param(
        2.0, "1", "calibrated: the glycolytic reprogramming needs supplemented, not basal, "
        "SCFA levels (Lucas 2018: no effect of the basal level, strong effect of "
        "supplementation); a Hill coefficient of 2 keeps the basal marrow level (~0.8 uM) at "
        "~20 % inhibition and gives ~70 % at a tripled level",
        "Hill coefficient of the SCFA inhibition", gt=0)
    il10_k_pM: float = param(
        200.0, "pM", "calibrated: IL-10 blocks NFATc1 early (Evans & Fox 2007 BMC Cell Biol "
        "10.1186/1471-2121-8-4); IL-10R Kd ~ 35-200 pM", "IL-10 level halving commitment", gt=0)
    cgrp_k_pM: float = param(
        5.0, "pM", "calibrated: CGRP's net effect modelled as suppressive (seed 004; biology.md)",
        "CGRP level halving commitment", gt=0)
    il4_k_pM: float = param(
        10.0, "pM", "calibrated: ILC2 IL-4/IL-13 suppress via STAT6 (Omata 2020)",
        "IL-4/IL-13 level halving commitment", gt=0)
    il2_k_pM: float = param(
        200.0, "pM", "calibrated: monocytes carry intermediate-affinity IL-2R beta-gamma "
        "(Kd ~ 1 nM); RANKL-stimulated precursors respond at lower IL-2 (seed 004)",
        "IL-2 half-saturation of the STAT1-IRF1 programme", gt=0)
    il2_hill: float = param(
        3.0, "1", "calibrated: a sigmoidal IL-2 dose response, so that the endogenous marrow "
        "level (~8 pM) barely triggers the programme while the pulses of low-dose therapy "
        "(~100-200 pM in the marrow for about an hour a day) do; single-cell IL-2 responses "
        "are steep and sigmoidal (Feinerman 2010 Mol Syst Biol 6:437)",
        "Hill coefficient of the IL-2 signal of the STAT1-IRF1 programme", gt=0)
    ifn_induction_per_day: float = param(
        500.0, "1/day", "calibrated: IL-2 triggers STAT1 phosphorylation within minutes and "
        "IRF1 within about an hour in RANKL-stimulated monocytes (seed 004), so one "
        "therapeutic pulse (about an hour above K) switches most of them",
        "rate of entering the interferon programme at full signal", ge=0)
    ifn_loss_per_day: float = param(
        2.0, "1/day", "calibrated: the programme fades within about half a day once IL-2 "
        "is gone (STAT1 phosphorylation and IRF1 return to baseline within hours after the "
        "cytokine goes), so in vivo, between daily pulses, the direct route holds about "
        "half of the precursors, while in culture, where IL-2 stays in the medium, it holds "
        "them all (V11). With 0.25/day (an IFN-beta loop keeping it for days, Takayanagi "
        "2002 Nature 416:744) the direct route alone kept two thirds of the in-vivo IL-2 "
        "benefit without ILC2s, against seed 004's ILC2s being required (V13)",
        "rate of leaving the interferon programme without IL-2 (x (1 - signal))", ge=0)
    ifn_inhibition: float = param(
        0.97, "1", "calibrated: the programme suppresses osteoclastogenesis (seed 004)",
        "fractional block of commitment in the interferon programme", ge=0, le=1)
    ifn_fusion_inhibition: float = param(
        0.9, "1", "calibrated: the IL-2-induced STAT1-IRF1 programme acts on RANKL-stimulated "
        "cells (seed 004), and the interferon-beta loop it belongs to blocks RANKL-driven "
        "differentiation through c-Fos (Takayanagi 2002 Nature 416:744)",
        "fractional block of fusion of committed precursors in the interferon programme",
        ge=0, le=1)
    cxcl10_molecules_per_s: float = param(
        2.0, "molecules/s", "calibrated: CXCL10 (IP-10) and CXCL9 are STAT1/IRF1 target genes "
        "of the interferon response (Ohmori 1997 J Biol Chem 10.1074/jbc.272.23.14899), so "
        "the monocytes that IL-2 switches into the STAT1-IRF1 programme (seed 004) make the "
        "CXCR3 ligands that call CXCR3+ Tregs", "CXCL10 secretion per monocyte in the "
        "interferon programme", ge=0)
    treg_contact_inhibition: float = param(
        0.85, "1", "calibrated: CTLA-4 contact lowers resorption pits up to 80 % (Zaiss 2007 "
        "Arthritis Rheum 10.1002/art.23138)", "fractional block of commitment per hour in "
        "contact with a Treg", ge=0, le=1)
    treg_contact_kill_per_day: float = param(
        0.5, "1/day", "calibrated: CTLA-4/CD80-86 induces IDO and precursor apoptosis "
        "(Bozec 2014 Sci Transl Med)", "death rate of committed precursors touching a Treg",
        ge=0)
    fusion_per_day: float = param(
        6.0, "1/day", "calibrated: in culture, precursors touching each other fuse within "
        "hours once committed", "fusion rate of a committed precursor with a touching "
        "precursor or osteoclast", ge=0)
    preoc_lifespan_days: float = param(
        3.0, "day", "calibrated: unfused committed precursors die within days",
        "mean life of a committed mononuclear precursor", gt=0)


class OsteoclastParams(Strict):
    """Multinucleated osteoclasts."""

    apoptosis_per_day: float = param(
        0.067, "1/day", "calibrated: osteoclast lifespan ~2-3 weeks in mice (Jacome-Galarza 2019 "
        "Nature 10.1038/s41586-019-1105-7 show long-lived syncytia)",
        "apoptosis rate without estrogen", ge=0)
    estrogen_apoptosis_gain: float = param(
        0.8, "1", "calibrated: estrogen favours osteoclast apoptosis (Nakamura 2007 Cell "
        "10.1016/j.cell.2007.07.034)", "relative rise of apoptosis at intact estrogen", ge=0)
    tgfb_apoptosis_gain: float = param(
        2.0, "1", "calibrated: TGF-beta induces osteoclast apoptosis (Hughes 1996 Nat Med "
        "10.1038/nm1096-1132; Lemaire 2004 J Theor Biol 10.1016/j.jtbi.2004.03.023)",
        "maximal relative rise of apoptosis by TGF-beta", ge=0)
    tgfb_k_pM: float = param(
        200.0, "pM", "calibrated: near the marrow mean of intact bone, so apoptosis follows "
        "local resorption", "TGF-beta half-saturation of osteoclast apoptosis", gt=0)
    resorb_switch_per_day: float = param(
        24.0, "1/day", "RANKL switches osteoclasts to resorbing within minutes to hours "
        "(Kikuta 2013 JCI 10.1172/JCI65054)", "rate of switching to resorbing on bone at "
        "full RANKL signal", ge=0)
    nucleus_loss_per_day: float = param(
        0.15, "1/day", "calibrated: mouse osteoclasts are long-lived syncytia whose nuclei "
        "turn over, renewed by fusion of new precursors, and they shed nuclei by fission "
        "into osteomorphs (Jacome-Galarza 2019 Nature 10.1038/s41586-019-1105-7; McDonald "
        "2021 Cell 10.1016/j.cell.2021.02.002); a nuclear life of ~1 week makes osteoclast "
        "size follow precursor supply within days. Shed nuclei are not tracked (osteomorph "
        "re-fusion is not modelled)", "rate at which each nucleus leaves its osteoclast; a "
        "cell left with one nucleus is gone", ge=0)
    release_per_day: float = param(
        0.5, "1/day", "calibrated: resorption bouts last hours (Kikuta 2013)",
        "rate of switching from resorbing to moving", ge=0)
    treg_contact_block: float = param(
        0.9, "1", "calibrated: Tregs suppress bone resorption by mature osteoclasts through "
        "contact (Luo 2011 Cell Mol Immunol 8:50; CTLA-4, Zaiss 2007 Arthritis Rheum "
        "10.1002/art.23138); with 0.9 a touching Treg cuts the resorbing "
        "share of an osteoclast by ~80 %, the largest reduction of pits (Zaiss 2007)",
        "factor by which a touching Treg lowers the start and shortens the duration of "
        "resorption bouts", ge=0, lt=1)
    max_nuclei: int = param(20, "nuclei", "3-20 nuclei (biology.md)",
                            "no further fusion beyond this size", ge=2, le=100)
    min_nuclei_multinucleated: int = param(
        3, "nuclei", "TRAP+ cells with >= 3 nuclei (standard in-vitro count)",
        "threshold of the multinucleated-osteoclast readout", ge=2)
    tgfb_molecules_per_s_per_nucleus: float = param(
        3.0, "molecules/s", "calibrated: resorption releases matrix TGF-beta (coupling; "
        "Tang 2009 Nat Med)", "TGF-beta release while resorbing, per nucleus", ge=0)


class OsteoblastParams(Strict):
    """Osteoblasts on the bone surface."""

    recruit_per_mm2_per_day: float = param(
        18.0, "1/(mm^2 day)", "calibrated: Ob.S/BS ~10-20 % in intact mouse trabecular bone "
        "and formation balancing resorption in the sham arm (BV/TV steady over 12 weeks); "
        "16 -> 18 with the Wnt10b gain 30 -> 20 to keep the sham balance",
        "baseline recruitment onto free bone surface", ge=0)
    tgfb_recruit_gain: float = param(
        8.0, "1", "calibrated: TGF-beta released by resorption recruits osteoblasts "
        "(Tang 2009 Nat Med 10.1038/nm.1979)", "maximal relative rise of recruitment by TGF-beta",
        ge=0)
    tgfb_k_pM: float = param(300.0, "pM", "calibrated: near the marrow mean, so recruitment "
                             "follows local resorption", "TGF-beta half-saturation", gt=0)
    estrogen_loss_recruit_gain: float = param(
        1.0, "1", "loss of estrogen raises osteoblastogenesis in mouse marrow independently "
        "of factors released by resorption (Jilka 1998 JCI 101:1942: about 2-fold more "
        "osteoblast progenitors after OVX)",
        "relative rise of recruitment without estrogen", ge=0)
    wnt10b_recruit_gain: float = param(
        20.0, "1", "calibrated: Wnt10b from CD8 T cells drives formation (Tyagi 2018); with "
        "K = 1000 pM the marrow level (~130 pM in sham) adds ~2.3 to the recruitment signal, "
        "so butyrate's Treg-driven Wnt10b raises formation although resorption falls (V9), "
        "while in OVX + SCFA the Wnt10b gain and the lost resorption coupling leave formation "
        "within +/-15 % of OVX (V5, Lucas 2018). Gain 30 gave V5 formation +18.9 %; 20 passes "
        "V1-V12 on 5 seeds", "maximal relative rise of "
        "recruitment by Wnt10b", ge=0)
    wnt10b_k_pM: float = param(
        1000.0, "pM", "calibrated: far above the marrow levels (~80-200 pM), so osteoblasts "
        "respond about linearly to Treg-driven Wnt10b (Tyagi 2018). The Wnt10b field is "
        "patchy (it follows Treg-CD8 contacts); with K = 300 pM the saturating response "
        "averaged the butyrate arm's +50 % Wnt10b down to ~+3 % at the bone surface",
        "Wnt10b half-saturation", gt=0)
    wnt10b_survival_gain: float = param(
        20.0, "1", "calibrated: Wnt signalling prevents osteoblast apoptosis (Almeida 2005 "
        "J Biol Chem 280:41342; Bennett 2005 PNAS 10.1073/pnas.0408575102: Wnt10b raises "
        "osteoblast number and bone formation); at the sham level (~130 pM, occupancy "
        "~0.12) lifespan is ~3.3x the 7-day Wnt-free one, ~23 days", "osteoblast death rate is "
        "1/lifespan / (1 + this * Wnt10b occupancy)", ge=0)
    cgrp_recruit_gain: float = param(
        4.0, "1", "calibrated: CGRP is anabolic on the osteoblast lineage: osteoblast-targeted "
        "CGRP raises trabecular bone formation and volume (Ballica 1999 J Bone Miner Res "
        "10.1359/jbmr.1999.14.7.1067) and alpha-CGRP-deficient mice are osteopenic from low "
        "formation (Schinke 2004 J Bone Miner Res 10.1359/JBMR.040910); CGRP+ ILC2s are "
        "required for the IL-2 reversal of OVX loss (seed 004). With 4, the IL-2 arm's CGRP "
        "(~3 pM marrow mean) raises recruitment by ~25 %, endogenous CGRP (~0.5-1 pM) by "
        "~5-10 %", "maximal relative rise of recruitment by CGRP", ge=0)
    cgrp_k_pM: float = param(
        5.0, "pM", "calibrated: as the monocyte CGRP half-saturation", "CGRP half-saturation "
        "of osteoblast recruitment", gt=0)
    mechanostat_exponent: float = param(
        0.25, "1", "calibrated: OVX mice approach a new trabecular steady state within 8-12 "
        "weeks (Bouxsein 2005; mechanostat: Frost 1987 Anat Rec 10.1002/ar.1092190104, "
        "sclerostin falls with strain: Robling 2008 JBC 10.1074/jbc.M705092200)",
        "recruitment ~ (apparent strain / adapted strain) ** this; 0 turns the mechanostat "
        "off", ge=0)
    mechanostat_rankl_exponent: float = param(
        1.5, "1", "calibrated: osteocyte RANKL rises with unloading and is required for "
        "unloading-induced loss (Xiong 2011 Nat Med 10.1038/nm.2448; Nakashima 2011); "
        "exponent 1.5 with the osteoblast arm at 0.25: the slow osteoblast arm alone "
        "(exponent 1) made OVX bone rebound past its trough after week 8 (validation row "
        "V2(c)); two seeds: rebound of the d56-84 OVX effect 14 -> 1 and 12 -> 6 points",
        "membrane RANKL ~ (apparent strain / adapted strain) ** "
        "-this; 0 turns it off", ge=0)
    surface_rankl_pM: float = param(
        200.0, "pM", "calibrated: osteocytes are the main RANKL source of adult bone "
        "(Nakashima 2011 Nat Med 10.1038/nm.2452; Xiong 2011 Nat Med 10.1038/nm.2448) and "
        "osteocyte RANKL is needed for OVX bone loss (Fujiwara 2016 JBC "
        "10.1074/jbc.M116.742452); level set so that intact bone is in balance",
        "membrane RANKL presented at the bone surface (equivalent soluble concentration) at "
        "intact estrogen, no TNF/IL-17; estrogen, TNF and IL-17 act as on osteoblast RANKL",
        ge=0)
    rankl_molecules_per_s: float = param(
        0.2, "molecules/s", "calibrated: osteoblasts make little soluble RANKL beside OPG; "
        "Pivonka 2008 puts RANKL on precursors and OPG on active osteoblasts",
        "soluble RANKL release of an osteoblast at intact estrogen, no TNF/IL-17", ge=0)
    opg_molecules_per_s: float = param(
        2.0, "molecules/s", "calibrated: OPG > RANKL in intact bone (Pivonka 2008)",
        "OPG release at intact estrogen", ge=0)
    estrogen_rankl_suppression: float = param(
        0.5, "1", "calibrated: estrogen lowers osteoblast RANKL (Eghbali-Fatourechi 2003 JCI: "
        "RANKL per marrow stromal cell 2-3x higher without estrogen); 2x here, the low end, "
        "as much of the OVX effect needs the gut and T cells (Li 2016)",
        "fractional fall of RANKL at intact vs absent estrogen", ge=0, le=1)
    estrogen_opg_gain: float = param(
        0.15, "1", "calibrated: estrogen raises OPG (Hofbauer 1999 Endocrinology); modest, "
        "as above",
        "fractional OPG at absent estrogen is 1 - this", ge=0, le=1)
    tnf_rankl_gain: float = param(
        8.0, "1", "calibrated: TNF raises stromal RANKL (Cenci 2000); TNF-blocked or "
        "T-cell-deficient mice lose little bone after OVX (Roggia 2001)",
        "maximal relative RANKL rise by TNF", ge=0)
    il17_rankl_gain: float = param(
        1.0, "1", "calibrated: IL-17 raises RANKL (Li 2016)",
        "maximal relative RANKL rise by IL-17", ge=0)
    tnf_k_pM: float = param(20.0, "pM", "calibrated: as the precursors' TNF half-saturation",
                            "TNF half-saturation on osteoblast-lineage cells", gt=0)
    il17_k_pM: float = param(5.0, "pM", "calibrated", "IL-17 half-saturation on osteoblasts",
                             gt=0)


class BiologyParams(Strict):
    """``[biology.*]``: decision parameters of the five cell types."""

    tcell: TCellParams = TCellParams()
    ilc2: ILC2Params = ILC2Params()
    monocyte: MonocyteParams = MonocyteParams()
    osteoclast: OsteoclastParams = OsteoclastParams()
    osteoblast: OsteoblastParams = OsteoblastParams()


#: pathways a ``knockout`` perturbation can remove
KNOCKOUTS: dict[str, str] = {
    "monocyte_il2_stat1": "monocytes do not enter the IL-2 STAT1-IRF1 programme",
    "treg_contact": "Tregs do not suppress precursors by CTLA-4 contact",
    "ilc2_il10": "ILC2s make no IL-10",
    "ilc2_cgrp": "ILC2s make no CGRP",
    "tcell_tnf": "T cells make no TNF",
    "osteoblast_rankl": "osteoblast-lineage cells (osteoblasts, lining cells, osteocytes) "
                        "make no RANKL",
    "treg_il2_uptake": "Tregs do not consume IL-2",
}

_CELL_OR_STATE = Literal["tcell", "treg", "effector_tcell", "ilc2", "monocyte", "osteoclast",
                         "osteoblast"]


class Perturbation(Strict):
    """One ``[[perturbations]]`` entry: what the experimenter does to cells or pathways.

    - ``deplete``: remove ``target`` cells (a type, or ``treg``/``effector_tcell``) at
      ``rate_per_day`` from ``day`` to ``end_day``, and block their entry meanwhile
      (antibody or diphtheria-toxin depletion);
    - ``transfer``: inject ``count`` cells of ``target`` at ``day`` (random marrow voxels);
    - ``knockout``: remove ``pathway`` (see :data:`KNOCKOUTS`) from ``day`` on.
    """

    kind: Literal["deplete", "transfer", "knockout"]
    target: _CELL_OR_STATE | None = None
    pathway: str | None = None
    day: float = Field(0.0, ge=0, allow_inf_nan=False)
    end_day: float | None = Field(None, allow_inf_nan=False)
    rate_per_day: float = Field(20.0, gt=0, allow_inf_nan=False)
    count: int = Field(0, ge=0, le=MAX_TRANSFER_CELLS)

    def model_post_init(self, _ctx) -> None:
        if self.kind in ("deplete", "transfer") and self.target is None:
            raise ValueError(f"perturbation kind={self.kind!r} needs 'target'")
        if self.kind == "transfer" and self.count <= 0:
            raise ValueError("perturbation kind='transfer' needs count > 0")
        if self.kind == "knockout":
            if self.pathway not in KNOCKOUTS:
                raise ValueError(f"knockout pathway {self.pathway!r} unknown "
                                 f"(known: {', '.join(KNOCKOUTS)})")
        if self.end_day is not None and self.end_day < self.day:
            raise ValueError(f"end_day={self.end_day} is before day={self.day}")

    def active(self, t_days: float) -> bool:
        return t_days >= self.day and (self.end_day is None or t_days < self.end_day)


class InVitroConfig(Strict):
    """``[invitro]``: a culture well instead of a marrow fragment.

    The domain becomes a well: ``domain.shape_voxels`` = (height, width, width); the top
    voxel layer is the medium reservoir (held at the medium concentrations, like vessels
    in vivo); the bottom is plastic, or a bone (dentine) slice of ``bone_slice_um`` for a
    pit assay (always present; at least one voxel). Monocytes are seeded on the bottom
    at ``monocytes_per_mm2``.
    """

    monocytes_per_mm2: float = param(
        2500.0, "1/mm^2", "calibrated: 1e5 cells per 96-well (0.32 cm^2) bone-marrow "
        "macrophage cultures (standard protocols)", "seeding density of monocytes", gt=0,
        le=MAX_SEEDING_PER_MM2)
    treg_per_monocyte: float = param(0.0, "1", "Zaiss 2007 co-culture ratios",
                                     "Tregs seeded per monocyte", ge=0, le=100)
    bone_slice_um: float = param(20.0, "um", "calibrated: pit depth rarely exceeds 10-20 um",
                                 "thickness of the bone (dentine) slice at the well bottom; "
                                 "osteoclast counts are read on it as on plastic", gt=0)
    mcsf_level: float = param(1.0, "1", "25-30 ng/ml M-CSF saturates (standard protocols)",
                              "M-CSF signal of the medium (0-1)", ge=0, le=1)
    rankl_pM: float = param(2500.0, "pM", "50 ng/ml soluble RANKL (~20 kDa) in standard "
                            "protocols", "medium RANKL", ge=0)
    rank_priming_days: float = param(
        2.053, "day", "calibrated with niche calibrate on V10-V12 "
        "(docs/calibration/culture-rank-priming.toml: posterior median 2.05 d, 95 % [0.88, "
        "2.96] d; prior [0, 3] d): M-CSF induces RANK on freshly isolated c-Fms+ marrow "
        "precursors (Arai 1999 J Exp Med 10.1084/jem.190.12.1741), which is why standard "
        "protocols culture them with M-CSF before or alongside RANKL; the precursors that "
        "reach the marrow from blood already express RANK (Muto 2011 JBMR "
        "10.1002/jbmr.490), so in vivo there is no such delay",
        "days under M-CSF before a seeded monocyte expresses RANK and can answer RANKL "
        "(commitment, the IL-2 interferon programme); 0 = at once", ge=0, le=7)
    il2_pM: float = param(0.0, "pM", "seed 004 used ng/ml IL-2 in culture (1 ng/ml ~ 65 pM)",
                          "medium IL-2", ge=0)
    scfa_pM: float = param(0.0, "pM", "Lucas 2018 used 0.1-1 mM propionate/butyrate",
                           "medium SCFA", ge=0)
