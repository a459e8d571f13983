"""Text that is safe to show: archive strings on a terminal, in a log, on a plot, in a file name.

An archive is untrusted input: anyone can edit its metadata and recompute its checksums. Its
titles, descriptions, labels, units and names can therefore hold terminal escape sequences
(``ESC ] 0 ; ... BEL`` sets the window title, ``ESC [ 2 J`` clears the screen), carriage
returns and newlines that forge output lines, NUL bytes, bidi overrides (U+202E) that reorder
what is shown, lone surrogates that cannot be encoded, and separators or ``..`` that escape an
output folder. Everything here is standard library only (cheap to import anywhere).

* :func:`printable`: one line of text, every unsafe character escaped visibly (``\\x1b``,
  ``\\n``, ``\\u202e``), backslash doubled so that the escaping is unambiguous;
* :func:`printable_lines`: a block of such lines (a report, a summary);
* :func:`plot_text`: the same for matplotlib, with ``$`` escaped so that no name is mathtext;
* :func:`safe_filename`: a single bounded path component, ``[A-Za-z0-9._+-]`` only, with a
  hash of the original appended whenever it had to be changed (distinct names stay distinct).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable

__all__ = [
    "UNSAFE_CATEGORIES",
    "has_unsafe_chars",
    "plot_text",
    "printable",
    "printable_lines",
    "safe_filename",
]

#: Unicode general categories never written raw: controls (C0, DEL, C1, incl. newline and tab),
#: format characters (bidi overrides, zero-width), line/paragraph separators, lone surrogates,
#: private use and unassigned code points
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
#: what the writer refuses in names and titles (private-use and unassigned characters are
#: only escaped on output: a newer Unicode may assign them)
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
_ELLIPSIS = "..."


def _escape_char(c: str) -> str:
    """``c`` as it is shown: unchanged when safe, else a Python-style escape."""
    if c in _SHORT:
        return _SHORT[c]
    return _escape_unsafe(c)


def _escape_unsafe(c: str) -> str:
    """``c`` unchanged unless it is in :data:`UNSAFE_CATEGORIES` (or a newline, a tab)."""
    if c in _SHORT and c != "\\":
        return _SHORT[c]
    if unicodedata.category(c) not in UNSAFE_CATEGORIES:
        return c
    n = ord(c)
    if n < 0x100:
        return f"\\x{n:02x}"
    if n < 0x10000:
        return f"\\u{n:04x}"
    return f"\\U{n:08x}"


def printable(s: object, *, max_len: int | None = None, backslash: bool = True) -> str:
    """``str(s)`` as one line that is safe on a terminal: every character of the categories
    :data:`UNSAFE_CATEGORIES` is escaped the way Python writes it (``\\x1b``, ``\\n``,
    ``\\u202e``, ``\\x00``) and a backslash becomes ``\\\\``; plain printable ASCII without a
    backslash passes unchanged. ``max_len``: cut to at most that many characters, ending in
    ``...`` (an escape is never cut in two). ``backslash=False`` leaves backslashes as they
    are, for text whose backslashes mean something (LaTeX in a HEPData record): no control
    character gets through either way, but the escaping is no longer reversible."""
    text = s if isinstance(s, str) else str(s)
    escape = _escape_char if backslash else _escape_unsafe
    if text.isascii() and text.isprintable() and (not backslash or "\\" not in text):
        out = text  # the fast path
    else:
        out = "".join(map(escape, text))
    if max_len is None or len(out) <= max_len:
        return out
    return _cut(text, max_len, escape)


def printable_lines(lines: Iterable[object], *, backslash: bool = True) -> str:
    """The lines, each made :func:`printable`, joined by newlines: a block of text whose only
    line breaks are its own (a newline inside a line shows as ``\\n``)."""
    return "\n".join(printable(line, backslash=backslash) for line in lines)


def _cut(text: str, max_len: int, escape: Callable[[str], str] = _escape_char) -> str:
    """The escaped ``text`` cut to ``max_len`` characters ending in '...', whole escapes only."""
    room = max(max_len - len(_ELLIPSIS), 0)
    pieces: list[str] = []
    used = 0
    for c in text:
        e = escape(c)
        if used + len(e) > room:
            break
        pieces.append(e)
        used += len(e)
    return "".join(pieces) + _ELLIPSIS[: max(max_len, 0)]


def has_unsafe_chars(s: str, categories: frozenset[str] = REFUSED_CATEGORIES) -> str | None:
    """The first character of ``s`` in one of ``categories`` (by default the ones the writer
    refuses), or None."""
    if s.isascii() and s.isprintable():
        return None
    return next((c for c in s if unicodedata.category(c) in categories), None)


def plot_text(s: object, *, max_len: int | None = 120) -> str:
    """:func:`printable` for a matplotlib text (title, axis label, tick label, legend entry):
    ``$`` becomes ``\\$`` so that matplotlib never parses the text as mathtext (an archive
    name such as ``$\\frac{`` would make drawing fail) and shows a plain ``$`` instead;
    cut at ``max_len`` characters (None: never)."""
    out = printable(s, max_len=max_len)
    return out.replace("$", "\\$") if "$" in out else out


_KEEP = re.compile(r"[^A-Za-z0-9._+\-]")
_DOTS = re.compile(r"\.{2,}")
_HASHED = re.compile(r"-[0-9a-f]{8}$")
_HASH_LEN = 8


def safe_filename(name: str, *, max_len: int = 80) -> str:
    """``name`` as one file-name component that is safe on every system: only
    ``[A-Za-z0-9._+-]`` (any other character becomes ``_``), never empty, never starting with
    '.' and never holding '..', never ending with '.', at most ``max_len`` characters (at
    least 16). A name that is already such a component passes unchanged; any other gets
    ``-`` and 8 hex digits of the SHA-256 of the original appended, so two different names
    give two different components (a kept name that itself ends like such a suffix is hashed
    too)."""
    if max_len < 16:
        raise ValueError(f"safe_filename: max_len {max_len} < 16")
    kept = _KEEP.sub("_", name)
    kept = _DOTS.sub(lambda m: "." + "_" * (len(m.group()) - 1), kept)
    if kept.startswith("."):
        kept = "_" + kept[1:]
    if kept.endswith("."):
        kept = kept[:-1] + "_"
    if kept == name and name and len(name) <= max_len and not _HASHED.search(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]
    stem = kept[: max_len - _HASH_LEN - 1] or "_"
    return f"{stem}-{digest}"
