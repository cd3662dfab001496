"""Folders of images, .txt texts or audio files: one sub-folder per class, or files directly inside (unlabelled)."""

from __future__ import annotations

import os
from pathlib import Path

from headstart.data.audio import AUDIO_EXTENSIONS, check_audios
from headstart.data.dataset import DataIssue, Dataset, Modality
from headstart.data.images import IMAGE_EXTENSIONS, check_images
from headstart.data.validate import decode_text, finish
from headstart.errors import DataError

TEXT_EXTENSIONS = frozenset({".txt"})
FOLDER_TASK = "label"

# never data: skipped without a word (hidden files and folders, whose names start with ".", are skipped too)
_JUNK_FILES = frozenset({"thumbs.db", "desktop.ini", "icon\r"})
_JUNK_DIRS = frozenset({"__macosx", "__pycache__"})
# documentation lying beside the class folders, not a misplaced item
_DOC_PREFIXES = ("readme", "license", "licence", "citation", "changelog")


def _is_junk(name: str) -> bool:
    return name.startswith(".") or name.lower() in _JUNK_FILES


def _is_doc(name: str) -> bool:
    lower = name.lower()
    return lower.startswith(_DOC_PREFIXES) or lower.endswith(".md")


def _walk(root: Path) -> list[Path]:
    """Every non-junk file under `root`, sorted by relative path (POSIX form) so that the order is the same on
    every machine."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d.lower() not in _JUNK_DIRS]
        found.extend(Path(folder, f) for f in files if not _is_junk(f))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _pick_modality(files: list[Path], modality: Modality | None, source: str) -> Modality:
    n_image = sum(p.suffix.lower() in IMAGE_EXTENSIONS for p in files)
    n_text = sum(p.suffix.lower() in TEXT_EXTENSIONS for p in files)
    n_audio = sum(p.suffix.lower() in AUDIO_EXTENSIONS for p in files)
    if not n_image and not n_text and not n_audio:
        kinds = ", ".join(sorted(IMAGE_EXTENSIONS))
        sounds = ", ".join(sorted(AUDIO_EXTENSIONS))
        raise DataError(
            f"{source}: no image files ({kinds}), text files (.txt) or audio files ({sounds}) found in this folder"
        )
    counts = {"image": n_image, "text": n_text, "audio": n_audio}
    held = max(counts, key=lambda k: counts[k])
    names = {"image": "image files", "text": "text files (.txt)", "audio": "audio files"}
    if modality is not None and not counts[modality]:
        raise DataError(
            f"{source}: this folder holds {names[held]}, not {names[modality]} (modality {modality!r} was asked)"
        )
    return modality or held


def load_folder(
    root: Path,
    *,
    modality: Modality | None = None,
    strict: bool = False,
    source: str | None = None,
    where_root: str | None = None,
    fallback_encoding: str | None = None,
) -> Dataset:
    """Load a folder of images or texts.

    With sub-folders, each one is a class (its name the label, task "label"; files nested deeper belong to
    the top sub-folder); files lying beside the class folders are reported as issues. Without sub-folders the
    files form an unlabelled dataset. `where` names read `<where_root>/<relative path>`, where_root defaulting
    to the folder's name. `fallback_encoding` decodes texts that are not UTF-8 (for bundled samples only).
    """
    source = source or str(root)
    where_root = where_root or root.name
    if not any(True for _ in root.iterdir()):
        raise DataError(f"{source}: the folder is empty")
    files = _walk(root)
    labelled = any(p.parent != root for p in files)

    issues: list[DataIssue] = []
    candidates: list[tuple[Path, str | None, str]] = []  # (path, label, where)
    for path in files:
        rel = path.relative_to(root)
        where = f"{where_root}/{rel.as_posix()}"
        if labelled and len(rel.parts) == 1:
            if not _is_doc(path.name):
                issues.append(DataIssue(where, "not inside a class folder (each class needs its own sub-folder)"))
            continue
        candidates.append((path, rel.parts[0] if labelled else None, where))

    modality = _pick_modality([p for p, _, _ in candidates], modality, source)
    wanted = {"image": IMAGE_EXTENSIONS, "text": TEXT_EXTENSIONS, "audio": AUDIO_EXTENSIONS}[modality]
    kept: list[tuple[Path, str | None, str]] = []
    for path, label, where in candidates:
        if path.suffix.lower() in wanted:
            kept.append((path, label, where))
        else:
            ext = path.suffix.lower() or "no extension"
            kind = {"image": "an image", "text": "a text", "audio": "an audio"}[modality]
            issues.append(DataIssue(where, f"not {kind} file ({ext})"))

    items: list[object] = []
    labels: list[str] = []
    wheres: list[str] = []
    if modality in ("image", "audio"):
        base = root.resolve()
        check = check_images if modality == "image" else check_audios
        problems = check([p for p, _, _ in kept])
        for (path, label, where), problem in zip(kept, problems, strict=True):
            if problem:
                issues.append(DataIssue(where, problem))
                continue
            items.append(base / path.relative_to(root))
            labels.append(label or "")
            wheres.append(where)
    else:
        for path, label, where in kept:
            text, problem = _read_text(path, fallback_encoding)
            if problem:
                issues.append(DataIssue(where, problem))
                continue
            items.append(text)
            labels.append(label or "")
            wheres.append(where)

    issues.sort(key=lambda issue: issue.where)
    targets = {FOLDER_TASK: labels} if labelled else {}
    ds = Dataset(modality=modality, items=items, targets=targets, where=wheres, source=source, issues=issues)
    return finish(ds, strict)


def _read_text(path: Path, fallback_encoding: str | None) -> tuple[str | None, str | None]:
    try:
        data = path.read_bytes()
    except OSError as e:
        return None, f"cannot read the file ({e.strerror or e})"
    text, problem = decode_text(data)
    if problem and fallback_encoding and problem.startswith("not valid UTF-8"):
        return decode_text(data.decode(fallback_encoding, errors="replace").encode("utf-8"))
    return text, problem
