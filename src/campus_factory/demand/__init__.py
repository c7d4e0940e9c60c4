"""Demand: what is waiting in the pool's schedds."""

from .base import DemandSource, JobGroup, group_id_for
from .fake import FileDemand, StaticDemand

__all__ = ["DemandSource", "FileDemand", "JobGroup", "StaticDemand", "group_id_for"]
