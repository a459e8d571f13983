"""``wmass-archive import``: turn another fitter's published likelihood into an archive.

Each format's command lives in its own module (``import_<format>.py``) and is attached to the
group by :func:`_register`.
"""

from __future__ import annotations

import click


@click.group(name="import", context_settings={"help_option_names": ["-h", "--help"]})
def import_() -> None:
    """Import a likelihood written for another fitter (pyhf, CMS Combine, rabbit) as an archive.

    The archive then refits with ``wmass-refit --archive FILE``, which reports the imported
    likelihood's own parameters of interest.
    """


def _register() -> None:
    """Attach the per-format commands (one module each)."""
    from .import_combine import combine
    from .import_pyhf import pyhf
    from .import_rabbit import rabbit

    import_.add_command(pyhf)
    import_.add_command(combine)
    import_.add_command(rabbit)


_register()
