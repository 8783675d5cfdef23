"""The root of every error this project raises on purpose.

An error under `VdpaOperatorError` is an answer for the user: its message says what, where and what to do, and
the command line prints it as one line with exit code 2. Anything else escaping a command is a bug, reported with
its traceback (`vdpa_operator.cli`). Families keep their standard base too (`ValueError` for bad input,
`RuntimeError` for a drain that cannot go on) so callers that catch those keep working.
"""

from __future__ import annotations


class VdpaOperatorError(Exception):
    """Root of the project's errors."""
