"""The help formatter of every ``smoothcert`` subcommand.

argparse's ``ArgumentDefaultsHelpFormatter`` appends ``(default: None)`` to options
whose real default is resolved later (from the checkpoint or per dataset) and
whose help already says it, so defaults were printed twice. This one shows a
default only when it carries information, and strips reST markup from
docstrings used as descriptions.
"""
from __future__ import annotations

import argparse
import re

_MARKUP = re.compile(r"``([^`]*)``|:(?:func|class|meth|mod|attr):`~?([^`]*)`")


def plain(text: str) -> str:
    """``text`` without reST inline markup (double backquotes, Sphinx roles)."""
    return _MARKUP.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), text)


class HelpFormatter(argparse.HelpFormatter):
    """Shows ``(default: X)`` unless X is None, False, empty or already in the help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = plain(action.help or "")
        default = action.default
        if (default is None or default is False or default is argparse.SUPPRESS or default == []
                or "default" in text
                or action.option_strings == [] or isinstance(action, argparse._HelpAction)):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain(text))
