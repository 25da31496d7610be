"""The language server (pygls): diagnostics, hover, go to definition and completion for .grid files.

Diagnostics are the errors of ``gridlang check`` on the document's current
text, read as the document's file with its folder as the case folder; an
error in an included file is shown at the ``include`` that brings it in.
Spans (1-based line and column, width) become LSP ranges (0-based).
"""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from gridlang.errors import GridError, Span
from gridlang.lsp import analysis
from gridlang.reference import stdlib_path

SERVER = LanguageServer("gridlang", "0.1.0", text_document_sync_kind=lsp.TextDocumentSyncKind.Full)
_last: dict[str, analysis.Index] = {}  # the last index of each document that parsed


def _file(uri: str) -> tuple[str, Path]:
    """The path spans of a document carry, and its case folder."""
    path = to_fs_path(uri) if uri.startswith("file:") else None
    return (path, Path(path).parent) if path else (uri, Path.cwd())


def _range(span: Span) -> lsp.Range:
    line, col = max(span.line - 1, 0), max(span.col - 1, 0)
    return lsp.Range(lsp.Position(line, col), lsp.Position(line, col + max(span.width, 1) if span.line > 0 else col))


def _diagnostic(error: GridError, path: str, found: analysis.Index | None) -> lsp.Diagnostic:
    """One error as a diagnostic: the message, then the hint; elsewhere than the document: at its include (or the start), naming its place."""
    message = error.message + (f"\nhint: {error.hint}" if error.hint else "")
    span = error.span
    if span.file != path:
        includes = [r for r in (found.refs if found else []) if r.what == "include" and str(found.includes.get(r.name)) == span.file]
        message = f"{span}: {message}"
        span = includes[0].span if includes else Span(path, 1, 1, 0)
    return lsp.Diagnostic(_range(span), message, severity=lsp.DiagnosticSeverity.Error, source="gridlang")


def _publish(uri: str) -> None:
    """Check the document and send its diagnostics (an empty list clears them)."""
    doc = SERVER.workspace.get_text_document(uri)
    path, root = _file(uri)
    found = analysis.index(doc.source, path, root)
    if found is not None:
        _last[uri] = found
    errors = analysis.check(doc.source, path, root)
    diagnostics = [_diagnostic(e, path, found) for e in errors]
    SERVER.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri, diagnostics, doc.version))


@SERVER.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: LanguageServer, params: lsp.DidOpenTextDocumentParams) -> None:
    _publish(params.text_document.uri)


@SERVER.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: LanguageServer, params: lsp.DidChangeTextDocumentParams) -> None:
    _publish(params.text_document.uri)


@SERVER.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: LanguageServer, params: lsp.DidSaveTextDocumentParams) -> None:
    _publish(params.text_document.uri)


def _ref(params: lsp.TextDocumentPositionParams) -> tuple[analysis.Index, analysis.Ref] | None:
    found = _last.get(params.text_document.uri)
    ref = analysis.at(found, params.position.line + 1, params.position.character + 1) if found else None
    return (found, ref) if ref else None


@SERVER.feature(lsp.TEXT_DOCUMENT_HOVER)
def hover(ls: LanguageServer, params: lsp.HoverParams) -> lsp.Hover | None:
    hit = _ref(params)
    text = analysis.hover(*hit) if hit else None
    if text is None:
        return None
    return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, text), _range(hit[1].span))


@SERVER.feature(lsp.TEXT_DOCUMENT_DEFINITION)
def definition(ls: LanguageServer, params: lsp.DefinitionParams) -> lsp.Location | None:
    hit = _ref(params)
    span = analysis.definition(*hit) if hit else None
    if span is None:
        return None
    file = stdlib_path(span.file) or Path(span.file).resolve()
    return lsp.Location(from_fs_path(str(file)), _range(span))


@SERVER.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=[" ", "{", ";"]))
def completion(ls: LanguageServer, params: lsp.CompletionParams) -> lsp.CompletionList:
    uri = params.text_document.uri
    found = _last.get(uri)
    if found is None:
        return lsp.CompletionList(is_incomplete=False, items=[])
    text = ls.workspace.get_text_document(uri).source
    kinds = {"bus": lsp.CompletionItemKind.Variable, "param": lsp.CompletionItemKind.Property, "kind": lsp.CompletionItemKind.Class, "keyword": lsp.CompletionItemKind.Keyword}
    offered = analysis.completions(found, text, params.position.line + 1, params.position.character + 1)
    return lsp.CompletionList(is_incomplete=False, items=[lsp.CompletionItem(label, kind=kinds[what], detail=detail or None) for label, what, detail in offered])


def serve() -> None:
    """Speak the protocol on stdin/stdout until the client says exit."""
    SERVER.start_io()
