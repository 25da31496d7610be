"""The gridlang language server (``gridlang lsp``): :mod:`gridlang.lsp.analysis` answers, :mod:`gridlang.lsp.server` speaks the protocol."""

from __future__ import annotations


def serve() -> None:
    """Run the server on stdin/stdout (imports pygls only when called)."""
    from gridlang.lsp.server import serve as run

    run()
