"""wmass_archive.text: archive strings made safe for terminals, plots and file names."""

from __future__ import annotations

import hashlib
import io
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wmass_archive.text import (
    has_unsafe_chars,
    plot_text,
    printable,
    printable_lines,
    safe_filename,
)

UNSAFE = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("mW", "mW"),
        ("pdf_NNPDF3.1+x-y", "pdf_NNPDF3.1+x-y"),
        ("a b", "a b"),
        ("", ""),
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
        ("\x1b[2J", "\\x1b[2J"),
        ("x\n mW = 80000.0 +- 0.1 MeV", "x\\n mW = 80000.0 +- 0.1 MeV"),
        ("a\rb\tc", "a\\rb\\tc"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f", "del\\x7f"),
        ("c1\x9b2J", "c1\\x9b2J"),
        ("abc\u202edef", "abc\\u202edef"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
        ("lone\ud800", "lone\\ud800"),
        ("private\ue000", "private\\ue000"),
        ("unassigned\U000e0080", "unassigned\\U000e0080"),
        ("back\\slash", "back\\\\slash"),
        ("\\x1b", "\\\\x1b"),
        ("μ_W é 中", "μ_W é 中"),
    ],
)
def test_printable_escapes(raw, shown):
    assert printable(raw) == shown


def test_printable_objects_and_max_len():
    assert printable(12.5) == "12.5"
    assert printable(KeyError("k")) == "'k'"
    assert printable("x" * 50, max_len=10) == "xxxxxxx..."
    assert printable("short", max_len=10) == "short"
    # an escape is never cut in two
    assert printable("ab\x1bcd" * 3, max_len=8) == "ab..."
    assert printable("\x00" * 10, max_len=10) == "\\x00..."


def test_plot_text_is_never_mathtext():
    from matplotlib import cbook

    for raw in ("$\\frac{$", "$x$", "a $ b $ c", "\\$$", "$$"):
        t = plot_text(raw)
        assert not cbook.is_math_text(t), (raw, t)
    assert plot_text("$x$") == "\\$x\\$"
    assert plot_text("mW") == "mW"
    assert len(plot_text("y" * 1000)) == 120


def test_plot_text_draws():
    """A hostile label is drawn as text (no mathtext parse error)."""
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    ax.set_xlabel(plot_text("$\\frac{ \x1b[2J"))
    ax.plot([0, 1], [0, 1], label=plot_text("$\\sqrt{$"))
    ax.legend()
    fig.savefig(io.BytesIO(), format="png")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mW", "mW"),
        ("mw-charge", "mw-charge"),
        ("NNPDF3.1_x+y", "NNPDF3.1_x+y"),
    ],
)
def test_safe_filename_keeps_clean_names(name, expected):
    assert safe_filename(name) == expected


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("..", "__"),
        (".", "_"),
        ("", "_"),
        (".hidden", "_hidden"),
        ("a/b", "a_b"),
        ("..\\..\\etc", "___.__etc"),
        ("a..b", "a._b"),
        ("end.", "end_"),
        ("x\x1b[2J", "x__2J"),
        ("μ", "_"),
        ("mw-0123abcd", "mw-0123abcd"),  # looks like a hashed name: hashed itself
    ],
)
def test_safe_filename_changes_and_hashes(name, stem):
    out = safe_filename(name)
    assert out.startswith(stem + "-") and len(out) == len(stem) + 9, out
    assert out[-8:] == hashlib.sha256(name.encode()).hexdigest()[:8]


def test_safe_filename_bounds_long_names():
    out = safe_filename("p" * 300)
    assert len(out) == 80 and out.startswith("p" * 71 + "-")
    assert len(safe_filename("p" * 300, max_len=20)) == 20
    assert safe_filename("p" * 80) == "p" * 80
    with pytest.raises(ValueError):
        safe_filename("x", max_len=8)


def test_has_unsafe_chars():
    assert has_unsafe_chars("mW") is None
    assert has_unsafe_chars("μ_W") is None
    assert has_unsafe_chars("a\x1bb") == "\x1b"
    assert has_unsafe_chars("a\u202e") == "\u202e"
    assert has_unsafe_chars("a\ue000") is None  # private use: escaped on output, not refused


# ------------------------------------------------------------------ properties
_any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)


@settings(max_examples=300, deadline=None)
@given(_any_text)
def test_printable_has_no_unsafe_chars(s):
    out = printable(s)
    assert not any(unicodedata.category(c) in UNSAFE for c in out)
    assert "\n" not in out and "\r" not in out
    out.encode("utf-8")  # no lone surrogate left


@settings(max_examples=300, deadline=None)
@given(_any_text, _any_text)
def test_printable_is_injective(a, b):
    if a != b:
        assert printable(a) != printable(b)


@settings(max_examples=200, deadline=None)
@given(_any_text, st.integers(3, 40))
def test_printable_max_len(s, n):
    out = printable(s, max_len=n)
    assert len(out) <= n
    assert out == printable(s) or out.endswith("...")


@settings(max_examples=300, deadline=None)
@given(st.one_of(_any_text, st.text("ab./\\-_", max_size=12), st.text(min_size=70, max_size=400)))
def test_safe_filename_is_one_bounded_component(s):
    out = safe_filename(s)
    assert 1 <= len(out) <= 80
    assert all(c.isascii() and (c.isalnum() or c in "._+-") for c in out)
    assert not out.startswith(".") and not out.endswith(".") and ".." not in out
    assert "/" not in out and "\\" not in out


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(_any_text, st.text("ab./\\-_", max_size=12)),
    st.one_of(_any_text, st.text("ab./\\-_", max_size=12)),
)
def test_safe_filename_is_injective(a, b):
    if a != b:
        assert safe_filename(a) != safe_filename(b)


def test_printable_lines_and_backslash_option():
    assert printable_lines(["a", "b\nc", "\x1b"]) == "a\nb\\nc\n\\x1b"
    # LaTeX in a HEPData header keeps its backslashes; controls are still escaped
    assert printable("$-2\\Delta\\ln L$\x1b", backslash=False) == "$-2\\Delta\\ln L$\\x1b"
    assert printable("a\\b\n", backslash=False) == "a\\b\\n"
    assert printable_lines(["x\\y", "\u202e"], backslash=False) == "x\\y\n\\u202e"
    assert printable("\\" * 10, max_len=6) == "\\\\..."
