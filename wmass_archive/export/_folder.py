"""Folders an export writes: it replaces only a folder it can prove it wrote.

Every export folder holds a manifest, :data:`MANIFEST` (JSON: ``tool``, ``version``,
``command``, ``created`` and ``files``: the relative path, SHA-256 and size in bytes of each
file the export wrote). A later export replaces a folder only when it is new, empty, or holds
exactly the files of its manifest with those hashes and sizes, nothing else (a file of the
manifest that was deleted since is fine: nothing of the user's is lost). Anything else is
refused in one line naming the folder and the first entry (sorted) that the export did not
write or that changed; ``overwrite=True`` (``--overwrite``) replaces it anyway, but never a
folder that holds the input archive, the working folder or the home folder, and never deletes
anything outside the output folder (symbolic links are removed, never followed).

The new folder is written into a hidden sibling (``.<name>.tmp-<pid>-<hex>``), its manifest
last, and swapped into place with two renames (:func:`install_folder`): a crash while writing
leaves the previous export untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..interop._common import ExportError

#: name of the manifest file inside an export folder
MANIFEST = ".wmass-archive-export.json"
TOOL = "wmass-archive"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_OVERWRITE_HINT = "--overwrite replaces it anyway"


def _sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _entries(folder: Path) -> list[tuple[str, Path]]:
    """Every entry under ``folder`` (files, folders, links; links not followed) as (relative
    POSIX path, path), sorted by relative path."""
    out: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            p = Path(root) / name
            out.append((p.relative_to(folder).as_posix(), p))
    return sorted(out)


def _read_manifest(out: Path) -> dict[str, tuple[str, int]] | str:
    """{relative path: (sha256, bytes)} of the manifest in ``out``, or why it cannot be used."""
    m = out / MANIFEST
    if m.is_symlink() or not m.is_file():
        return f"no {MANIFEST}"
    try:
        doc = json.loads(m.read_text(encoding="utf-8"))
        if doc.get("tool") != TOOL:
            return f"its {MANIFEST} is not {TOOL}'s"
        files: dict[str, tuple[str, int]] = {}
        for f in doc["files"]:
            rel, sha, size = f["path"], f["sha256"], f["bytes"]
            ok = isinstance(rel, str) and isinstance(sha, str) and type(size) is int
            parts = Path(rel).parts if isinstance(rel, str) else ()
            if not ok or not parts or Path(rel).is_absolute() or ".." in parts:
                return f"its {MANIFEST} lists a bad entry"
            if not _HEX64.fullmatch(sha) or rel == MANIFEST:
                return f"its {MANIFEST} lists a bad entry"
            files[rel] = (sha, size)
        return files
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError):
        return f"its {MANIFEST} does not parse"


def foreign_entry(out: Path) -> str | None:
    """Why ``out`` (an existing, non-empty folder) is not an export this tool may replace: one
    phrase naming the first entry it did not write or that changed; None when it may."""
    files = _read_manifest(out)
    entries = [(rel, p) for rel, p in _entries(out) if rel != MANIFEST]
    if isinstance(files, str):
        first = entries[0][0] if entries else MANIFEST
        return f"it holds {first}, which wmass-archive did not write ({files})"
    dirs = {str(Path(rel).parent.as_posix()) for rel in files}
    dirs = {d2 for d in dirs for d2 in _parents(d)}
    for rel, p in entries:
        if p.is_symlink():
            return f"it holds {rel}, a symbolic link wmass-archive did not write"
        if p.is_dir():
            if rel not in dirs:
                return f"it holds {rel}/, which wmass-archive did not write"
            continue
        if rel not in files:
            return f"it holds {rel}, which the previous export did not write (not in {MANIFEST})"
        sha, size = files[rel]
        if not p.is_file() or p.stat().st_size != size or _sha256(p) != sha:
            return f"{rel} changed since the previous export wrote it"
    return None


def _parents(rel: str) -> list[str]:
    """'a/b/c' -> ['a/b/c', 'a/b', 'a'] ('.' -> [])."""
    parts = Path(rel).parts
    return ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def check_replaceable(
    out: Path, *, overwrite: bool = False, protect: tuple[Path, ...] = ()
) -> None:
    """Raise :class:`ExportError` (one line) unless the folder ``out`` is new, empty, a
    previous export of this tool (its manifest matches), or ``overwrite`` is set; ``protect``:
    paths (e.g. the input archive) that must not lie inside a folder being replaced, even with
    ``overwrite``."""
    if out.is_symlink():
        if not overwrite:
            raise ExportError(
                f"refusing to replace {out}: it is a symbolic link, which wmass-archive did not "
                f"write; {_OVERWRITE_HINT} (the link only, not what it points to)"
            )
        return
    if out.exists() and not out.is_dir():
        raise ExportError(f"cannot write the export folder {out}: it is a file")
    if not out.is_dir() or not any(out.iterdir()):
        return
    real = out.resolve()
    guarded = [Path.cwd(), Path.home(), *protect]
    for g in guarded:
        try:
            g = g.resolve()
        except OSError:  # pragma: no cover - a vanished working folder
            continue
        if g == real or real in g.parents:
            raise ExportError(
                f"refusing to replace {out}: it holds {g} (the input archive, the working "
                "folder or the home folder), even with --overwrite; choose another folder"
            )
    if overwrite:
        return
    why = foreign_entry(out)
    if why is not None:
        raise ExportError(f"refusing to replace {out}: {why}; {_OVERWRITE_HINT}")


def staging_folder(out: Path) -> Path:
    """Create and return the hidden sibling ``.<name>.tmp-<pid>-<hex>`` of ``out`` in which
    the new export is written."""
    parent = out.absolute().parent
    if not parent.is_dir():
        raise ExportError(f"cannot write the export folder {out}: folder {parent} does not exist")
    staging = parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        staging.mkdir()
    except PermissionError:
        raise ExportError(
            f"cannot write the export folder {out}: permission denied in {parent}"
        ) from None
    except OSError as exc:
        raise ExportError(f"cannot write the export folder {out}: {exc.strerror or exc}") from None
    return staging


def write_manifest(folder: Path, command: str) -> dict[str, Any]:
    """Write :data:`MANIFEST` into ``folder`` listing every file under it (relative path,
    SHA-256, bytes); ``command``: what wrote it (e.g. ``"export hepdata"``). Returns the
    manifest. Call it last, once every file of the export is written."""
    from .._version import __version__

    files = []
    for rel, p in _entries(folder):
        if rel == MANIFEST or p.is_dir():
            continue
        if p.is_symlink():
            raise ExportError(f"the export wrote a symbolic link {rel}: not allowed")
        files.append({"path": rel, "sha256": _sha256(p), "bytes": p.stat().st_size})
    doc = {
        "tool": TOOL,
        "version": __version__,
        "command": command,
        "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "note": "files this tool wrote; it replaces the folder only while they are unchanged",
        "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return doc


def install_folder(
    staging: Path, out: Path, *, overwrite: bool = False, protect: tuple[Path, ...] = ()
) -> None:
    """Move the finished ``staging`` folder to ``out``: checks ``out`` again
    (:func:`check_replaceable`: a file may have appeared during the export), moves the previous
    folder aside, renames ``staging`` into place and only then deletes the previous one (a
    symbolic link is unlinked, never followed)."""
    check_replaceable(out, overwrite=overwrite, protect=protect)
    old = None
    if out.is_symlink() or out.exists():
        old = out.absolute().parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        os.replace(out, old)
    try:
        os.replace(staging, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        if old.is_symlink():
            old.unlink()
        else:
            shutil.rmtree(old, ignore_errors=True)


def remove_staging(staging: Path) -> None:
    """Delete a staging folder this module created (after a failure)."""
    if staging.is_dir() and not staging.is_symlink():
        shutil.rmtree(staging, ignore_errors=True)
