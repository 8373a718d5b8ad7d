"""Options several commands share, so label tags and image tags are named apart everywhere.

A *label tag* names whose label it is (``final``, ``alice``, a model); an *image tag* is a keyword
set on an image (``medstore tag``). ``--label-tag`` and ``--image-tag`` say which; the older
``--tag`` stays as an alias of the one each command always meant.

Examples:
    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> label_tag_option(p, default="final", what="label to save")
    >>> p.parse_args(["--tag", "alice"]).tag
    'alice'
    >>> p.parse_args([]).tag
    'final'
"""

from __future__ import annotations

import argparse

__all__ = ["image_tag_option", "label_tag_option"]


def label_tag_option(
    parser: argparse.ArgumentParser, *, default: str | None, what: str, required: bool = False
) -> None:
    """Add ``--label-tag`` (alias ``--tag``), stored as ``args.tag``.

    Args:
        parser: The command's parser.
        default: The default tag (``None``: none).
        what: What the tag selects, for the help text.
        required: Whether the option must be given.
    """
    shown = f" (default: {default})" if default else ""
    parser.add_argument(
        "--label-tag",
        "--tag",
        dest="tag",
        metavar="LABEL_TAG",
        default=default,
        required=required,
        help=f"label tag (annotator or model) of the {what}{shown}",
    )


def image_tag_option(parser: argparse.ArgumentParser, *, what: str, repeat: bool = False) -> None:
    """Add ``--image-tag`` (stored as ``args.image_tag``).

    Args:
        parser: The command's parser.
        what: What the image tag does, for the help text.
        repeat: Whether it can be given several times (a list).
    """
    parser.add_argument(
        "--image-tag",
        dest="image_tag",
        metavar="IMAGE_TAG",
        action="append" if repeat else "store",
        help=f"image tag (see 'medstore tag'): {what}",
    )
