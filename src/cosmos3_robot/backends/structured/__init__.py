"""The structured backend: a task's perceived state, learned dynamics, renderer and reward."""

from .backend import StructuredBackend, StructuredTask

__all__ = ["StructuredBackend", "StructuredTask"]
