"""The command line: ``smoothcert train | certify | analyze | demo`` (:func:`main`)."""
from .main import main

__all__ = ["main"]
