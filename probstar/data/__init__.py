"""Readers, the observation container and the fixed split."""

from .gaia_archive import read_gaia_xp_continuous
from .library import load_library, load_split
from .observations import InvalidValueError, Observations
from .split import split_mask
from .tables import TableError, from_columns, read_table

__all__ = ["Observations", "InvalidValueError", "TableError", "read_table", "from_columns",
           "load_library", "load_split", "split_mask", "read_gaia_xp_continuous"]
