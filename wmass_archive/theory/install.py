"""Install an LHAPDF set: ``wmass-archive pdf install NAME`` and :func:`install_pdf_set`.

The name goes through the same resolution as ``--pdf`` (:mod:`.pdfnames`: ``NNPDF40``,
``NNPDF4.0`` and ``NNPDF40_nnlo_as_01180`` are one set), checked against LHAPDF's index
(``pdfsets.index``, read with ``lhapdf-management``) when the index can be fetched. The
sources are lhapdf-management's: ``$LHAPDF_CVMFSBASE`` (a local folder, used when it exists),
then ``$LHAPDF_URLBASE`` (LHAPDF's web site by default, over HTTPS), or ``url`` when given.

Verification: LHAPDF's index carries no checksums, and LHAPDF's site publishes no
``NAME.tar.gz.sha256``/``.md5`` next to its tarballs today; a checksum file there (or next to
a ``--url`` tarball) is checked when present, otherwise the output says that none was
published and the integrity rests on HTTPS and gzip's CRC. Every member of the tarball must
lie inside the set's folder ``NAME/`` (no absolute path, no ``..``, no link leading out, no
device file) and the unpacked size is capped. lhapdf-management's own ``extract_tarball``
extracts without any of these checks, so the unpacking is done here: into a temporary folder
inside the destination, then renamed to ``NAME/``, so that a failure never leaves a half set
under the final name.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

from .._optional import require
from ..archive.models import normalize_pdf_name
from ..errors import TheoryError
from ..text import printable
from .lhapdf import pdf_search_paths
from .pdfnames import LHAPDF_SETS_URL, WELL_KNOWN, lhapdf_name_to_install

__all__ = [
    "MAX_UNPACKED_BYTES",
    "PDFInstallError",
    "default_data_dir",
    "default_destination",
    "install_pdf_set",
    "resolve_install_name",
]

#: the most a set may unpack to (and its tarball weigh); LHAPDF's largest sets are ~2 GB
MAX_UNPACKED_BYTES = 8 * 1024**3
MAX_MEMBERS = 20_000
TIMEOUT_S = 60.0
FEATURE = "wmass-archive pdf install"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$")
_DIGEST_LEN = {"sha256": 64, "md5": 32}

Log = Callable[[str], None]


class PDFInstallError(TheoryError):
    """A PDF set could not be installed: unknown name, download or checksum failure, unsafe
    archive, no writable destination, already installed; one line."""


def _lhapdf_management() -> ModuleType:
    return require("lhapdf_management.management", "pdf", FEATURE)


def default_data_dir() -> Path:
    """The package's user data folder for sets: ``$XDG_DATA_HOME/wmass-archive/lhapdf``
    (``~/.local/share/wmass-archive/lhapdf`` when ``XDG_DATA_HOME`` is not set)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "wmass-archive" / "lhapdf"


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def default_destination() -> Path:
    """The first writable folder of ``LHAPDF_DATA_PATH`` (``LHAPATH``), else
    :func:`default_data_dir` (created); :class:`PDFInstallError` when neither is writable."""
    for folder in pdf_search_paths():
        if _writable(folder):
            return folder
    fallback = default_data_dir()
    try:
        fallback.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PDFInstallError(
            f"no writable destination: no folder of LHAPDF_DATA_PATH is writable and "
            f"{fallback} cannot be created ({exc.strerror}); pass --dest DIR"
        ) from None
    if not _writable(fallback):
        raise PDFInstallError(
            f"no writable destination: no folder of LHAPDF_DATA_PATH is writable, nor {fallback};"
            " pass --dest DIR"
        )
    return fallback


# ------------------------------------------------------------------------------ sources
def _sources(url: str | None) -> list[str]:
    """Base URLs (ending in '/') or one tarball URL, tried in order."""
    if url:
        return [url if url.endswith((".tar.gz", ".tgz", "/")) else url + "/"]
    conf = require("lhapdf_management.configuration", "pdf", FEATURE)
    out = []
    cvmfs = Path(os.environ.get("LHAPDF_CVMFSBASE", conf.CVMFSBASE))
    if cvmfs.is_dir():
        out.append(cvmfs.resolve().as_uri() + "/")
    web = os.environ.get("LHAPDF_URLBASE")
    out.append(web if web else LHAPDF_SETS_URL + "/")
    return [s if s.endswith("/") else s + "/" for s in out]


def _fail_reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}"


def _open(url: str):  # noqa: ANN202 (an http.client.HTTPResponse or a file response)
    return urllib.request.urlopen(url, timeout=TIMEOUT_S)  # noqa: S310


def _fetch_index(base: str) -> list[str] | None:
    """The set names of LHAPDF's ``pdfsets.index`` at ``base``, or None when it cannot be read
    (the name is then resolved without it)."""
    management = _lhapdf_management()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pdfsets.index"
        try:
            with _open(base + "pdfsets.index") as resp:
                path.write_bytes(resp.read(64 * 1024**2))
            return [s.name for s in management.get_reference_list(path)]
        except (OSError, ValueError, urllib.error.URLError):
            return None


def resolve_install_name(name: str, index: Sequence[str] | None = None) -> str:
    """The LHAPDF set ``name`` means (:func:`.pdfnames.lhapdf_name_to_install`), checked
    against LHAPDF's ``index`` when given (exact, loose, or unique-prefix match);
    :class:`PDFInstallError` with suggestions when nothing matches."""
    shown = printable(name, max_len=80)
    target = lhapdf_name_to_install(name)
    pool = list(index) if index else [*WELL_KNOWN, *WELL_KNOWN.values()]
    if index:
        loose = normalize_pdf_name(target or name)
        for match in (
            [n for n in index if n == (target or name)],
            [n for n in index if normalize_pdf_name(n) == loose],
            [n for n in index if loose and normalize_pdf_name(n).startswith(loose)],
        ):
            if len(match) == 1:
                return match[0]
            if len(match) > 1:
                raise PDFInstallError(
                    f"PDF set name '{shown}' is ambiguous: {', '.join(match[:8])}; name one"
                )
        target = None
    if target is not None and _SAFE_NAME.match(target):
        return target
    where = "in LHAPDF's index" if index else "a CMS short name nor an LHAPDF name (index unread)"
    msg = f"unknown PDF set '{shown}': not {where}"
    loose_pool = {normalize_pdf_name(n): n for n in reversed(pool)}
    close = [
        loose_pool[n]
        for n in difflib.get_close_matches(normalize_pdf_name(name), loose_pool, n=3, cutoff=0.5)
    ]
    if close:
        msg += f"; did you mean {' or '.join(close)}?"
    raise PDFInstallError(msg)


# ------------------------------------------------------------------------------ download
def _download(url: str, dest: Path, *, progress: bool, max_bytes: int) -> dict[str, Any]:
    """``url`` into ``dest`` (a tqdm bar on stderr when ``progress``); the sha256 and md5
    digests of what was written."""
    from tqdm.auto import tqdm

    digests = {"sha256": hashlib.sha256(), "md5": hashlib.md5(usedforsecurity=False)}
    with _open(url) as resp, dest.open("wb") as out:
        total = int(resp.headers.get("Content-Length") or 0) or None
        if total is not None and total > max_bytes:
            raise PDFInstallError(f"{url} is {total} bytes, over the cap of {max_bytes}")
        bar = tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=dest.name,
            disable=not progress,
            file=sys.stderr,
            leave=False,
        )
        with bar:
            done = 0
            while chunk := resp.read(1 << 20):
                done += len(chunk)
                if done > max_bytes:
                    raise PDFInstallError(f"{url} is over the cap of {max_bytes} bytes")
                out.write(chunk)
                for d in digests.values():
                    d.update(chunk)
                bar.update(len(chunk))
    return digests


def _published_checksum(tar_url: str) -> tuple[str, str, str] | None:
    """(algorithm, hex digest, its URL) from ``TARBALL.sha256`` or ``.md5`` next to the
    tarball, or None when neither exists."""
    for algo, size in _DIGEST_LEN.items():
        url = f"{tar_url}.{algo}"
        try:
            with _open(url) as resp:
                text = resp.read(4096).decode("ascii", "replace")
        except urllib.error.HTTPError as exc:
            if exc.code in (403, 404, 410):
                continue
            raise PDFInstallError(f"cannot download {url}: {_fail_reason(exc)}") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, FileNotFoundError) or "No such file" in str(exc.reason):
                continue
            raise PDFInstallError(f"cannot download {url}: {_fail_reason(exc)}") from None
        token = text.split()[0].lower() if text.split() else ""
        if not re.fullmatch(f"[0-9a-f]{{{size}}}", token):
            raise PDFInstallError(f"checksum file {url} does not hold a {algo} digest")
        return algo, token, url
    return None


# ------------------------------------------------------------------------------ unpacking
def _check_members(tar: tarfile.TarFile, set_name: str, max_bytes: int) -> None:
    """Refuse a tarball with a member outside ``set_name/`` (absolute, ``..``, a link leading
    out, not a file/folder/link), too many members, or an unpacked size over ``max_bytes``."""
    total = 0
    members = tar.getmembers()
    if len(members) > MAX_MEMBERS:
        raise PDFInstallError(f"unsafe archive: {len(members)} members (cap {MAX_MEMBERS})")
    seen_info = False

    def inside(path: str) -> bool:
        p = PurePosixPath(path)
        if not p.parts or path.startswith("/") or p.is_absolute() or "\\" in path:
            return False
        parts = [x for x in p.parts if x != "."]
        depth = 0
        for part in parts:
            depth += -1 if part == ".." else 1
            if depth < 1:
                return False
        return bool(parts) and parts[0] == set_name and ".." not in parts

    for m in members:
        shown = printable(m.name, max_len=120)
        if not inside(m.name):
            raise PDFInstallError(f"unsafe archive: member '{shown}' is outside {set_name}/")
        if m.issym():
            target = os.path.normpath(os.path.join(os.path.dirname(m.name), m.linkname))
            if m.linkname.startswith("/") or not inside(target):
                raise PDFInstallError(f"unsafe archive: link '{shown}' leads outside {set_name}/")
        elif m.islnk():
            if not inside(os.path.normpath(m.linkname)):
                raise PDFInstallError(f"unsafe archive: link '{shown}' leads outside {set_name}/")
        elif not (m.isfile() or m.isdir()):
            raise PDFInstallError(f"unsafe archive: member '{shown}' is not a file or folder")
        total += max(m.size, 0)
        if total > max_bytes:
            raise PDFInstallError(f"unsafe archive: unpacks to over {max_bytes} bytes")
        seen_info |= PurePosixPath(m.name) == PurePosixPath(set_name, f"{set_name}.info")
    if not seen_info:
        raise PDFInstallError(f"the tarball holds no {set_name}/{set_name}.info: not that set")


def _unpack(tarball: Path, into: Path, set_name: str, max_bytes: int) -> Path:
    try:
        with tarfile.open(tarball, "r:*") as tar:
            _check_members(tar, set_name, max_bytes)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(into, filter="data")
            else:  # pragma: no cover (Python < 3.10.12/3.11.4; members were checked above)
                tar.extractall(into)  # noqa: S202
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, PDFInstallError):
            raise
        raise PDFInstallError(f"cannot unpack {tarball.name}: {_fail_reason(exc)}") from None
    return into / set_name


# ------------------------------------------------------------------------------ install
def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def install_pdf_set(
    name: str,
    dest: str | os.PathLike[str] | None = None,
    *,
    url: str | None = None,
    progress: bool = True,
    force: bool = False,
    log: Log | None = None,
    max_bytes: int = MAX_UNPACKED_BYTES,
) -> Path:
    """Download, verify and unpack the LHAPDF set ``name`` (any name ``--pdf`` takes) into
    ``dest`` (default :func:`default_destination`); returns the set's folder ``dest/NAME``.
    ``url``: a base URL holding ``NAME.tar.gz`` or a tarball's URL. ``log`` gets the
    progress lines (default: stderr when ``progress``). See the module docstring for what
    is verified; every failure is one :class:`PDFInstallError` line."""
    say: Log = log or (_stderr if progress else (lambda _line: None))
    _lhapdf_management()  # the extra, or its one-line error, before any download
    sources = _sources(url)
    if sources[-1].endswith((".tar.gz", ".tgz")) or normalize_pdf_name(name) in WELL_KNOWN:
        set_name = resolve_install_name(name)
    else:
        set_name = resolve_install_name(name, _fetch_index(sources[-1]))
    folder = Path(dest).expanduser() if dest is not None else default_destination()
    if not _writable(folder):
        raise PDFInstallError(f"no writable destination: {folder} is not a writable folder")
    final = folder / set_name
    if final.exists() and not force:
        raise PDFInstallError(f"{set_name} is already installed in {final}; --force reinstalls")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{set_name}.partial-", dir=folder))
    except OSError as exc:
        raise PDFInstallError(f"no writable destination: {folder}: {exc.strerror}") from None
    try:
        tarball = tmp / f"{set_name}.tar.gz"
        errors = []
        for src in sources:
            tar_url = src if src.endswith((".tar.gz", ".tgz")) else f"{src}{set_name}.tar.gz"
            say(f"downloading {tar_url}")
            try:
                digests = _download(tar_url, tarball, progress=progress, max_bytes=max_bytes)
                break
            except (OSError, urllib.error.URLError) as exc:
                errors.append(f"{tar_url}: {_fail_reason(exc)}")
        else:
            raise PDFInstallError(f"cannot download {set_name}: {'; '.join(errors)}")
        published = _published_checksum(tar_url)
        if published is None:
            say(
                f"checksum: none published for {tar_url} (.sha256/.md5): not verified beyond "
                "the transport and gzip's CRC"
            )
        else:
            algo, want, sum_url = published
            got = digests[algo].hexdigest()
            if got != want:
                raise PDFInstallError(
                    f"checksum mismatch for {tar_url}: {algo} {got}, {sum_url} says {want}"
                )
            say(f"checksum: {algo} verified against {sum_url}")
        unpacked = _unpack(tarball, tmp / "unpacked", set_name, max_bytes)
        _replace(unpacked, final, tmp, force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not any(_same(folder, p) for p in pdf_search_paths()):
        say(f"{folder} is not on LHAPDF_DATA_PATH: add it there, or pass --pdf-path {folder}")
    return final


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _replace(new: Path, final: Path, tmp: Path, force: bool) -> None:
    """Rename ``new`` to ``final`` (an existing ``final`` moved aside first when ``force``,
    and put back if the rename fails)."""
    old = tmp / "previous"
    try:
        if final.exists() and force:
            os.rename(final, old)
        os.rename(new, final)
    except OSError as exc:
        if old.exists() and not final.exists():
            os.rename(old, final)
        raise PDFInstallError(f"cannot move the set to {final}: {exc.strerror}") from None
