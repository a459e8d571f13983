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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArchiveError

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


def load_workspace(
    workspace: Any,
    *,
    measurement: str | None = None,
    patchset: Any = None,
    patch: str | None = None,
    modifier_settings: Mapping[str, Mapping[str, str]] | None = None,
) -> LoadedWorkspace:
    """Load and validate ``workspace`` (a JSON file path, a dict or a ``pyhf.Workspace``),
    apply ``patch`` of ``patchset`` (a path, a dict or a ``pyhf.PatchSet``), pick the
    measurement and build pyhf's model with ``modifier_settings`` (pyhf's default when None)."""
    with quiet_pyhf():
        return _load(workspace, measurement, patchset, patch, modifier_settings)


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
    modifier_settings: Mapping[str, Mapping[str, str]] | None,
) -> LoadedWorkspace:
    import pyhf

    spec, source, sha = _read_json(workspace, "workspace")
    _check_custom_modifiers(spec, source)
    ws = _validated(lambda: pyhf.Workspace(spec), source, "pyhf workspace")
    ps_source = ps_sha = None
    if (patch is None) != (patchset is None):
        raise PyhfImportError(
            f"{source}: give both a patchset and the name of one of its patches"
            if patch is None
            else f"{source}: patch '{patch}' given without a patchset"
        )
    if patchset is not None:
        ws, ps_source, ps_sha = _apply_patch(ws, source, patchset, patch)  # type: ignore[arg-type]
        spec = json.loads(json.dumps(dict(ws)))
        _check_custom_modifiers(spec, f"{source} patched with '{patch}'")
    names = ws.measurement_names
    if measurement is not None and measurement not in names:
        raise PyhfImportError(f"{source}: no measurement '{measurement}' (measurements: {names})")
    meas = (
        ws.get_measurement(measurement_name=measurement) if measurement else ws["measurements"][0]
    )
    settings = _settings(modifier_settings, source)
    for c in spec["channels"]:
        if c["name"] not in ws.observations:
            raise PyhfImportError(f"{source}: no observation for channel '{c['name']}'")
        n = len(c["samples"][0]["data"])
        if len(ws.observations[c["name"]]) != n:
            raise PyhfImportError(
                f"{source}: observation of channel '{c['name']}' has "
                f"{len(ws.observations[c['name']])} bins, its samples {n}"
            )
    with numpy_backend():
        poi = meas["config"]["poi"] or None
        model = _validated(
            lambda: ws.model(
                measurement_name=meas["name"], modifier_settings=settings, poi_name=poi
            ),
            source,
            f"pyhf model of measurement '{meas['name']}'",
        )
    return LoadedWorkspace(
        spec=spec,
        source=source,
        sha256=sha,
        measurement=meas,
        model=model,
        modifier_settings=settings,
        patch=patch,
        patchset_source=ps_source,
        patchset_sha256=ps_sha,
    )


@contextlib.contextmanager
def numpy_backend(optimizer: Any = None) -> Iterator[None]:
    """Run with pyhf's numpy backend (float64) and ``optimizer`` (default pyhf's current one),
    restoring the caller's backend and optimizer after."""
    import pyhf

    before = pyhf.get_backend()
    pyhf.set_backend("numpy", optimizer if optimizer is not None else before[1])
    try:
        yield
    finally:
        pyhf.set_backend(*before)


def _read_json(obj: Any, what: str) -> tuple[dict[str, Any], str, str]:
    """(spec, source description, sha256): of the file's bytes for a path, of pyhf's
    canonical JSON (``pyhf.utils.digest``) for an object in memory."""
    import pyhf

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
        if not isinstance(spec, dict):
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
    import pyhf

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


def _apply_patch(ws: Any, source: str, patchset: Any, patch: str) -> tuple[Any, str, str]:
    import pyhf

    ps_spec, ps_source, ps_sha = _read_json(patchset, "patchset")
    ps = _validated(lambda: pyhf.PatchSet(ps_spec), ps_source, "pyhf patchset")
    names = [p.name for p in ps.patches]
    if patch not in names:
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        raise PyhfImportError(f"{ps_source}: no patch '{patch}' (patches: {shown})")
    try:
        ps.verify(ws)
    except pyhf.exceptions.PatchSetVerificationError:
        raise PyhfImportError(
            f"{ps_source}: the patchset was not made for {source} (digest mismatch)"
        ) from None
    patched = _validated(
        lambda: pyhf.Workspace(ps[patch].apply(dict(ws))),
        source,
        f"workspace patched with '{patch}'",
    )
    return patched, ps_source, ps_sha


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
