"""The JSON Schema of the archive metadata, generated from the pydantic models."""

from __future__ import annotations

from typing import Any

from .models import FORMAT_VERSION, ArchiveMetadata


def metadata_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the ``/metadata`` document of format ``FORMAT_VERSION``."""
    s = ArchiveMetadata.model_json_schema(mode="serialization")
    major = FORMAT_VERSION.split(".")[0]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://wmass-archive.github.io/schema/archive-metadata-v{major}.json",
        "title": f"wmass-archive metadata, format {FORMAT_VERSION}",
        **{k: v for k, v in s.items() if k != "title"},
    }
