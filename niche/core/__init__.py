"""The engine: lattice, cells, fields, movement, remodelling, the rule-set protocol, the model.

Modules (each imports only the kernels, the scenario layer and modules listed above it)::

    cells          CellStore (structure of arrays + occupancy grid), State bits, type codes
    lattice        Lattice: trabecular bone and vessels, or a culture well
    fields         FieldSolver: secretion, uptake, implicit diffusion and decay
    morphometry    BoneJ-style morphometry and surface histomorphometry of a bone mask
    changes        ChangeSet: births, deaths, differentiation, fusion, applied in batches
    motility       Motility: per-cell movement parameters and the move step
    remodel        BoneWork and the bone step (credits -> resorbed/formed voxels)
    observers      Observer: the hooks the run-file writer and progress bars implement
    rules          Rules: every hook the engine calls on a rule set
    generic_rules  GenericRules: the parameter-driven default rule set
    agents         Mesa handles over the cell arrays (one Agent class per type)
    model          Model (a mesa.Model): the schedule; the rule set is injected

The engine knows no biology: :mod:`niche.biology` is a rule set that the runner injects.
"""
from .changes import ChangeSet
from .model import Model
from .motility import Motility
from .observers import Observer
from .remodel import BoneWork
from .rules import Rules
from .generic_rules import GenericRules

__all__ = ["ChangeSet", "Model", "Motility", "Observer", "BoneWork", "Rules", "GenericRules"]
