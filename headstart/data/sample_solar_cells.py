"""`samples:solar-cells`: photos of solar cells, functional to defective, from the PyPI package `elpv-dataset`.

The ELPV data set (Buerhop-Lutz et al., 2018; Deitsch et al., 2019): 2,624 electroluminescence (EL) photos of
single solar cells cut out of 44 photovoltaic modules, 300 x 300 px, 8-bit grayscale, mono- and polycrystalline.
Experts rated each cell's probability of being defective as 0, 1/3, 2/3 or 1; the sample's four classes are those
ratings: "functional" (1,508), "possibly-defective" (295), "likely-defective" (106), "defective" (715).
A real few-label inspection task: small, imbalanced, with fine visual differences between classes.

The images are files inside the installed package (`elpv_dataset/data/images/cellNNNN.png`), listed with their
ratings in `elpv_dataset/data/labels.csv`; items are those paths, so nothing is decoded until it is used.
The package is located without being imported. Data licence: CC BY-NC-SA 4.0 (non-commercial use).
"""

from __future__ import annotations

from pathlib import Path

from headstart.data.dataset import DataIssue, Dataset
from headstart.errors import DataError

SOURCE = "samples:solar-cells"
PACKAGE = "elpv_dataset"
PIP_NAME = "elpv-dataset"
# the expert rating (probability of a defect, in thirds) -> class name
CLASSES: dict[int, str] = {0: "functional", 1: "possibly-defective", 2: "likely-defective", 3: "defective"}
N_ITEMS = 2624


def data_folder() -> Path:
    """`elpv_dataset/data` of the installed package: `labels.csv` and `images/`."""
    from headstart.data.packaged import package_folder

    folder = package_folder(PACKAGE, PIP_NAME, SOURCE) / "data"
    if not (folder / "labels.csv").is_file():
        raise DataError(f"{SOURCE}: the {PIP_NAME} package has no file {folder / 'labels.csv'}")
    return folder


def load_solar_cells() -> Dataset:
    """Every rated cell, in the package's order (cell0001 ..), label = its class; missing image files are listed."""
    folder = data_folder()
    items: list[Path] = []
    labels: list[str] = []
    wheres: list[str] = []
    issues: list[DataIssue] = []
    for n, line in enumerate((folder / "labels.csv").read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3:
            raise DataError(f"{SOURCE}: labels.csv line {n} is not 'path probability type': {line!r}")
        rel, probability, _cell_type = fields
        try:
            thirds = round(float(probability) * 3)
        except ValueError:
            raise DataError(f"{SOURCE}: labels.csv line {n} has no probability: {line!r}") from None
        if thirds not in CLASSES or abs(float(probability) * 3 - thirds) > 1e-6:
            raise DataError(f"{SOURCE}: labels.csv line {n}: unexpected defect probability {probability}")
        where = f"{SOURCE}/{rel}"
        path = folder / rel
        if not path.is_file():
            issues.append(DataIssue(where, "image file missing from the installed package"))
            continue
        items.append(path)
        labels.append(CLASSES[thirds])
        wheres.append(where)
    return Dataset(modality="image", items=items, targets={"label": labels}, where=wheres, source=SOURCE, issues=issues)
