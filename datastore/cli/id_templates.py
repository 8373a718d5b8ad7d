"""Image ids for ``medstore add`` built from where each file sits: ``--id '{parent}_{stem}'``.

Exports with one folder per patient (``patients/P001/t1.nii``, ``patients/P002/t1.nii``) give every
file the same name; a template takes the folder names into the id. Fields: ``{stem}`` (the id the
file name alone gives: ``t1``), ``{parent}`` (the folder holding it: ``P001``), ``{grandparent}``
(the folder above), ``{name}`` (the full file name). ``--id-from parent`` is ``{parent}_{stem}``.

Examples:
    >>> from pathlib import Path
    >>> render_id("{parent}_{stem}", Path("patients/P001/t1.nii.gz"), "t1")
    'P001_t1'
    >>> is_template("{parent}_{stem}"), is_template("case_7")
    (True, False)
"""

from __future__ import annotations

import string
from pathlib import Path

from .main import UsageError

__all__ = ["FIELDS", "ID_FROM", "check_template", "is_template", "render_id"]

FIELDS = ("stem", "parent", "grandparent", "name")
ID_FROM = {"name": "{stem}", "parent": "{parent}_{stem}", "grandparent": "{grandparent}_{stem}"}


def is_template(text: str) -> bool:
    """Whether an ``--id`` value is a template (has a ``{field}``) rather than one id."""
    return any(field for _, field, _, _ in string.Formatter().parse(text) if field is not None)


def check_template(template: str) -> None:
    """Refuse a template with an unknown field, a format spec or unbalanced braces.

    Raises:
        UsageError: Naming the problem and the known fields.
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as err:
        raise UsageError(f"--id {template!r}: {err}") from err
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in FIELDS or spec or conversion:
            raise UsageError(
                f"--id {template!r}: unknown field {{{field}}}; use "
                + ", ".join(f"{{{f}}}" for f in FIELDS)
            )


def render_id(template: str, source: Path, stem: str) -> str:
    """The id ``template`` gives ``source`` (not yet validated as an id).

    Args:
        template: A checked template.
        source: The file or series folder being added.
        stem: The id its name alone gives.

    Returns:
        The filled-in template.
    """
    absolute = source.absolute()
    return template.format(
        stem=stem,
        parent=absolute.parent.name,
        grandparent=absolute.parent.parent.name,
        name=source.name,
    )
