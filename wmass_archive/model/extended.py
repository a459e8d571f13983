"""The generic model of an archive with extended modifiers or poisson constraints (format 1.1,
docs/format.md sections 15.3 and 15.4): build-time tables (numpy) and the expected yield per
slot as a pure JAX function.

Per slot s = process * n_bins + bin of a plain process,

    nu_s = rho_s * max(0, N_s + sum_add Delta_k(t_k)) * prod_mult F_k(t_k)
           * prod_lin max(0, 1 + coeff_k t_k) * exp(sum_logk f_k(t_k))

and for a folded process (no extended modifier acts on it) rho_s times the folded yield of
section 11.

The tables are **padded arrays**, so that the traced program (and JAX's compilation time) does
not grow with the number of channels, samples or modifiers: all additive entries are one table
with a per-entry interpolation code, evaluated in one vectorised call
(:func:`~wmass_archive.model.modifiers.additive_delta_coded`); all multiplicative and linear
entries are one table of factors (:func:`~wmass_archive.model.modifiers.factor_coded`). Each
slot with entries is a *row* of an index matrix (n_rows, width) into the entry values, padded
with an index to a neutral element (0 for the sums, 1 for the products); a slot's sum or
product is one gather and one reduction over the row, and ``row_of_slot`` (a gather, no
scatter) brings the rows back to the slots. The fitter's Hessian for such a model is the JAX
Hessian of the nll (module ``wmass_archive.fit.hessian``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..archive.modifiers import ChannelModifiers, modifier_problem
from ..archive.reader import Archive
from ..errors import ArchiveError
from ..jax_config import jax, jnp
from .modifiers import (
    LINEAR,
    additive_delta_coded,
    additive_table,
    factor_coded,
    factor_table,
)


@dataclass(frozen=True)
class ExtStatic:
    """Compile-time structure of the extended modifiers: the interpolation codes present (only
    their branches are evaluated; no additive code: no additive table), whether linear entries
    exist, and ``n_layers``, the most factors on one slot (the width of the padded product)."""

    add_codes: tuple[int, ...]
    mult_codes: tuple[int, ...]
    has_linear: bool
    n_layers: int
    #: the fitter may build the Hessian from the entries (``fit.generic_hessian``): at most one
    #: rate POI per slot (set by ``build_model``)
    structured_hessian: bool = False


def read_modifiers(archive: Archive, channels) -> list[ChannelModifiers]:
    """The extended modifiers of each channel, checked against the rules of section 15.2."""
    out = []
    for ch in channels:
        mods = archive.modifiers(ch.name)
        problem = modifier_problem(archive.metadata, ch.name, mods)
        if problem is not None:
            raise ArchiveError(f"{archive.path.name}: channel '{ch.name}': {problem}")
        out.append(mods)
    return out


def _rows_to_entries(a: np.ndarray, b: np.ndarray, base: tuple[float, float]):
    """Flatten (n_rows, n_bins) value pairs to entries, dropping bins where both equal
    ``base`` (no effect): (row, bin) index arrays and the two value arrays."""
    keep = (a != base[0]) | (b != base[1])
    r, bins = np.nonzero(keep)
    return r, bins, a[keep], b[keep]


def _padded_rows(slots: np.ndarray, n_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """The entries grouped by slot as a padded index matrix: (idx (n_rows, width) of entry
    indices, padded with ``slots.size``; row_of_slot (n_slots,), a slot's row or ``n_rows``
    for a slot without entries). Within a row the entries keep their order."""
    order = np.argsort(slots, kind="stable")
    s_sorted = slots[order]
    rows, first, counts = np.unique(s_sorted, return_index=True, return_counts=True)
    width = int(counts.max(initial=0))
    idx = np.full((rows.size, width), slots.size, dtype=np.int64)
    rank = np.arange(slots.size) - np.repeat(first, counts)
    idx[np.repeat(np.arange(rows.size), counts), rank] = order
    row_of_slot = np.full(n_slots, rows.size, dtype=np.int64)
    row_of_slot[rows] = np.arange(rows.size)
    return idx, row_of_slot


def build_extended(
    mods: list[ChannelModifiers],
    offsets: np.ndarray,
    proc_pos: np.ndarray,
    arch_to_model: np.ndarray,
    prior_scale: np.ndarray,
    n_bins: int,
    n_slots: int,
) -> tuple[ExtStatic, dict[str, Any], np.ndarray]:
    """(static structure, numpy tables, slots touched by an additive shift) of the extended
    modifiers of the selected channels. ``offsets``: first bin of each channel in the model;
    ``proc_pos``: archive process index -> position in the model's processes (-1: not
    selected); ``arch_to_model``: archive parameter index -> model parameter index.

    Tables: ``add`` (param, ps, code, up, down per additive entry; idx, row_of_slot) and
    ``fac`` (param, ps, code, hi, lo per factor: the multiplicative entries ordered by code,
    then the linear ones with code :data:`~wmass_archive.model.modifiers.LINEAR` and their
    coefficient as ``hi``; idx, row_of_slot)."""
    add, mult, lin = [], [], []
    for ch_mods, off in zip(mods, offsets, strict=False):
        a = ch_mods.additive
        r, b, va, vb = _rows_to_entries(a.up, a.down, (0.0, 0.0))
        add.append((a.parameter[r], a.process[r], off + b, va, vb, a.code[r]))
        t = ch_mods.multiplicative
        r, b, va, vb = _rows_to_entries(t.hi, t.lo, (1.0, 1.0))
        mult.append((t.parameter[r], t.process[r], off + b, va, vb, t.code[r]))
        e = ch_mods.linear
        k = e.coeff != 0
        n_k = int(np.count_nonzero(k))
        lin.append(
            (
                e.parameter[k],
                e.process[k],
                off + e.bin[k],
                e.coeff[k],
                np.zeros(n_k),
                np.full(n_k, LINEAR),
            )
        )

    def table(parts: list, names: tuple[str, str]) -> dict[str, np.ndarray]:
        cat = [np.concatenate([np.asarray(p[i]) for p in parts]) for i in range(6)]
        par = cat[0].astype(np.int64)
        proc = cat[1].astype(np.int64)
        if np.any(proc_pos[proc] < 0):
            raise ArchiveError("an extended modifier acts on a process outside the model")
        out = {
            "param": arch_to_model[par],
            "ps": prior_scale[arch_to_model[par]],
            "slot": proc_pos[proc] * n_bins + cat[2].astype(np.int64),
            names[0]: np.asarray(cat[3], np.float64),
            names[1]: np.asarray(cat[4], np.float64),
            "code": cat[5].astype(np.int64),
        }
        return out

    add_t = table(add, ("up", "down")) if add else None
    mult_t = table(mult, ("hi", "lo")) if mult else None
    lin_t = table(lin, ("hi", "lo")) if lin else None
    if mult_t is not None:  # multiplicative entries by code (stable), then the linear ones
        o = np.argsort(mult_t["code"], kind="stable")
        mult_t = {k: v[o] for k, v in mult_t.items()}
    fac_parts = [x for x in (mult_t, lin_t) if x is not None and x["slot"].size]
    fac_t = (
        {k: np.concatenate([x[k] for x in fac_parts]) for k in fac_parts[0]} if fac_parts else None
    )

    touched = np.zeros(n_slots, dtype=bool)
    add_codes: tuple[int, ...] = ()
    tables: dict[str, Any] = {"add": {}, "fac": {}}
    if add_t is not None and add_t["slot"].size:
        touched[add_t["slot"]] = True
        add_codes = tuple(int(c) for c in np.unique(add_t["code"]))
        idx, ros = _padded_rows(add_t["slot"], n_slots)
        cols = additive_table(add_t["code"], add_t["up"], add_t["down"])
        tables["add"] = {**add_t, **cols, "idx": idx, "row_of_slot": ros}
    mult_codes: tuple[int, ...] = ()
    has_linear, width = False, 0
    if fac_t is not None:
        codes = np.unique(fac_t["code"])
        mult_codes = tuple(int(c) for c in codes if c != LINEAR)
        has_linear = bool(np.any(codes == LINEAR))
        idx, ros = _padded_rows(fac_t["slot"], n_slots)
        width = idx.shape[1]
        cols = factor_table(fac_t["code"], fac_t["hi"], fac_t["lo"])
        tables["fac"] = {**fac_t, **cols, "idx": idx, "row_of_slot": ros}
    return ExtStatic(add_codes, mult_codes, has_linear, width), tables, touched


def to_jax(
    arrays: dict[str, Any], plain: np.ndarray, nominal: np.ndarray, signed: bool = False
) -> dict[str, Any]:
    """The numpy tables of :func:`build_extended` as JAX arrays, with the slots of plain
    processes holding a yield (``plain``) and their nominal yields. ``signed`` (format 1.2
    ``sample_yields="signed"``): a slot's yield is not clipped at 0 (pyhf's semantics)."""
    f64 = lambda x: jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
    i32 = lambda x: jnp.asarray(x, dtype=jnp.int32)  # noqa: E731
    ints = ("param", "code", "idx", "row_of_slot", "slot")

    def conv(d: dict) -> dict:
        return {k: i32(v) if k in ints else f64(v) for k, v in d.items()}

    return {
        "add": conv(arrays["add"]),
        "fac": conv(arrays["fac"]),
        "plain": jnp.asarray(plain),
        "nom": f64(np.where(plain, nominal, 0.0)),
        "floor": f64(-np.inf if signed else 0.0),
    }


def _take(x: jnp.ndarray, idx: jnp.ndarray) -> jnp.ndarray:
    """x[idx] for indices known to be in range (no negative-index wrapping, no clamping)."""
    return x.at[idx].get(mode="promise_in_bounds", wrap_negative_indices=False)


def _rows(values: jnp.ndarray, g: dict, pad: float) -> jnp.ndarray:
    """The entry values of each row of ``g`` (n_rows, width), padding = ``pad``."""
    return _take(jnp.concatenate([values, jnp.full((1,), pad, values.dtype)]), g["idx"])


def _to_slots(rows: jnp.ndarray, g: dict, pad: float) -> jnp.ndarray:
    """Per-row values (n_rows,) as per-slot values (n_slots,), ``pad`` for slots without a row."""
    return _take(jnp.concatenate([rows, jnp.full((1,), pad, rows.dtype)]), g["row_of_slot"])


def _row_product(x: jnp.ndarray) -> jnp.ndarray:
    """The product of each row of x (n_rows, width), column after column in a ``scan``: one
    loop body whatever the width, and derivatives as cheap to trace and compile (jnp.prod's
    derivative is a tree of slices, pads and products that grows with the width)."""

    def body(acc, col):
        return acc * col, None

    return jax.lax.scan(body, jnp.ones(x.shape[0], x.dtype), x.T)[0]


def _t(g: dict, theta: jnp.ndarray) -> jnp.ndarray:
    """The effective parameter value prior_scale * theta of each entry of ``g``."""
    return g["ps"] * _take(theta, g["param"])


def generic_slot_yields(es: ExtStatic, ar: dict, theta: jnp.ndarray, ell: jnp.ndarray, fold):
    """Expected yield per slot (n_slots,) of a generic model: ``ell`` is the sum of the logk
    exponents per slot, ``fold`` (ln of the folded yield per slot, folded slot is on) from the
    1.0 folding (or None); the rate POIs multiply as their physical values."""
    ex = ar["ext"]
    base = ex["nom"]
    if es.add_codes:
        g = ex["add"]
        delta = additive_delta_coded(_t(g, theta), g, es.add_codes)
        base = base + _to_slots(jnp.sum(_rows(delta, g, 0.0), axis=1), g, 0.0)
    base = jnp.where(base > ex["floor"], base, 0.0)  # clipped at 0 unless signed (1.2)
    prod = 1.0
    if es.mult_codes or es.has_linear:
        g = ex["fac"]
        present = es.mult_codes + ((LINEAR,) if es.has_linear else ())
        f = factor_coded(_t(g, theta), g, present)
        prod = _to_slots(_row_product(_rows(f, g, 1.0)), g, 1.0)
    nu = jnp.where(ex["plain"], base * prod * jnp.exp(ell), 0.0)
    if fold is not None:
        ell_fold, on = fold
        nu = nu + jnp.where(on, jnp.exp(jnp.where(on, ell + ell_fold, 0.0)), 0.0)
    if ar["rate_param"].shape[0]:
        values = ar["rate_central"] + ar["rate_scale"] * theta[ar["rate_param"]]
        # clipped at zero like the 1.0 path (not when signed, format 1.2); the derivative at
        # 0 is the one from above, so that a fit bounded at 0 has its curvature there
        values = jnp.where(values >= ex["floor"], values, 0.0)
        nu = nu * jnp.prod(1.0 + ar["rate_mask"] * (values[:, None] - 1.0), axis=0)
    return nu


__all__ = ["ExtStatic", "build_extended", "generic_slot_yields", "read_modifiers", "to_jax"]
