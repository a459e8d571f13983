"""The generic model of an archive with extended modifiers or poisson constraints (format 1.1,
docs/format.md sections 15.3 and 15.4): build-time tables (numpy) and the expected yield per
slot as a pure JAX function.

Per slot s = process * n_bins + bin of a plain process,

    nu_s = rho_s * max(0, N_s + sum_add Delta_k(t_k)) * prod_mult F_k(t_k)
           * prod_lin max(0, 1 + coeff_k t_k) * exp(sum_logk f_k(t_k))

and for a folded process (no extended modifier acts on it) rho_s times the folded yield of
section 11. The products over the multiplicative and linear factors of a slot are taken in
*layers*: the factors are numbered within their slot at build time, and layer l multiplies
every slot by its l-th factor (a scatter without repeated indices, so that JAX differentiates
it exactly). The fitter's Hessian for such a model is the JAX Hessian of the nll (module
``wmass_archive.fit.hessian``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..archive.modifiers import ChannelModifiers, modifier_problem
from ..archive.reader import Archive
from ..errors import ArchiveError
from ._jax import jax, jnp
from .modifiers import additive_delta, linear_factor, multiplicative_factor


@dataclass(frozen=True)
class ExtStatic:
    """Compile-time structure of the extended modifiers: the interpolation codes present (one
    array group each), whether linear entries exist, and the number of product layers."""

    add_codes: tuple[int, ...]
    mult_codes: tuple[int, ...]
    has_linear: bool
    n_layers: int


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


def _entries_by_code(table, r, b, va, vb, off: int, into: dict[int, list]) -> None:
    """Append the (parameter, process, slot bin, value a, value b) entries of a dense-row table
    (rows ``r``, bins ``b`` from :func:`_rows_to_entries`) to ``into``, grouped by code."""
    for code in np.unique(table.code[r]):
        m = table.code[r] == code
        into.setdefault(int(code), []).append(
            (table.parameter[r[m]], table.process[r[m]], off + b[m], va[m], vb[m])
        )


def _rows_to_entries(a: np.ndarray, b: np.ndarray, base: tuple[float, float]):
    """Flatten (n_rows, n_bins) value pairs to entries, dropping bins where both equal
    ``base`` (no effect): (row, bin) index arrays and the two value arrays."""
    keep = (a != base[0]) | (b != base[1])
    r, bins = np.nonzero(keep)
    return r, bins, a[keep], b[keep]


def build_extended(
    mods: list[ChannelModifiers],
    offsets: np.ndarray,
    proc_pos: np.ndarray,
    arch_to_model: np.ndarray,
    prior_scale: np.ndarray,
    n_bins: int,
    n_slots: int,
) -> tuple[ExtStatic, dict[str, Any], np.ndarray]:
    """(static structure, numpy arrays, slots touched by an additive shift) of the extended
    modifiers of the selected channels. ``offsets``: first bin of each channel in the model;
    ``proc_pos``: archive process index -> position in the model's processes (-1: not
    selected); ``arch_to_model``: archive parameter index -> model parameter index."""
    add: dict[int, list] = {}
    mult: dict[int, list] = {}
    lin: list = []
    for ch_mods, off in zip(mods, offsets, strict=False):
        a = ch_mods.additive
        _entries_by_code(a, *_rows_to_entries(a.up, a.down, (0.0, 0.0)), off, add)
        t = ch_mods.multiplicative
        _entries_by_code(t, *_rows_to_entries(t.hi, t.lo, (1.0, 1.0)), off, mult)
        e = ch_mods.linear
        k = e.coeff != 0
        lin.append((e.parameter[k], e.process[k], off + e.bin[k], e.coeff[k]))

    def group(parts: list, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        cat = [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]
        par, proc, b = cat[0], cat[1], cat[2]
        if np.any(proc_pos[proc] < 0):
            raise ArchiveError("an extended modifier acts on a process outside the model")
        out = {
            "param": arch_to_model[par],
            "ps": prior_scale[arch_to_model[par]],
            "slot": proc_pos[proc] * n_bins + b,
        }
        out.update({n: np.asarray(v, np.float64) for n, v in zip(names, cat[3:], strict=True)})
        return out

    add_codes = tuple(sorted(add))
    mult_codes = tuple(sorted(mult))
    add_g = [group(add[c], ("up", "down")) for c in add_codes]
    mult_g = [group(mult[c], ("hi", "lo")) for c in mult_codes]
    lin_g = group(lin, ("coeff",)) if lin else None
    has_linear = lin_g is not None and lin_g["slot"].size > 0
    touched = np.zeros(n_slots, dtype=bool)
    for g in add_g:
        touched[g["slot"]] = True
    # product layers: the l-th factor of each slot, in the order mult codes, then linear
    fac_slots = [g["slot"] for g in mult_g] + ([lin_g["slot"]] if has_linear else [])
    slots = np.concatenate(fac_slots) if fac_slots else np.zeros(0, np.int64)
    order = np.argsort(slots, kind="stable")
    s_sorted = slots[order]
    first = np.searchsorted(s_sorted, s_sorted, side="left")
    rank = np.empty(slots.size, np.int64)
    rank[order] = np.arange(slots.size) - first
    n_layers = int(rank.max(initial=-1) + 1)
    layers = tuple(
        {"src": np.flatnonzero(rank == lay), "slot": slots[rank == lay]} for lay in range(n_layers)
    )
    arrays = {"add": add_g, "mult": mult_g, "lin": lin_g if has_linear else {}, "layers": layers}
    return ExtStatic(add_codes, mult_codes, has_linear, n_layers), arrays, touched


def to_jax(
    arrays: dict[str, Any], plain: np.ndarray, nominal: np.ndarray, signed: bool = False
) -> dict[str, Any]:
    """The numpy tables of :func:`build_extended` as JAX arrays, with the slots of plain
    processes holding a yield (``plain``) and their nominal yields. ``signed`` (format 1.2
    ``sample_yields="signed"``): a slot's yield is not clipped at 0 (pyhf's semantics)."""
    f64 = lambda x: jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
    i32 = lambda x: jnp.asarray(x, dtype=jnp.int32)  # noqa: E731

    def conv(d: dict) -> dict:
        return {k: i32(v) if k in ("param", "slot", "src") else f64(v) for k, v in d.items()}

    return {
        "add": tuple(conv(g) for g in arrays["add"]),
        "mult": tuple(conv(g) for g in arrays["mult"]),
        "lin": conv(arrays["lin"]),
        "layers": tuple(conv(x) for x in arrays["layers"]),
        "plain": jnp.asarray(plain),
        "nom": f64(np.where(plain, nominal, 0.0)),
        "floor": f64(-np.inf if signed else 0.0),
    }


def _t(g: dict, theta: jnp.ndarray) -> jnp.ndarray:
    return g["ps"] * theta[g["param"]]


def generic_slot_yields(es: ExtStatic, ar: dict, theta: jnp.ndarray, ell: jnp.ndarray, fold):
    """Expected yield per slot (n_slots,) of a generic model: ``ell`` is the sum of the logk
    exponents per slot, ``fold`` (ln of the folded yield per slot, folded slot is on) from the
    1.0 folding (or None); the rate POIs multiply as their physical values."""
    ex = ar["ext"]
    ns = ell.shape[0]
    base = ex["nom"]
    for code, g in zip(es.add_codes, ex["add"], strict=True):
        delta = additive_delta(code, _t(g, theta), g["up"], g["down"])
        base = base + jax.ops.segment_sum(delta, g["slot"], num_segments=ns)
    base = jnp.where(base > ex["floor"], base, 0.0)  # clipped at 0 unless signed (1.2)
    factors = [
        multiplicative_factor(code, _t(g, theta), g["hi"], g["lo"])
        for code, g in zip(es.mult_codes, ex["mult"], strict=True)
    ]
    if es.has_linear:
        factors.append(linear_factor(_t(ex["lin"], theta), ex["lin"]["coeff"]))
    prod = jnp.ones(ns)
    if factors:
        f = jnp.concatenate(factors)
        for layer in ex["layers"]:
            prod = prod * jnp.ones(ns).at[layer["slot"]].set(f[layer["src"]])
    nu = jnp.where(ex["plain"], base * prod * jnp.exp(ell), 0.0)
    if fold is not None:
        ell_fold, on = fold
        nu = nu + jnp.where(on, jnp.exp(jnp.where(on, ell + ell_fold, 0.0)), 0.0)
    if ar["rate_param"].shape[0]:
        values = ar["rate_central"] + ar["rate_scale"] * theta[ar["rate_param"]]
        values = jnp.maximum(values, 0.0)  # clipped at zero, like the 1.0 path
        nu = nu * jnp.prod(1.0 + ar["rate_mask"] * (values[:, None] - 1.0), axis=0)
    return nu


__all__ = ["ExtStatic", "build_extended", "generic_slot_yields", "read_modifiers", "to_jax"]
