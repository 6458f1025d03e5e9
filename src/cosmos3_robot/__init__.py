"""cosmos3-robot: a Cosmos-3-style world model as a robotics workbench."""

__version__ = "0.1.0"
