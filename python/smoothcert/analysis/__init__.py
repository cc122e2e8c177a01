"""The analysis layer: summaries, tables and plots of certification results.

Reads the result TSV written by ``smoothcert certify`` (see ``docs/formats.md``), and also
Cohen et al.'s six-column ``certify.py`` output. Only numpy and the stdlib are imported at
module load; matplotlib is imported inside :func:`plot_certified_accuracy`.

Printed numbers are truncated (rounded down) to 3 decimals, never rounded up.
"""
from .metrics import (abstain_rate, average_certified_radius, best_of, certified_accuracy, default_radii,
                      summarize)
from .plot import plot_certified_accuracy
from .results import COHEN_KIND, load_results
from .tables import to_csv, to_markdown

__all__ = ["abstain_rate", "average_certified_radius", "best_of", "certified_accuracy", "default_radii", "summarize",
           "plot_certified_accuracy", "COHEN_KIND", "load_results", "to_csv", "to_markdown"]
