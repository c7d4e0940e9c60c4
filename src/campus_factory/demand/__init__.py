"""Demand: what is waiting in the pool's schedds."""

from ..domain import JobGroup, group_id_for
from .base import DemandSource
from .fake import FileDemand, StaticDemand

__all__ = ["DemandSource", "FileDemand", "JobGroup", "StaticDemand", "group_id_for"]
