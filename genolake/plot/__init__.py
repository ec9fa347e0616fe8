"""Figures of the API's tables (matplotlib, the ``plot`` extra: ``pip install 'genolake[plot]'``).

Each function takes a table the API returns and gives back a ``matplotlib.figure.Figure`` (no pyplot state, no
display needed); matplotlib is imported only when a figure is drawn, and a missing matplotlib is an error naming
the extra.

- frequencies (:mod:`genolake.plot.frequencies`): :func:`af_spectrum`, :func:`af_compare`,
  :func:`carriers_by_phenotype`;
- association (:mod:`genolake.plot.assoc`): :func:`manhattan`, :func:`qq`, :func:`save_assoc_plot` (what
  ``genolake query assoc --plot`` writes).
"""

from genolake.plot.assoc import GENOME_WIDE, SUGGESTIVE, manhattan, qq, require_matplotlib, save_assoc_plot
from genolake.plot.frequencies import af_compare, af_spectrum, carriers_by_phenotype

__all__ = ["GENOME_WIDE", "SUGGESTIVE", "af_compare", "af_spectrum", "carriers_by_phenotype", "manhattan", "qq",
           "require_matplotlib", "save_assoc_plot"]
