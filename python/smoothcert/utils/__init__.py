"""Small helpers shared across layers (progress reporting)."""
from .progress_bars import progress

__all__ = ["progress"]
