"""Studies made of many fits: the PDF sweep, the PDF bias study and toys.

* :func:`pdf_sweep`: mW fitted with each PDF set, with its original (scale 1) and its scaled
  uncertainty, as CMS shows the result with alternative sets (arXiv:2412.13872);
* :func:`pdf_bias`: each set's central prediction (the expected yields at theta = 0, mW at the
  reference) fitted as Asimov pseudo-data with the model of the set in use at scale 1; the bias
  in mW and the smallest factor s of the model's PDF uncertainty with |bias(s)| <= sigma_PDF(s),
  found by refitting at s = s_k |bias(s_k)| / sigma_PDF(s_k) (at most :data:`BIAS_ROUNDS`
  rounds);
* :func:`toys`: pseudo-experiments generated at the fitted parameters (toy i uses seed
  ``seed + i``, whatever the chunking).

All of them use the single-mW POI and the archive's central grids (a user grid applies to the
main fit only). Values in MeV; shifts are blinded like the main result unless ``unblind``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from ..theory.resolve import ResolvedTheory
from .errors import RefitError
from .schema import BiasRow, SweepRow, ToysOut
from .tasks import FitTask, ModelSpec, TaskExecutor, run_tasks

BIAS_ROUNDS = 3
COVER_TOL = 1.02  # a bias within 2% of sigma_PDF counts as covered


def spec_for(
    archive: str,
    theory: ResolvedTheory,
    scale: float | None,
    bb: str = "gamma",
    base: ModelSpec | None = None,
) -> ModelSpec:
    """The :class:`ModelSpec` of a PDF set's theory at ``scale`` (None: its own factor), with
    the POI definition, bounds and memory bound of ``base`` when given."""
    th = theory if scale is None or float(scale) == theory.scale else theory.with_scale(scale)
    if base is not None:
        return dataclasses.replace(base, theory=th, bb=bb)
    return ModelSpec(archive, theory=th, bb=bb)


def _mev(out: dict, blinded: bool) -> tuple[float, float, float]:
    """(shift, unc, pdf_unc) in the POI's unit from a task output (first POI)."""
    name, v = next(iter(out["pois"].items()))
    info = out["poi_info"][name]
    shift = info["scale"] * v["value"] + (info["offset"] if blinded else 0.0)
    return shift, info["scale"] * v["error"], info["scale"] * v["pdf_unc"]


def pdf_sweep(
    archive: str,
    sets: Sequence[ResolvedTheory],
    *,
    reference: str | None = None,
    freeze: Sequence[str] = (),
    asimov: bool = False,
    blinded: bool = True,
    bb: str = "gamma",
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = False,
    start: dict[str, float] | None = None,
    done: dict[str, dict] | None = None,
    executor: TaskExecutor | None = None,
    base: ModelSpec | None = None,
) -> list[SweepRow]:
    """mW with each set in ``sets``: one fit at scale 1 and one at the set's scale factor (the
    same fit when it is 1). ``reference``: the set whose scaled mW the ``delta_mev`` column is
    relative to (default the first). ``start``: starting values by name (e.g. the main fit's;
    the PDF nuisances of each set start at 0); ``done``: fits already made, by label
    ``<set>:orig`` or ``<set>:scaled`` (outputs of :func:`~wmass_archive.refit.tasks.fit_summary`).
    The fits run on ``executor``, else as :func:`~wmass_archive.refit.tasks.run_tasks` runs them
    with ``scheduler`` and ``workers``. ``base``: the spec whose bounds and memory bound the
    fits keep (a :class:`~wmass_archive.refit.Refitter`'s, so that in this process they reuse
    its model with each set's theory swapped in).
    """
    done = dict(done or {})
    tasks = []
    for c in sets:
        for tag, sc in (("orig", 1.0), ("scaled", c.scale)):
            label = f"{c.name}:{tag}"
            if (tag == "scaled" and sc == 1.0) or label in done:
                continue
            tasks.append(
                FitTask(
                    label=label,
                    spec=spec_for(archive, c, sc, bb, base),
                    freeze=tuple(freeze),
                    asimov=asimov,
                    start=start,
                )
            )
    outs = {
        o["label"]: o
        for o in run_tasks(
            tasks,
            scheduler=scheduler,
            workers=workers,
            progress=progress,
            desc="PDF sweep",
            executor=executor,
        )
    }
    outs.update(done)
    rows = []
    for c in sets:
        o = outs[f"{c.name}:orig"]
        s = outs.get(f"{c.name}:scaled", o)
        a, b = _mev(o, blinded), _mev(s, blinded)
        rows.append(
            SweepRow(
                pdf=c.name,
                lhapdf_name=c.pdf.lhapdf_name,
                source=c.source,
                scale=c.scale,
                shift_mev=a[0],
                unc_mev=a[1],
                pdf_unc_mev=a[2],
                scaled_shift_mev=b[0],
                scaled_unc_mev=b[1],
                scaled_pdf_unc_mev=b[2],
                converged=bool(o["converged"] and s["converged"]),
            )
        )
    ref = next((r for r in rows if r.pdf == reference), rows[0] if rows else None)
    for r in rows:
        if ref is not None and r.scaled_shift_mev is not None and ref.scaled_shift_mev is not None:
            r.delta_mev = r.scaled_shift_mev - ref.scaled_shift_mev
    return rows


def pdf_bias(
    archive: str,
    model_set: ResolvedTheory,
    sets: Sequence[ResolvedTheory],
    *,
    freeze: Sequence[str] = (),
    bb: str = "gamma",
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = False,
    executor: TaskExecutor | None = None,
    base: ModelSpec | None = None,
) -> list[BiasRow]:
    """The bias study (see the module docstring): one row per set of ``sets`` fitted as
    pseudo-data with ``model_set``'s model (every round on one executor: ``executor``, else
    one made from ``scheduler`` and ``workers``)."""
    if executor is None:
        with TaskExecutor(scheduler, workers, progress) as ex:
            return pdf_bias(archive, model_set, sets, freeze=freeze, bb=bb, executor=ex, base=base)
    pseudo = {c.name: spec_for(archive, c, None, bb, base) for c in sets}
    scale = {c.name: 1.0 for c in sets}
    first: dict[str, tuple[float, float, float]] = {}
    last: dict[str, tuple[float, float, float]] = {}
    todo = [c.name for c in sets]
    for rnd in range(BIAS_ROUNDS + 1):
        if not todo:
            break
        tasks = [
            FitTask(
                label=n,
                spec=spec_for(archive, model_set, scale[n], bb, base),
                pseudo=pseudo[n],
                freeze=tuple(freeze),
            )
            for n in todo
        ]
        outs = executor.run(tasks, "PDF bias" if rnd == 0 else f"PDF bias, scale round {rnd}")
        nxt = []
        for o in outs:
            n = o["label"]
            b, tot, pu = _mev(o, blinded=False)
            if rnd == 0:
                first[n] = (b, tot, pu)
            last[n] = (b, tot, pu)
            if not (np.isfinite(b) and np.isfinite(pu)) or pu <= 0:
                continue
            if abs(b) > COVER_TOL * pu and rnd < BIAS_ROUNDS:
                scale[n] = scale[n] * max(abs(b) / pu, 1.05)
                nxt.append(n)
        todo = nxt
    rows = []
    for c in sets:
        b, tot, pu = first[c.name]
        lb, _, lpu = last[c.name]
        s = scale[c.name]
        covered = bool(abs(lb) <= COVER_TOL * lpu) if np.isfinite(lb) and np.isfinite(lpu) else None
        rows.append(
            BiasRow(
                pseudo_data=c.name,
                model=model_set.name,
                bias_mev=b,
                pdf_unc_mev=pu,
                total_unc_mev=tot,
                scale_needed=_round_up(s),
                bias_at_scale_mev=lb if s != 1.0 else None,
                pdf_unc_at_scale_mev=lpu if s != 1.0 else None,
                covered=covered,
            )
        )
    return rows


def _round_up(s: float) -> float:
    """A scale factor rounded up to 0.1 (1.0 when nothing is needed)."""
    return 1.0 if s <= 1.0 else math.ceil(s * 10 - 1e-9) / 10


def toys(
    spec: ModelSpec,
    n_toys: int,
    *,
    seed: int = 0,
    theta_gen: np.ndarray | None = None,
    freeze: Sequence[str] = (),
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = False,
    chunk: int | None = None,
    poi: str | None = None,
    executor: TaskExecutor | None = None,
) -> ToysOut:
    """``n_toys`` pseudo-experiments generated at ``theta_gen`` (default 0) and fitted; the
    statistics of the POI ``poi`` (default the first) in its unit (MeV for mW). ``chunk``: toys
    per task (default 1 in this process, else about 16 tasks in all)."""
    if executor is None:
        with TaskExecutor(scheduler, workers, progress) as ex:
            return toys(
                spec,
                n_toys,
                seed=seed,
                theta_gen=theta_gen,
                freeze=freeze,
                chunk=chunk,
                poi=poi,
                executor=ex,
            )
    if chunk is None:
        chunk = max(1, math.ceil(n_toys / 16))
        if executor.in_process(math.ceil(n_toys / chunk)):
            chunk = 1
    tasks = []
    for start in range(0, n_toys, chunk):
        n = min(chunk, n_toys - start)
        tasks.append(
            FitTask(
                label=f"toys{start}",
                spec=spec,
                kind="toys",
                n_toys=n,
                seed=seed + start,
                theta_gen=theta_gen,
                freeze=tuple(freeze),
            )
        )
    outs = executor.run(tasks, "toys")
    names = outs[0]["toys"]["pois"]
    name = names[0] if poi is None else poi
    if name not in names:
        raise RefitError(f"no POI '{name}' in the toys' model ({', '.join(names)})")
    i = names.index(name)
    info = outs[0]["poi_info"][name]
    sc = info["scale"]
    gen = outs[0]["toys"]["generated"][i]
    vals, errs, ok = [], [], []
    for o in outs:
        t = o["toys"]
        vals += [v[i] for v in t["values"]]
        errs += [e[i] for e in t["errors"]]
        ok += t["converged"]
    v, e, c = np.array(vals), np.array(errs), np.array(ok, dtype=bool)
    good = c & np.isfinite(v) & np.isfinite(e) & (e > 0)
    pulls = (v[good] - gen) / e[good]

    def stat(x: np.ndarray, f) -> float | None:
        return float(f(x)) if x.size else None

    return ToysOut(
        n_toys=n_toys,
        seed=seed,
        n_converged=int(c.sum()),
        poi=name,
        unit=info["unit"],
        mean_bias_mev=stat(sc * (v[good] - gen), np.mean),
        std_mev=float(sc * np.std(v[good], ddof=1)) if good.sum() > 1 else None,
        mean_unc_mev=stat(sc * e[good], np.mean),
        pull_mean=stat(pulls, np.mean),
        pull_std=float(np.std(pulls, ddof=1)) if pulls.size > 1 else None,
    )
