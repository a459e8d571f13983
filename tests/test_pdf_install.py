"""``wmass-archive pdf install`` and install_pdf_set, against a local HTTP server only."""

from __future__ import annotations

import functools
import hashlib
import io
import sys
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("lhapdf_management")

from wmass_archive.cli.archive_cmd import main  # noqa: E402
from wmass_archive.errors import TheoryError  # noqa: E402
from wmass_archive.theory.install import PDFInstallError, install_pdf_set  # noqa: E402
from wmass_archive.theory.pdfnames import find_lhapdf_name, missing_set_hint  # noqa: E402

SET = "NNPDF40_nnlo_as_01180"
INFO = b"SetDesc: a test set\nNumMembers: 1\nErrorType: replicas\n"
DAT = b"PdfType: central\nFormat: lhagrid1\n---\n1e-5 1\n1 2\n21 1 2\n1 1 1\n---\n"


def make_tarball(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def good_members(name: str = SET) -> dict[str, bytes]:
    return {f"{name}/{name}.info": INFO, f"{name}/{name}_0000.dat": DAT}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path):
    """(folder served, base URL) of a server on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def dest(tmp_path):
    out = tmp_path / "sets"
    out.mkdir()
    return out


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """No default source reaches the network; no LHAPDF path leaks in from the machine."""
    monkeypatch.setenv("LHAPDF_URLBASE", "http://127.0.0.1:9/")
    monkeypatch.setenv("LHAPDF_CVMFSBASE", str(tmp_path / "no-cvmfs"))
    monkeypatch.delenv("LHAPDF_DATA_PATH", raising=False)
    monkeypatch.delenv("LHAPATH", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def publish(root: Path, data: bytes, name: str = SET, sha256: str | None = "auto") -> None:
    (root / f"{name}.tar.gz").write_bytes(data)
    if sha256 == "auto":
        sha256 = hashlib.sha256(data).hexdigest()
    if sha256 is not None:
        (root / f"{name}.tar.gz.sha256").write_text(f"{sha256}  {name}.tar.gz\n")


@pytest.mark.parametrize("name", ["NNPDF40", "NNPDF4.0", SET])
def test_install_and_found(served, tmp_path, monkeypatch, name):
    root, url = served
    publish(root, make_tarball(good_members()))
    dest = tmp_path / "sets"
    dest.mkdir()
    lines: list[str] = []
    folder = install_pdf_set(name, dest, url=url, progress=False, log=lines.append)
    assert folder == dest / SET
    assert (folder / f"{SET}.info").read_bytes() == INFO
    assert (folder / f"{SET}_0000.dat").read_bytes() == DAT
    assert sorted(p.name for p in dest.iterdir()) == [SET]  # no temporary left
    assert any("sha256 verified" in line for line in lines)
    monkeypatch.setenv("LHAPDF_DATA_PATH", str(dest))
    assert find_lhapdf_name("NNPDF40") == SET
    with pytest.raises(PDFInstallError, match="already installed.*--force"):
        install_pdf_set(name, dest, url=url, progress=False)
    (folder / "stale.dat").write_text("x")
    assert install_pdf_set(name, dest, url=url, progress=False, force=True) == folder
    assert not (folder / "stale.dat").exists()


def test_default_destination_is_first_writable_data_path(served, tmp_path, monkeypatch):
    root, url = served
    publish(root, make_tarball(good_members()))
    sets = tmp_path / "sets"
    sets.mkdir()
    monkeypatch.setenv("LHAPDF_DATA_PATH", f"{tmp_path / 'missing'}:{sets}")
    assert install_pdf_set("NNPDF40", url=url, progress=False) == sets / SET


def test_no_checksum_published_is_said(served, dest):
    root, url = served
    publish(root, make_tarball(good_members()), sha256=None)
    lines: list[str] = []
    install_pdf_set(SET, dest, url=url, progress=False, log=lines.append)
    assert any("checksum: none published" in line for line in lines)


def test_wrong_checksum_refused(served, dest):
    root, url = served
    publish(root, make_tarball(good_members()), sha256="0" * 64)
    with pytest.raises(PDFInstallError, match="checksum mismatch") as err:
        install_pdf_set("NNPDF40", dest, url=url, progress=False)
    assert "\n" not in str(err.value)
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize(
    "members,links,match",
    [
        ({**good_members(), f"{SET}/../evil": b"x"}, None, "outside"),
        ({**good_members(), "../evil": b"x"}, None, "outside"),
        ({**good_members(), "/tmp/evil": b"x"}, None, "outside"),
        ({**good_members(), "evil": b"x"}, None, "outside"),
        (good_members(), {f"{SET}/link": "/etc/passwd"}, "leads outside"),
        (good_members(), {f"{SET}/link": "../../x"}, "leads outside"),
        ({f"{SET}/{SET}_0000.dat": DAT}, None, "no .*info"),
    ],
)
def test_unsafe_archive_refused(served, tmp_path, members, links, match):
    root, url = served
    publish(root, make_tarball(members, links))
    dest = tmp_path / "sets"
    dest.mkdir()
    with pytest.raises(PDFInstallError, match=match):
        install_pdf_set(SET, dest, url=url, progress=False)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_size_cap(served, dest):
    root, url = served
    publish(root, make_tarball({**good_members(), f"{SET}/{SET}_0001.dat": b"0" * 50_000}))
    with pytest.raises(PDFInstallError, match="over"):
        install_pdf_set(SET, dest, url=url, progress=False, max_bytes=10_000)
    assert list(dest.iterdir()) == []


def test_unknown_name_with_index(served, dest):
    root, url = served
    (root / "pdfsets.index").write_text(f"1 CT18ZNNLO 1\n2 {SET} 1\n3 CT18NNLO 1\n")
    with pytest.raises(TheoryError, match=r"unknown PDF set 'CT18ZNNL0'.*did you mean CT18ZNNLO"):
        install_pdf_set("CT18ZNNL0", dest, url=url, progress=False)
    publish(root, make_tarball(good_members("CT18ZNNLO")), name="CT18ZNNLO")
    assert install_pdf_set("ct18z-nnlo", dest, url=url, progress=False).name == "CT18ZNNLO"


def test_unknown_name_without_index(served, dest):
    _, url = served
    with pytest.raises(PDFInstallError, match=r"unknown PDF set 'NNPDF4'.*did you mean"):
        install_pdf_set("NNPDF4", dest, url=url, progress=False)


def test_network_failure(dest):
    with pytest.raises(PDFInstallError, match=f"cannot download {SET}: http://127.0.0.1:9/"):
        install_pdf_set("NNPDF40", dest, progress=False)
    assert list(dest.iterdir()) == []


def test_not_writable_destination(tmp_path):
    with pytest.raises(PDFInstallError, match="no writable destination"):
        install_pdf_set("NNPDF40", tmp_path / "absent", url="http://127.0.0.1:9/", progress=False)


def test_missing_set_hint_names_the_command():
    hint = missing_set_hint("NNPDF40")
    assert "`wmass-archive pdf install NNPDF40_nnlo_as_01180`" in hint
    assert "`lhapdf install NNPDF40_nnlo_as_01180`" in hint


def test_cli(served, dest):
    root, url = served
    publish(root, make_tarball(good_members()))
    runner = CliRunner()
    args = ["pdf", "install", "NNPDF40", "--dest", str(dest), "--url", url]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert f"installed {SET} in {dest / SET}" in res.output
    assert (dest / SET / f"{SET}.info").is_file()
    res = runner.invoke(main, [*args, "-q"])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "already installed" in lines[0]
    res = runner.invoke(main, [*args, "-q", "--force"])
    assert res.exit_code == 0 and res.output == ""
    res = runner.invoke(main, ["pdf", "install", "--help"])
    assert res.exit_code == 0 and "--dest" in res.output and "--force" in res.output


def test_cli_missing_extra(monkeypatch, dest):
    for mod in ("lhapdf_management", "lhapdf_management.management"):
        monkeypatch.setitem(sys.modules, mod, None)  # import fails as if not installed
    res = CliRunner().invoke(main, ["pdf", "install", "NNPDF40", "--dest", str(dest)])
    assert res.exit_code == 1
    assert res.output.strip() == (
        'error: wmass-archive pdf install needs lhapdf-management: pip install "wmass-archive[pdf]"'
    )
    assert list(dest.iterdir()) == []
