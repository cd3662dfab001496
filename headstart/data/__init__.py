"""Data sources -> Datasets: image and text folders, CSV/TSV/JSONL/Parquet tables, in-memory arrays and
bundled sample sets, validated item by item, with deterministic stratified splits.

Light on purpose: no torch here, and pandas, PIL and scikit-learn are imported only when data is loaded.
"""

from headstart.data.arrays import from_arrays
from headstart.data.dataset import DataIssue, Dataset
from headstart.data.images import load_image
from headstart.data.load import load_data
from headstart.data.samples import SAMPLES
from headstart.data.split import split

__all__ = ["SAMPLES", "DataIssue", "Dataset", "from_arrays", "load_data", "load_image", "split"]
