"""Read a pyhf workspace (and a patch of a patchset), validate it with pyhf's own schema and
model builder, and hand back the spec, the chosen measurement and pyhf's model of it.

Every failure is a :class:`PyhfImportError` with one line naming the file and the item.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..._optional import require
from ...errors import ArchiveError

#: pyhf's modifier types (workspace schema 1.0.0); anything else is a custom modifier
PYHF_MODIFIERS = (
    "histosys",
    "lumi",
    "normfactor",
    "normsys",
    "shapefactor",
    "shapesys",
    "staterror",
)
#: pyhf's default interpolation codes (pyhf.pdf._ModelConfig)
PYHF_DEFAULT_SETTINGS = {"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}}


class PyhfImportError(ArchiveError):
    """A pyhf workspace or patchset cannot be read or imported."""


@dataclass
class LoadedWorkspace:
    """A validated workspace: the JSON spec (patch applied), the measurement in use and
    pyhf's model of it (numpy backend)."""

    spec: dict[str, Any]
    source: str
    sha256: str
    measurement: dict[str, Any]
    model: Any
    modifier_settings: dict[str, dict[str, str]]
    patch: str | None = None
    patchset_source: str | None = None
    patchset_sha256: str | None = None
    applied: list[AppliedPatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class AppliedPatch:
    """A patch applied to the workspace, in order: a patch of a pyhf patchset (``name`` set) or
    a plain RFC 6902 JSON Patch (a list of operations)."""

    kind: Literal["patchset", "jsonpatch"]
    source: str
    sha256: str
    name: str | None = None
    n_ops: int = 0

    def describe(self) -> str:
        if self.kind == "patchset":
            return f"patch '{self.name}' of {self.source}"
        return f"JSON Patch {self.source} ({self.n_ops} operations)"


def load_workspace(
    workspace: Any,
    *,
    measurement: str | None = None,
    patchset: Any = None,
    patch: str | None = None,
    patches: Sequence[Any] = (),
    poi: str | None = None,
    modifier_settings: Mapping[str, Mapping[str, str]] | None = None,
) -> LoadedWorkspace:
    """Load and validate ``workspace`` (a JSON file path, a dict or a ``pyhf.Workspace``),
    apply the patches, pick the measurement and its POI and build pyhf's model with
    ``modifier_settings`` (pyhf's default when None).

    Patches, applied in order: ``patch`` (a name) of ``patchset`` (a path, a dict or a
    ``pyhf.PatchSet``), then each item of ``patches``: a JSON Patch (RFC 6902: a list of
    operations, or a JSON file holding one, as HEPData's per-signal-point patch files), a
    ``jsonpatch.JsonPatch`` or ``pyhf.patchset.Patch``, a pyhf patchset file of one patch, or
    (with ``patchset``) the name of one of its patches. A patchset's digest is checked against
    the unpatched workspace, as pyhf does.

    ``poi``: the parameter of interest (default the measurement's; ``""``: none), checked to
    exist in the patched workspace."""
    with quiet_pyhf():
        return _load(workspace, measurement, patchset, patch, patches, poi, modifier_settings)


def pyhf_module(feature: str = "pyhf workspaces") -> Any:
    """pyhf, or one line naming the ``interop`` extra that installs it (``feature``: what
    needs it, as the user asked for it)."""
    return require("pyhf", "interop", feature)


@contextlib.contextmanager
def quiet_pyhf() -> Iterator[None]:
    """Silence the deprecation warnings pyhf's schema validation raises (jsonschema's
    RefResolver): they concern pyhf, not the user's files."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _load(
    workspace: Any,
    measurement: str | None,
    patchset: Any,
    patch: str | None,
    patches: Sequence[Any],
    poi: str | None,
    modifier_settings: Mapping[str, Mapping[str, str]] | None,
) -> LoadedWorkspace:
    pyhf = pyhf_module()

    spec, source, sha = _read_json(workspace, "workspace")
    _check_custom_modifiers(spec, source)
    if isinstance(patches, str | os.PathLike | Mapping):
        patches = [patches]
    if patch is not None and patchset is None:
        raise PyhfImportError(
            f"{source}: patch '{patch}' given without a patchset (a JSON Patch file goes in "
            "patches=, on the command line in --patch FILE)"
        )
    settings = _settings(modifier_settings, source)
    ps = _read_patchset(patchset, spec, source) if patchset is not None else None
    if ps is not None:
        names = _patch_names(ps[0])
        wanted = [patch] if patch is not None else []
        for p in patches:
            if isinstance(p, str) and p in names:
                wanted.append(p)
            elif isinstance(p, str | os.PathLike) and not Path(p).is_file():
                raise PyhfImportError(f"{ps[1]}: no patch '{p}' (patches: {_shown(names)})")
        if len(wanted) != 1:
            raise PyhfImportError(
                f"{ps[1]}: "
                + ("name one of its patches" if not wanted else "name only one of its patches")
                + f" (patches: {_shown(names)})"
            )
    applied: list[AppliedPatch] = []
    todo: list[tuple[AppliedPatch, list[dict]]] = []
    if patch is not None and ps is not None:
        todo.append(_from_patchset(ps, patch))
    for item in patches:
        if ps is not None and isinstance(item, str) and item in _patch_names(ps[0]):
            todo.append(_from_patchset(ps, item))
        else:
            todo.append(_json_patch(item, spec, source, named=ps[1] if ps is not None else None))
    for rec, ops in todo:
        spec = _apply_ops(spec, ops, rec, source)
        applied.append(rec)
    where = source + (
        " patched with " + ", ".join(r.name or Path(r.source).name for r in applied)
        if applied
        else ""
    )
    if applied:
        _check_custom_modifiers(spec, where)
    notes: list[str] = []
    for i, m in enumerate(_list(spec.get("measurements"))):
        cfg = m.get("config") if isinstance(m, dict) else None
        if isinstance(cfg, dict) and "poi" not in cfg:  # pyhf's schema needs one
            cfg["poi"] = ""
            notes.append(f"measurement '{m.get('name', i)}' names no POI")
    ws = _validated(lambda: pyhf.Workspace(spec), where, "pyhf workspace")
    spec = json.loads(json.dumps(dict(ws)))
    names = ws.measurement_names
    if measurement is not None and measurement not in names:
        raise PyhfImportError(f"{source}: no measurement '{measurement}' (measurements: {names})")
    meas = (
        ws.get_measurement(measurement_name=measurement) if measurement else ws["measurements"][0]
    )
    for c in spec["channels"]:
        if c["name"] not in ws.observations:
            raise PyhfImportError(f"{where}: no observation for channel '{c['name']}'")
        n = len(c["samples"][0]["data"])
        if len(ws.observations[c["name"]]) != n:
            raise PyhfImportError(
                f"{where}: observation of channel '{c['name']}' has "
                f"{len(ws.observations[c['name']])} bins, its samples {n}"
            )
    poi_name = _poi_name(spec, meas, poi, where)
    with numpy_backend():
        model = _validated(
            lambda: ws.model(
                measurement_name=meas["name"], modifier_settings=settings, poi_name=poi_name
            ),
            where,
            f"pyhf model of measurement '{meas['name']}'",
        )
    first_ps = next((r for r in applied if r.kind == "patchset"), None)
    return LoadedWorkspace(
        spec=spec,
        source=source,
        sha256=sha,
        measurement=meas,
        model=model,
        modifier_settings=settings,
        patch=first_ps.name if first_ps else None,
        patchset_source=first_ps.source if first_ps else None,
        patchset_sha256=first_ps.sha256 if first_ps else None,
        applied=applied,
        notes=notes,
    )


def _poi_name(spec: dict, meas: dict, poi: str | None, where: str) -> str | None:
    """The POI pyhf's model gets: ``poi`` if given (``""``: none), else the measurement's;
    one line when it names no parameter of the workspace."""
    declared: dict[str, set[str]] = {}
    for c in spec["channels"]:
        for s in c["samples"]:
            for m in s["modifiers"]:
                declared.setdefault(m["name"], set()).add(m["type"])
    normfactors = sorted(n for n, t in declared.items() if t == {"normfactor"})
    hint = f"its normfactors: {_shown(normfactors) or 'none'}"
    if poi is not None:
        if poi == "":
            return None
        if poi not in declared:
            raise PyhfImportError(f"{where}: no parameter '{poi}' to be the POI ({hint})")
        return poi
    name = meas["config"].get("poi") or None
    if name is not None and name not in declared:
        raise PyhfImportError(
            f"{where}: the POI '{name}' of measurement '{meas['name']}' is declared by no "
            f"modifier (a background-only workspace? apply its signal patch with --patch, or "
            f"choose the POI with --poi NAME, or --poi '' for none; {hint})"
        )
    return name


def _shown(names: Sequence[str], n: int = 10) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


@contextlib.contextmanager
def numpy_backend(optimizer: Any = None) -> Iterator[None]:
    """Run with pyhf's numpy backend (float64) and ``optimizer`` (default pyhf's current one),
    restoring the caller's backend and optimizer after."""
    pyhf = pyhf_module()

    before = pyhf.get_backend()
    pyhf.set_backend("numpy", optimizer if optimizer is not None else before[1])
    try:
        yield
    finally:
        pyhf.set_backend(*before)


def _read_json(obj: Any, what: str, allow_list: bool = False) -> tuple[Any, str, str]:
    """(spec, source description, sha256): of the file's bytes for a path, of pyhf's
    canonical JSON (``pyhf.utils.digest``) for an object in memory."""
    pyhf = pyhf_module()

    if isinstance(obj, str | os.PathLike):
        path = Path(obj)
        if not path.is_file():
            raise PyhfImportError(f"no {what} file at {path}")
        raw = path.read_bytes()
        try:
            spec = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise PyhfImportError(f"{path}: not UTF-8 text, not a JSON {what}") from None
        except json.JSONDecodeError as exc:
            raise PyhfImportError(
                f"{path}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
            ) from None
        if not isinstance(spec, dict) and not (allow_list and isinstance(spec, list)):
            raise PyhfImportError(
                f"{path}: a JSON {what} is an object, found {type(spec).__name__}"
            )
        return spec, str(path), hashlib.sha256(raw).hexdigest()
    if isinstance(obj, Mapping):
        spec = json.loads(json.dumps(dict(obj)))  # a plain copy (pyhf objects are dicts)
        return spec, f"<{what} in memory>", pyhf.utils.digest(spec, algorithm="sha256")
    if hasattr(obj, "patches") and hasattr(obj, "metadata"):  # a pyhf.PatchSet
        spec = {
            "metadata": obj.metadata,
            "patches": [{"metadata": p.metadata, "patch": p.patch} for p in obj.patches],
            "version": obj.version,
        }
        return spec, f"<{what} in memory>", pyhf.utils.digest(spec, algorithm="sha256")
    raise PyhfImportError(f"cannot read a {what} from a {type(obj).__name__}")


def _check_custom_modifiers(spec: dict[str, Any], source: str) -> None:
    """A modifier type pyhf does not define gets its own clear message (pyhf's schema would
    only say that the modifier matches none of its alternatives)."""
    for ic, c in enumerate(_list(spec.get("channels"))):
        for js, s in enumerate(_list(c.get("samples") if isinstance(c, dict) else None)):
            for m in _list(s.get("modifiers") if isinstance(s, dict) else None):
                t = m.get("type") if isinstance(m, dict) else None
                if isinstance(t, str) and t not in PYHF_MODIFIERS:
                    raise PyhfImportError(
                        f"{source}: channel '{c.get('name', ic)}', sample "
                        f"'{s.get('name', js)}': modifier '{m.get('name')}' has type '{t}', "
                        f"not one of pyhf's ({', '.join(PYHF_MODIFIERS)}): custom modifiers "
                        "are not supported"
                    )


def _list(x: Any) -> list:
    return x if isinstance(x, list) else []


def _validated(build: Any, source: str, what: str) -> Any:
    """Call ``build``; turn pyhf's schema and model errors into one line naming the item."""
    pyhf = pyhf_module()

    try:
        return build()
    except pyhf.exceptions.InvalidSpecification as exc:
        parent = exc.parent
        where = _json_path(parent.absolute_path)
        msg = " ".join(str(parent.message).split())
        if len(msg) > 200:
            msg = msg[:200] + "..."
        raise PyhfImportError(
            f"{source}: not a valid {what} (pyhf schema): {msg} at {where or 'top level'}"
        ) from None
    except PyhfImportError:
        raise
    except Exception as exc:  # pyhf's model errors: InvalidModel, InvalidNameReuse, ...
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise PyhfImportError(f"{source}: pyhf cannot build the {what}: {msg[:300]}") from None


def _json_path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


_OPS = ("add", "remove", "replace", "move", "copy", "test")


def _read_patchset(patchset: Any, spec: dict, source: str) -> tuple[Any, str, str]:
    """(pyhf.PatchSet, its source, its sha256), its digest checked against the unpatched
    workspace ``spec`` as pyhf's ``PatchSet.verify`` does."""
    pyhf = pyhf_module()

    ps_spec, ps_source, ps_sha = _read_json(patchset, "patchset")
    ps = _validated(lambda: pyhf.PatchSet(ps_spec), ps_source, "pyhf patchset")
    for alg, digest in ps.digests.items():
        if pyhf.utils.digest(spec, algorithm=alg) != digest:
            raise PyhfImportError(
                f"{ps_source}: the patchset was not made for {source} (digest mismatch)"
            )
    return ps, ps_source, ps_sha


def _patch_names(patchset: Any) -> list[str]:
    return [p.name for p in patchset.patches]


def _from_patchset(ps: tuple[Any, str, str], name: str) -> tuple[AppliedPatch, list[dict]]:
    patchset, ps_source, ps_sha = ps
    if name not in _patch_names(patchset):
        raise PyhfImportError(
            f"{ps_source}: no patch '{name}' (patches: {_shown(_patch_names(patchset))})"
        )
    ops = list(patchset[name].patch)
    return AppliedPatch("patchset", ps_source, ps_sha, name=name, n_ops=len(ops)), ops


def _json_patch(
    item: Any, spec: dict, source: str, named: str | None
) -> tuple[AppliedPatch, list[dict]]:
    """A JSON Patch from a file, a list of operations, a ``jsonpatch.JsonPatch`` or a
    ``pyhf.patchset.Patch``; a pyhf patchset file of one patch counts as that patch."""
    pyhf = pyhf_module()

    name = None
    if isinstance(item, str | os.PathLike):
        path = Path(item)
        if not path.is_file():
            raise PyhfImportError(
                f"no patch '{item}' in {named} and no file of that name"
                if named is not None
                else f"no patch file {path} (a patch of a patchset needs --patchset FILE)"
            )
        ops, src, sha = _read_json(path, "patch", allow_list=True)
        if isinstance(ops, dict) and "patches" in ops:  # a pyhf patchset
            ps = _read_patchset(path, spec, source)
            if len(ps[0].patches) != 1:
                raise PyhfImportError(
                    f"{src}: a pyhf patchset of {len(ps[0].patches)} patches: pick one with "
                    f"--patchset {path} --patch NAME (patches: {_shown(_patch_names(ps[0]))})"
                )
            return _from_patchset(ps, _patch_names(ps[0])[0])
    elif hasattr(item, "patch") and hasattr(item, "metadata"):  # pyhf.patchset.Patch
        ops, name = list(item.patch), item.name
        src, sha = f"<patch '{name}' in memory>", pyhf.utils.digest(ops, algorithm="sha256")
    elif hasattr(item, "patch") and isinstance(item.patch, list):  # jsonpatch.JsonPatch
        ops = list(item.patch)
        src, sha = "<JSON Patch in memory>", pyhf.utils.digest(ops, algorithm="sha256")
    elif isinstance(item, list):
        ops = json.loads(json.dumps(item))
        src, sha = "<JSON Patch in memory>", pyhf.utils.digest(ops, algorithm="sha256")
    else:
        raise PyhfImportError(
            f"cannot read a patch from a {type(item).__name__} (a JSON Patch list, a file or "
            "a patch name of the patchset)"
        )
    if not isinstance(ops, list):
        raise PyhfImportError(
            f"{src}: neither a JSON Patch (RFC 6902: a list of operations) nor a pyhf patchset "
            f"(an object with 'patches'): found a JSON {type(ops).__name__}"
            + (f" with keys {_shown(sorted(map(str, ops)), 5)}" if isinstance(ops, dict) else "")
        )
    for i, op in enumerate(ops):
        if not (
            isinstance(op, dict)
            and op.get("op") in _OPS
            and isinstance(op.get("path"), str)
            and ("value" in op if op.get("op") in ("add", "replace", "test") else True)
            and (isinstance(op.get("from"), str) if op.get("op") in ("move", "copy") else True)
        ):
            shown = json.dumps(op)[:120]
            raise PyhfImportError(
                f"{src}: operation {i} is not a JSON Patch operation (RFC 6902: "
                f"op one of {', '.join(_OPS)}, a path, a value or from): {shown}"
            )
    kind: Literal["jsonpatch", "patchset"] = "jsonpatch" if name is None else "patchset"
    return AppliedPatch(kind, src, sha, name=name, n_ops=len(ops)), ops


def _apply_ops(spec: dict, ops: list[dict], rec: AppliedPatch, source: str) -> dict:
    """Apply the operations one by one: a conflict names the operation."""
    jsonpatch = require("jsonpatch", "interop", "JSON Patches of pyhf workspaces")
    jsonpointer = require("jsonpointer", "interop", "JSON Patches of pyhf workspaces")

    doc = json.loads(json.dumps(spec))
    for i, op in enumerate(ops):
        try:
            doc = jsonpatch.JsonPatch([op]).apply(doc, in_place=True)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            msg = " ".join(str(exc).split())[:200]
            raise PyhfImportError(
                f"{rec.source}: operation {i} ({op['op']} {op['path']}) of "
                f"{rec.describe()} does not apply to {source}: {msg}"
            ) from None
        except (TypeError, KeyError, IndexError, ValueError) as exc:
            raise PyhfImportError(
                f"{rec.source}: operation {i} ({op['op']} {op['path']}) of "
                f"{rec.describe()} does not apply to {source}: {type(exc).__name__} {exc}"
            ) from None
    if not isinstance(doc, dict):
        raise PyhfImportError(f"{rec.source}: {rec.describe()} replaces the whole workspace")
    return doc


def _settings(given: Mapping[str, Mapping[str, str]] | None, source: str) -> dict:
    """pyhf's modifier settings: its defaults when none are given; a given mapping is used as
    pyhf uses it (a modifier left out gets pyhf's class default: normsys code1, histosys
    code0)."""
    if given is None:
        return {k: dict(v) for k, v in PYHF_DEFAULT_SETTINGS.items()}
    allowed = {"normsys": ("code1", "code4"), "histosys": ("code0", "code2", "code4p")}
    out: dict[str, dict[str, str]] = {}
    for k, v in given.items():
        code = dict(v).get("interpcode")
        if k not in allowed or code not in allowed[k] or set(dict(v)) != {"interpcode"}:
            raise PyhfImportError(
                f"{source}: unsupported modifier setting {k}: {dict(v)} (pyhf allows normsys "
                "interpcode code1/code4, histosys code0/code2/code4p)"
            )
        out[k] = {"interpcode": code}
    return out
