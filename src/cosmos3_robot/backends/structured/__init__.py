"""The structured backend: a task's perceived state, learned dynamics, renderer and reward."""

from .backend import StructuredBackend, StructuredTask, export_graphs

__all__ = ["StructuredBackend", "StructuredTask", "export_graphs"]
