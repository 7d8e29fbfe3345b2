"""Datasets: loading and validation, synthetic purchase orders, and the numbers people write in them.

Light to import: pandas, pyarrow and datasets load only inside the functions that need them.
"""

from jsontune.data.loading import load_records
from jsontune.data.records import InputColumns, LoadResult, Record

__all__ = ["InputColumns", "LoadResult", "Record", "load_records"]
