"""The archive's provenance and citation: who made it, from what, how to make it again, and
what to cite (metadata models, docs/format.md section 3)."""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import Field

from .models_base import _Model


class InputRecord(_Model):
    """One input of the producer (a PDF set, a sample, a configuration file)."""

    name: str
    location: str = Field(default="", description="path, URL, DOI or dataset name")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    description: str = ""


class Provenance(_Model):
    """Who made the archive, from what, and how to make it again."""

    producer: str = Field(min_length=1, description="name of the producing code")
    producer_version: str = Field(min_length=1)
    git_commit: str | None = Field(default=None, description="commit of the producing code")
    created: datetime = Field(
        default_factory=lambda: datetime.now(timezone.utc),
        description="creation time, UTC, ISO 8601",
    )
    command: str | None = Field(default=None, description="command line that produced it")
    inputs: list[InputRecord] = Field(default_factory=list)
    seeds: dict[str, int] = Field(default_factory=dict, description="random seeds by purpose")
    software: dict[str, str] = Field(default_factory=dict, description="package -> version")
    notes: str = ""


class Citation(_Model):
    """What to cite when using the archive."""

    title: str
    authors: list[str] = Field(default_factory=list)
    doi: str | None = None
    arxiv: str | None = None
    url: str | None = None
    bibtex: str | None = None
    note: str = ""
