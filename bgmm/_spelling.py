"""How an error message names the setting that fixes it: in Python, or on the command line.

The library's messages say ``columns=['a', 'b']``; the same check run by ``bgmm fit`` must
say ``--columns a,b``. The command line runs its work inside :func:`command_line_spelling`,
and a message builds its advice with :func:`option`, so one check has one message in the
language of whoever called it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_COMMAND_LINE: ContextVar[bool] = ContextVar("bgmm_command_line_spelling", default=False)


@contextlib.contextmanager
def command_line_spelling() -> Iterator[None]:
    """Within this block, :func:`option` spells settings as command-line options."""
    token = _COMMAND_LINE.set(True)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def on_command_line() -> bool:
    """Whether messages are being written for the command line.

    Returns
    -------
    bool
        True inside :func:`command_line_spelling`.
    """
    return _COMMAND_LINE.get()


def option(name: str, python: str | None = None, cli: str | None = None) -> str:
    """The setting ``name`` as the caller writes it, with an example value.

    Parameters
    ----------
    name : str
        The Python keyword (``"n_init"``); its option is ``--n-init``.
    python : str, optional
        The example value in Python (``"['a', 'b']"``); ``name=python``.
    cli : str, optional
        The example value on the command line (``"a,b"``); ``--name cli``. A flag (no
        value) when omitted.

    Returns
    -------
    str
        ``"--n-init 10"`` on the command line, ``"n_init=10"`` in Python.
    """
    if on_command_line():
        flag = "--" + name.replace("_", "-")
        return f"{flag} {cli}" if cli is not None else flag
    return f"{name}={python}" if python is not None else f"{name}=True"
