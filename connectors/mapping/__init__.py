"""Declarative mappings: YAML files validated into typed models and compiled once at start."""

from connectors.mapping.compiled import Mapping, Winner, load_mapping
from connectors.mapping.source import MappingError

__all__ = ["Mapping", "MappingError", "Winner", "load_mapping"]
