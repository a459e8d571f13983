"""HEPData export (``wmass-archive export hepdata``): the submission validates with
hepdata-validator offline (the submission, every data file, the upload tarball); its numbers are
the refit result's and the model's (checked against the RefitResult, the fit covariance, the
archive's stored yields and finite differences of the model); the archive is attached byte for
byte with its SHA-256; every table says SYNTHETIC and BLINDED; bad inputs fail with one line.
The committed export of the default archive (hepdata/submission) validates and attaches
likelihoods/default.h5; re-exporting it (minutes) is ``pytest -m slow``."""

from __future__ import annotations

import filecmp
import gc
import hashlib
import shutil
import socket
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from refit_archives import OFFSET_MEV

from wmass_archive import open_archive
from wmass_archive.cli.export_cmd import export
from wmass_archive.export._folder import MANIFEST
from wmass_archive.export.hepdata import (
    HEPDataError,
    check_table,
    export_hepdata,
    jacobian,
    propagate,
    require_valid,
    validate_submission,
)
from wmass_archive.export.hepdata.context import ExportContext
from wmass_archive.export.hepdata.genlevel import genlevel_tables
from wmass_archive.export.hepdata.labels import NuisanceLabeler
from wmass_archive.export.hepdata.split import can_split, split_tables
from wmass_archive.export.hepdata.variables import hd
from wmass_archive.export.hepdata.yields import parameter_supports
from wmass_archive.refit import refit

with warnings.catch_warnings():  # hepdata_validator imports jsonschema's deprecated RefResolver
    warnings.simplefilter("ignore", DeprecationWarning)
    from hepdata_validator.data_file_validator import DataFileValidator
    from hepdata_validator.full_submission_validator import FullSubmissionValidator
    from hepdata_validator.submission_file_validator import SubmissionFileValidator

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "hepdata" / "submission"
SCAN = 7
TABLES = {
    "mW result",
    "Nominal impacts of nuisance groups",
    "Global impacts of nuisance groups",
    "Postfit pulls constraints and impacts",
    "Correlation of mW with nuisance groups",
    "mW for each PDF set",
    "Likelihood scan of mW",
    "Prefit distribution mu negative charge",
    "Prefit distribution mu positive charge",
    "Postfit distribution mu negative charge",
    "Postfit distribution mu positive charge",
    "mW for each W charge",
    "Correlation of mW_plus and mW_minus",
    *(
        f"{what} W {q} in {ax} bins"
        for what in (
            "Generator-level cross section",
            "Postfit correlation of cross section",
            "Generator-level angular coefficients",
        )
        for q in ("plus", "minus")
        for ax in ("ptW", "absYW")
    ),
}


@pytest.fixture(scope="module")
def no_network():
    """Any attempt to open a network connection fails (validation must be offline)."""
    mp = pytest.MonkeyPatch()

    def refuse(*args, **kwargs):
        raise OSError("network access is disabled in this test")

    mp.setattr(socket.socket, "connect", refuse)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def exported(arcs, tmp_path_factory, no_network):
    out = tmp_path_factory.mktemp("hepdata") / "submission"
    tar = out.parent / "upload.tar.gz"
    return export_hepdata(arcs["tiny"], out, scan_points=SCAN, tarball=tar, scheduler="none")


LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(folder: Path, data_files: bool = True):
    """(first document of submission.yaml, {table name: its document}, {name: data file})."""
    docs = list(yaml.load_all((folder / "submission.yaml").read_text(), Loader=LOADER))
    tables = {d["name"]: d for d in docs[1:]}
    data = {
        n: yaml.load((folder / d["data_file"]).read_text(), Loader=LOADER)
        for n, d in tables.items()
        if data_files
    }
    return docs[0], tables, data


def column(table: dict, name: str, kind: str = "dependent_variables") -> dict:
    """The variable of a data file whose header name starts with ``name``."""
    hits = [v for v in table[kind] if v["header"]["name"].startswith(name)]
    assert hits, f"no column {name!r} in {[v['header']['name'] for v in table[kind]]}"
    return hits[0]


def values(var: dict) -> list:
    return [v.get("value") for v in var["values"]]


def errors(var: dict, label: str) -> list:
    return [next(e["symerror"] for e in v["errors"] if e["label"] == label) for v in var["values"]]


def close(a, b, rel=2e-4, abs_=1e-9):
    return np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=rel, atol=abs_)


def test_submission_is_valid_offline(exported, no_network, tmp_path):
    out = exported.output
    head, tables, _ = load(out)
    assert set(tables) == TABLES
    # the folder without the export's manifest (which the tarball leaves out) is the record
    record = tmp_path / "record"
    shutil.copytree(out, record, ignore=shutil.ignore_patterns(MANIFEST))
    with warnings.catch_warnings():  # hepdata-validator leaves the files it reads open
        warnings.simplefilter("ignore", ResourceWarning)
        for target in (dict(directory=str(record)), dict(archive=str(exported.tarball))):
            v = FullSubmissionValidator(autoload_remote_schemas=False)
            assert v.validate(**target), v.get_messages()
        assert SubmissionFileValidator().validate(file_path=str(out / "submission.yaml"))
        for name, doc in tables.items():
            dv = DataFileValidator()
            assert dv.validate(file_path=str(out / doc["data_file"])), (name, dv.get_messages())
        gc.collect()
    listed = {"submission.yaml", "tiny.h5", MANIFEST} | {d["data_file"] for d in tables.values()}
    assert {p.name for p in out.iterdir()} == listed
    assert not list(out.parent.glob(".submission*"))  # no staging folder left
    assert validate_submission(out).valid and len(exported.valid_files) == len(tables) + 1


def test_archive_attached_with_sha256(exported, arcs):
    head, _, _ = load(exported.output)
    src = arcs["tiny"]
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert exported.archive_sha256 == digest
    assert filecmp.cmp(exported.output / "tiny.h5", src, shallow=False)
    res = next(r for r in head["additional_resources"] if r["location"] == "tiny.h5")
    assert digest in res["description"] and "wmass-refit --archive tiny.h5" in res["description"]
    assert res["license"]["name"] == "CC-BY-4.0"
    assert digest in head["comment"] and "wmass-refit --archive tiny.h5" in head["comment"]


def test_statements_keywords_and_licence(exported):
    head, tables, data = load(exported.output)
    assert "SYNTHETIC" in head["comment"] and "BLINDED" in head["comment"]
    assert head["data_license"]["name"] == "CC-BY-4.0"
    for name, doc in tables.items():
        assert "SYNTHETIC" in doc["description"] and "BLINDED" in doc["description"], name
        kw = {k["name"]: k["values"] for k in doc["keywords"]}
        assert kw["reactions"] == ["P P --> W X"] and kw["cmenergies"] == [13000.0], name
        assert "W Production" in kw["phrases"]
        assert doc["data_license"]["name"] == "CC-BY-4.0"
        assert len(doc["name"]) <= 64 and len(doc["location"]) <= 256
    mw = column(data["mW result"], "$m_{W}$")
    assert "BLINDED" in mw["header"]["name"]
    quals = {q["name"]: q["value"] for q in mw["qualifiers"]}
    assert quals["SQRT(S)"] == 13000.0 and quals["Data"] == "pseudo-data (SYNTHETIC)"


def test_result_and_impacts_are_the_refit_result(exported):
    r = exported.result
    _, _, data = load(exported.output)
    mw = r.mw
    col = column(data["mW result"], "$m_{W}$")
    assert close(values(col), [mw.shift_mev]) and abs(values(col)[0]) < 1000  # a shift
    assert close(errors(col, "stat"), [mw.stat_mev]) and close(errors(col, "syst"), [mw.syst_mev])
    total = values(column(data["mW result"], "Total uncertainty"))[0]
    assert close(total, mw.unc_mev)
    assert close(np.hypot(errors(col, "stat")[0], errors(col, "syst")[0]), total, rel=1e-3)
    for kind, ref in (("Nominal", r.impacts.nominal), ("Global", r.impacts.global_)):
        t = data[f"{kind} impacts of nuisance groups"]
        groups = values(column(t, "Nuisance group"))
        got = dict(zip(groups, values(column(t, "Impact on mW")), strict=True))
        assert set(ref) <= set(groups)
        for g, v in ref.items():
            assert v is None and got[g] == "-" or close(got[g], v), (kind, g)
        assert close(got["-"], r.impacts.total)  # the Total row
    # global impacts of disjoint sources add up in quadrature to the total (arXiv:2307.04007)
    g = r.impacts.global_
    assert close(np.sqrt(sum(v**2 for v in g.values())), r.impacts.total, rel=1e-6)


def test_pulls_and_correlations_are_the_fit_covariance(exported):
    r = exported.result
    fit = r.fit_result
    _, _, data = load(exported.output)
    t = data["Postfit pulls constraints and impacts"]
    names = values(t["independent_variables"][0])
    assert len(names) == len(fit.model.parameters) - len(r.pois)
    cov = np.asarray(fit.covariance)
    idx = {n: i for i, n in enumerate(fit.parameter_names)}
    p = idx["mW"]
    nominal = values(column(t, "Nominal impact on mW"))
    assert np.all(np.diff(np.abs(nominal)) <= 1e-6)  # by decreasing |impact|
    for col, ref in (
        ("Pull", [fit.parameter(n).pull for n in names]),
        ("Constraint", [fit.parameter(n).constraint for n in names]),
        ("Nominal impact on mW", [fit.impact("nominal").nuisances[n] for n in names]),
        ("Global impact on mW", [fit.impact("global").nuisances[n] for n in names]),
        # the correlation straight from the covariance matrix
        (
            "Correlation with mW",
            [cov[p, idx[n]] / np.sqrt(cov[p, p] * cov[idx[n], idx[n]]) for n in names],
        ),
    ):
        assert close(values(column(t, col)), ref, rel=2e-3, abs_=2e-5), col
    # nominal impact = correlation x total uncertainty (C_pk / sqrt(C_kk) = rho_pk sigma_p)
    rho = np.array(values(column(t, "Correlation with mW")))
    assert close(nominal, rho * r.mw.unc_mev, rel=5e-3, abs_=1e-3)
    labels = values(column(t, "Label"))
    assert labels[names.index("lumi")] == "Integrated luminosity"
    assert labels[names.index("pdfCT10nloEV4")] == "PDF CT10nlo: eigenvector 4"
    # correlation table: R_G x total = the group's nominal impact; largest single correlation
    c = data["Correlation of mW with nuisance groups"]
    groups = values(c["independent_variables"][0])
    multiple = values(column(c, "Multiple correlation of mW"))
    largest = values(column(c, "Largest correlation of mW"))
    for g, m, big in zip(groups, multiple, largest, strict=True):
        assert close(m * r.mw.unc_mev, r.impacts.nominal[g], rel=1e-3), g
        members = [i for i, q in enumerate(fit.model.parameters) if g in q.groups]
        rhos = cov[p, members] / np.sqrt(cov[p, p] * np.diag(cov)[members])
        assert close(big, rhos[np.argmax(np.abs(rhos))], rel=1e-3), g


def test_pdf_sweep_and_scan(exported):
    r = exported.result
    _, _, data = load(exported.output)
    t = data["mW for each PDF set"]
    assert (
        values(t["independent_variables"][0]) == [s.pdf for s in r.sweep] == ["CT10nlo", "NNPDF31"]
    )
    assert values(column(t, "LHAPDF set")) == ["CT10nlo", "NNPDF31_nnlo_as_0118_mc"]
    assert values(column(t, "Scale factor")) == [1.0, 3.0]
    orig = column(t, "$m_{W}$ - 80360.0 MeV (BLINDED, + hidden offset), original")
    scaled = column(t, "$m_{W}$ - 80360.0 MeV (BLINDED, + hidden offset), scaled")
    assert close(values(orig), [s.shift_mev for s in r.sweep])
    assert close(errors(orig, "total"), [s.unc_mev for s in r.sweep])
    assert close(values(scaled), [s.scaled_shift_mev for s in r.sweep])
    assert close(
        values(column(t, "PDF uncertainty, scaled")),
        [s.scaled_pdf_unc_mev for s in r.sweep],
        abs_=1e-6,
    )
    assert close(values(orig)[0], r.mw.shift_mev)  # the nominal set is the main fit
    s = data["Likelihood scan of mW"]
    x = np.array(values(s["independent_variables"][0]))
    q = np.array(values(s["dependent_variables"][0]))
    assert (
        x.size == SCAN
        and close(x, r.scans[0].shift_mev)
        and close(q, r.scans[0].two_delta_nll, abs_=1e-6)
    )
    # the profile likelihood is close to the Hessian parabola: 1 at +-1 sigma, 9 at +-3 sigma
    z = (x - r.mw.shift_mev) / r.mw.unc_mev
    assert np.allclose(z, np.linspace(-3, 3, SCAN), atol=1e-3)
    assert np.allclose(q, z**2, rtol=0.15, atol=0.02)


def test_distributions_are_the_archive_and_the_model(exported, arcs):
    r = exported.result
    model, fit = r.model, r.fit_result
    _, _, data = load(exported.output)
    with open_archive(arcs["tiny"]) as a:
        obs = a.data("mu").reshape(2, 4, 6)
        z_nominal = a.nominal("Zmumu", "mu").reshape(2, 4, 6)
        w_nominal = a.nominal("Wmunu", "mu").reshape(2, 4, 6)
        sumw2 = a.select().sumw2().sum(axis=0).reshape(2, 4, 6)
    theta = np.array([p.value for p in fit.parameters])
    post = model.expected(theta).reshape(2, 4, 6)
    # the reference Jacobian: central finite differences of the model's expected yield
    h = 1e-5
    jac_fd = np.stack(
        [
            (model.expected(theta + h * e) - model.expected(theta - h * e)) / (2 * h)
            for e in np.eye(model.n_params)
        ],
        axis=1,
    )
    post_unc = np.sqrt(
        np.einsum("bi,ij,bj->b", jac_fd, np.asarray(fit.covariance), jac_fd)
    ).reshape(2, 4, 6)
    for k, charge in enumerate(("negative", "positive")):
        pre = data[f"Prefit distribution mu {charge} charge"]
        eta, pt = pre["independent_variables"]
        assert eta["header"]["name"] == "muon eta" and pt["header"] == {
            "name": "muon pT",
            "units": "GeV",
        }
        e_edges, p_edges = np.linspace(-2.4, 2.4, 5), np.linspace(26.0, 56.0, 7)
        assert close([v["low"] for v in eta["values"]], np.repeat(e_edges[:-1], 6), abs_=1e-9)
        assert close([v["high"] for v in pt["values"]], np.tile(p_edges[1:], 4))
        assert values(column(pre, "Data")) == obs[k].ravel().tolist()
        assert close(errors(column(pre, "Data"), "stat"), np.sqrt(obs[k].ravel()), rel=1e-6)
        # prefit yields: the archive's stored templates (the folded W reproduces them)
        # (process yields are written to 5 significant digits, totals to 6)
        assert close(values(column(pre, "Prefit Zmumu")), z_nominal[k].ravel(), rel=6e-5)
        assert close(values(column(pre, "Prefit Wmunu")), w_nominal[k].ravel(), rel=6e-5)
        total = column(pre, "Prefit total")
        assert close(values(total), (w_nominal + z_nominal)[k].ravel(), rel=1e-5)
        assert np.all(np.array(errors(total, "unc")) >= np.sqrt(sumw2[k].ravel()) * (1 - 1e-5))
        pst = column(data[f"Postfit distribution mu {charge} charge"], "Postfit total")
        assert close(values(pst), post[k].ravel(), rel=1e-5)
        assert close(errors(pst, "unc"), post_unc[k].ravel(), rel=1e-4)


def test_jacobian_against_finite_differences(exported, arcs):
    model = exported.result.model
    theta = np.random.default_rng(3).normal(0.0, 0.4, model.n_params)
    with open_archive(arcs["tiny"]) as a:
        supports = parameter_supports(a, model)
    assert sum(s is not None for s in supports) == 6  # lumi, norm_Zmumu, muonScale_eta0..3
    full = jacobian(model, theta)
    compressed = jacobian(model, theta, supports)
    assert np.allclose(compressed, full, rtol=1e-12, atol=1e-9)
    h = 1e-5
    fd = np.stack(
        [
            (model.expected(theta + h * e) - model.expected(theta - h * e)) / (2 * h)
            for e in np.eye(model.n_params)
        ],
        axis=1,
    )
    assert np.allclose(full, fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())
    # wrong supports (every logk nuisance said to change bin 0 only) are caught by the probe
    wrong = [None if s is None else np.array([0]) for s in supports]
    assert np.allclose(jacobian(model, theta, wrong), full, rtol=1e-12, atol=1e-9)
    cov = np.diag(np.linspace(0.5, 2.0, model.n_params))
    assert np.allclose(propagate(full, cov), np.sqrt(np.diag(fd @ cov @ fd.T)), rtol=1e-6)


def test_cli_unblinded_export_replaces_the_previous_one(exported, tmp_path, no_network):
    out = tmp_path / "sub"
    shutil.copytree(exported.output, out)  # a previous export at the output path
    res = CliRunner().invoke(
        export,
        [
            "hepdata",
            str(exported.archive),
            "-o",
            str(out),
            "--unblind",
            "--scan-points",
            "3",
            "--scheduler",
            "none",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "HEPData submission written to" in res.output and "SYNTHETIC" in res.output
    assert "warning" not in res.stderr, res.stderr
    head, tables, data = load(out)
    assert "BLINDED" not in head["comment"] and "SYNTHETIC" in head["comment"]
    assert all("BLINDED" not in d["description"] for d in tables.values())
    col = column(data["mW result"], "$m_{W}$")
    assert col["header"]["name"] == "$m_{W}$"
    # unblinded mW = reference + blinded shift - the archive's blinding offset
    assert abs(values(col)[0] - (80360.0 + exported.result.mw.shift_mev - OFFSET_MEV)) < 2e-3
    plus = column(data["mW for each W charge"], "$m_{W^{+}}$")
    assert plus["header"]["name"] == "$m_{W^{+}}$"
    ref = 80360.0 + exported.split.pois["mW_plus"].shift_mev - OFFSET_MEV
    assert abs(values(plus)[0] - ref) < 2e-3
    assert {p.name for p in tmp_path.iterdir()} == {"sub"}  # nothing left beside it


def matrix(table: dict) -> tuple[list, list, np.ndarray]:
    """(row labels, column labels, the square matrix) of a correlation table (HEPData's
    convention: two independent variables for the pair, one dependent)."""
    a, b = table["independent_variables"]

    def key(v: dict):
        return v.get("value", (v.get("low"), v.get("high")))

    rows, cols = [key(v) for v in a["values"]], [key(v) for v in b["values"]]
    labels = list(dict.fromkeys(rows))
    assert list(dict.fromkeys(cols)) == labels
    n = len(labels)
    m = np.array(values(table["dependent_variables"][0]), dtype=float).reshape(n, n)
    assert [rows[i * n] for i in range(n)] == labels and cols[:n] == labels
    return labels, labels, m


def test_generator_level_tables_are_the_refit_result(exported, no_network):
    gen = exported.result.generator_level
    _, tables, data = load(exported.output)
    for q, sign in (("plus", "W+"), ("minus", "W-")):
        for ax, sym in (("ptW", "p_{T}^{W}"), ("absYW", "|y^{W}|")):
            names = {
                kind: f"{what} W {q} in {ax} bins"
                for kind, what in (
                    ("sigma", "Generator-level cross section"),
                    ("corr", "Postfit correlation of cross section"),
                    ("coeffs", "Generator-level angular coefficients"),
                )
            }
            for name in names.values():
                dv = DataFileValidator()
                f = str(exported.output / tables[name]["data_file"])
                assert dv.validate(file_path=f), (name, dv.get_messages())
                assert "SYNTHETIC" in tables[name]["description"]
            d = gen.charges[q][f"sigma_{ax}"]
            t = data[names["sigma"]]
            x = t["independent_variables"][0]
            assert x["header"]["name"] == f"${sym}$"
            assert close([v["low"] for v in x["values"]], d.axis.edges[:-1])
            assert close([v["high"] for v in x["values"]], d.axis.edges[1:])
            for stage, val, unc in (
                ("Postfit", d.postfit, d.postfit_unc),
                ("Prefit", d.prefit, d.prefit_unc),
            ):
                col = column(t, f"{stage} $d\\sigma/d{sym}$")
                assert col["header"]["units"] == "pb per bin"
                quals = {x["name"]: x["value"] for x in col["qualifiers"]}
                assert quals["Fit stage"] == stage.lower() and quals["W charge"] == sign
                assert quals["Data"] == "pseudo-data (SYNTHETIC)"
                assert quals["Blinding"].startswith("no offset")
                assert close(values(col), val, rel=1e-5) and close(
                    errors(col, "total"), unc, rel=1e-5
                )
            # the postfit correlation: the result's matrix, symmetric with a unit diagonal
            _, _, m = matrix(data[names["corr"]])
            assert close(m, d.postfit_correlation, abs_=1e-5)
            assert np.allclose(m, m.T) and np.allclose(np.diag(m), 1.0)
            # angular coefficients: those non-zero in the grid (A5..A7 vanish and are left out)
            c = data[names["coeffs"]]
            heads = [v["header"]["name"] for v in c["dependent_variables"]]
            assert heads == [f"{s} $A_{{{i}}}$" for i in range(5) for s in ("Postfit", "Prefit")]
            assert "A5, A6, A7 are zero everywhere" in tables[names["coeffs"]]["description"]
            for i in range(5):
                a = gen.charges[q][f"A{i}_{ax}"]
                post = column(c, f"Postfit $A_{{{i}}}$")
                assert close(values(post), a.postfit, rel=1e-4, abs_=1e-8)
                assert close(errors(post, "total"), a.postfit_unc, rel=1e-4, abs_=1e-9)
                assert close(
                    values(column(c, f"Prefit $A_{{{i}}}$")), a.prefit, rel=1e-4, abs_=1e-8
                )
            for i in range(5, 8):
                assert not np.any(gen.charges[q][f"A{i}_{ax}"].postfit)


def test_charge_split_tables_are_the_refit_result(exported):
    s = exported.split
    assert s is not None and s.poi_definition == "mw-charge" and s.blinded
    assert list(s.pois) == ["mW_plus", "mW_minus"]
    _, tables, data = load(exported.output)
    t = data["mW for each W charge"]
    diff = s.poi_differences[0]
    plus, minus = s.pois["mW_plus"], s.pois["mW_minus"]
    for p, sym in ((plus, "$m_{W^{+}}$"), (minus, "$m_{W^{-}}$")):
        col = column(t, f"{sym} - 80360.0 MeV (BLINDED, + hidden offset)")
        assert close(values(col), [p.shift_mev]) and close(errors(col, "total"), [p.unc_mev])
    d = column(t, "$m_{W^{+}}$ - $m_{W^{-}}$")
    assert "BLINDED" not in d["header"]["name"] and d["header"]["units"] == "MeV"
    quals = {x["name"]: x["value"] for x in d["qualifiers"]}
    assert quals["Blinding"].startswith("no offset")
    assert close(values(d), [diff.value]) and close(errors(d, "total"), [diff.uncertainty])
    assert close(values(d), [plus.shift_mev - minus.shift_mev], rel=1e-4)  # offset cancels
    assert close(values(column(t, "Correlation of mW_plus")), [diff.correlation], abs_=1e-4)
    # the 2 x 2 matrix: the POI covariance normalised, symmetric with a unit diagonal
    labels, _, m = matrix(data["Correlation of mW_plus and mW_minus"])
    assert labels == ["mW_plus", "mW_minus"] == s.poi_covariance.names
    cov = np.array(s.poi_covariance.matrix)
    assert close(m, cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov))), abs_=1e-5)
    assert np.allclose(m, m.T) and np.allclose(np.diag(m), 1.0)
    assert close(m[0, 1], diff.correlation, abs_=1e-5)
    assert "BLINDED" in tables["mW for each W charge"]["description"]


def test_no_generator_level_or_split_tables_without_folded_signal(arcs):
    """An archive without a folded signal (and without a charge axis) gets none of them."""
    r = refit(arcs["rates"], impacts="none")
    assert r.generator_level is None
    with open_archive(arcs["rates"]) as a:
        meta = a.metadata
    ctx = ExportContext(r, meta, arcs["rates"], "0" * 64)
    assert genlevel_tables(ctx) == [] and split_tables(ctx) == []
    assert can_split(meta) is not None


def run_cli(args):
    return CliRunner().invoke(export, ["hepdata", *[str(a) for a in args]])


def one_line_error(res, match: str, code: int = 1) -> str:
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    err = res.stderr.strip()
    if code == 1:
        assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert match in err, err
    return err


def test_bad_inputs_fail_with_one_line(arcs, tmp_path):
    tiny = arcs["tiny"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(run_cli([tiny, "-o", blocker]), "it is a file")
    one_line_error(run_cli([tiny, "-o", blocker / "sub"]), "does not exist")
    one_line_error(run_cli([tiny, "-o", tmp_path / "missing" / "sub"]), "does not exist")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    one_line_error(run_cli([tiny, "-o", busy]), "notes.txt, which wmass-archive did not write")
    assert (busy / "notes.txt").read_text() == "mine"
    one_line_error(
        run_cli([tiny, "-o", tmp_path / "s", "--tarball", tmp_path / "s.zip"]), ".tar.gz"
    )
    one_line_error(run_cli([tmp_path / "none.h5", "-o", tmp_path / "s"]), "none.h5")
    one_line_error(
        run_cli([tiny, "-o", tmp_path / "s", "--scan-points", "1"]), "scan-points", code=2
    )
    # an archive that fails validation: one dataset changed behind its checksum
    bad = tmp_path / "bad.h5"
    shutil.copyfile(tiny, bad)
    with h5py.File(bad, "r+") as f:
        f["channels/mu/data"][0] += 1.0
    err = one_line_error(run_cli([bad, "-o", tmp_path / "s"]), "bad.h5")
    assert "sha" in err.lower() or "checksum" in err.lower()
    assert not (tmp_path / "s").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.h5", "busy", "file"]


def test_fields_beyond_hepdata_limits(arcs, tmp_path):
    # an archive whose file name makes the tables' location longer than HEPData's 256
    long = tmp_path / ("w" * 220 + ".h5")
    shutil.copyfile(arcs["tiny"], long)
    err = one_line_error(run_cli([long, "-o", tmp_path / "s"]), "location")
    assert "every table" in err and "HEPData allows at most 256" in err
    assert not (tmp_path / "s").exists()
    # a table's own fields: the exporter's limits where HEPData has none
    t = hd.Table("Impacts")
    t.description = "x" * 5001
    with pytest.raises(HEPDataError, match=r"table 'Impacts': description .* at most 5000"):
        check_table(t)
    t.description = "ok"
    t.keywords = {"phrases": ["p" * 129]}
    with pytest.raises(HEPDataError, match=r"table 'Impacts': keyword value .* at most 128"):
        check_table(t)


def test_validator_refuses_a_broken_submission(exported, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(exported.output, broken)
    (broken / "stray.txt").write_text("not referenced")
    res = validate_submission(broken)
    assert not res.valid and any("stray.txt" in m for msgs in res.messages.values() for m in msgs)
    (broken / "stray.txt").unlink()
    (broken / "mw_result.yaml").write_text("independent_variables: 3\n")
    with pytest.raises(HEPDataError, match="mw_result.yaml") as exc:
        require_valid(broken)
    assert "\n" not in str(exc.value)


def test_nuisance_labels():
    lab = NuisanceLabeler(np.linspace(-2.4, 2.4, 49))
    assert lab("effStat_idip_eta03_plus_p2") == (
        "Muon efficiency stat. (ID + IP): eta bin 3 [-2.10, -2.00], mu+, pT shape 2"
    )
    assert (
        lab("calib_resol_b_eta04-05")
        == "Muon momentum resolution: term b, eta bins 4-5 [-2.00, -1.80]"
    )
    assert (
        lab("calib_M_eta47")
        == "Muon momentum scale: J/psi stat. M (alignment), eta bin 47 [2.30, 2.40]"
    )
    assert lab("fakeNorm_etaReg2_minus") == "Nonprompt normalisation: eta region 2, mu-"
    assert lab("pdfNNPDF31EV7") == "PDF NNPDF31: eigenvector 7"
    assert lab("norm_Top") == "Normalisation of the Top background"
    assert lab("pTModel_ktNP", "pT^W model: NP k_T width") == "pT^W model: NP k_T width"
    assert lab("someNuisance") == "someNuisance"
    assert (
        NuisanceLabeler(None)("effSyst_iso_eta05") == "Muon efficiency syst. (isolation): eta bin 5"
    )


@pytest.mark.skipif(not COMMITTED.is_dir(), reason="no committed export in hepdata/submission")
def test_committed_export_validates_and_attaches_the_default_archive():
    res = validate_submission(COMMITTED)
    assert res.valid, res.first_problem()
    default = REPO / "likelihoods" / "default.h5"
    assert filecmp.cmp(COMMITTED / "default.h5", default, shallow=False)
    head, tables, _ = load(COMMITTED, data_files=False)
    digest = hashlib.sha256(default.read_bytes()).hexdigest()
    assert digest in head["comment"]
    assert all(
        "SYNTHETIC" in d["description"] and "BLINDED" in d["description"] for d in tables.values()
    )
    size = sum(p.stat().st_size for p in COMMITTED.glob("*.yaml"))
    assert size < 5e6, f"{size} bytes of YAML"


@pytest.mark.slow  # minutes
@pytest.mark.skipif(not COMMITTED.is_dir(), reason="no committed export in hepdata/submission")
def test_committed_export_is_reproducible(tmp_path):
    """The documented command reproduces the committed tables (values to their printed digits)."""
    default = REPO / "likelihoods" / "default.h5"
    rep = export_hepdata(default, tmp_path / "submission")
    _, tables, data = load(rep.output)
    _, tables0, data0 = load(COMMITTED)
    assert tables.keys() == tables0.keys()
    for name in tables:
        assert tables[name]["description"] == tables0[name]["description"], name
        for kind in ("independent_variables", "dependent_variables"):
            for new, old in zip(data[name][kind], data0[name][kind], strict=True):
                assert new["header"] == old["header"], name
                a, b = values(new), values(old)
                if all(isinstance(x, float | int) for x in a + b):
                    assert np.allclose(a, b, rtol=1e-3, atol=1e-3), (name, new["header"])
                else:
                    assert a == b, (name, new["header"])
