"""The structured backend: a task's perceived state, learned dynamics, renderer and reward."""

from .backend import StructuredBackend, StructuredTask, advance, export_graphs

__all__ = ["StructuredBackend", "StructuredTask", "advance", "export_graphs"]
