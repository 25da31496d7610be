"""The language server, driven through the protocol: `gridlang lsp` started as a
subprocess and spoken to over stdio by pygls's client.

One session opens a broken copy of cases/ieee33_dispatch.grid (diagnostic with
the range and message of `gridlang check`), then the shipped case (no
diagnostics, hover, definition, completion)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls")
from lsprotocol import types as lsp  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402
from pygls.uris import from_fs_path, to_fs_path  # noqa: E402

from conftest import CASES  # noqa: E402

GRIDLANG = Path(sys.executable).with_name("gridlang")
CASE = CASES / "ieee33_dispatch.grid"
STORAGE_GRID = Path(__file__).resolve().parents[1] / "src" / "gridlang" / "stdlib_models" / "storage.grid"


def _pos(text: str, needle: str, offset: int = 0) -> lsp.Position:
    """The 0-based position of ``needle`` (plus ``offset`` characters) in ``text``."""
    at = text.index(needle) + offset
    line = text.count("\n", 0, at)
    return lsp.Position(line, at - (text.rfind("\n", 0, at) + 1))


async def _session(broken: Path, text: str) -> dict:
    """Open the broken copy, then the shipped case; ask hover, definition and completion."""
    client = LanguageClient("test", "1")
    published: dict[str, list[lsp.Diagnostic]] = {}
    arrived = asyncio.Event()

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
        published[params.uri] = params.diagnostics
        arrived.set()

    await client.start_io(str(GRIDLANG), "lsp")
    await client.initialize_async(lsp.InitializeParams(process_id=None, capabilities=lsp.ClientCapabilities(), root_uri=from_fs_path(str(CASES))))
    client.initialized(lsp.InitializedParams())
    out: dict = {}
    for path, body in ((broken, broken.read_text()), (CASE, text)):
        arrived.clear()
        client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(from_fs_path(str(path)), "grid", 1, body)))
        await asyncio.wait_for(arrived.wait(), 60)
    out["diagnostics"] = dict(published)
    doc = lsp.TextDocumentIdentifier(from_fs_path(str(CASE)))
    out["hover_kind"] = await client.text_document_hover_async(lsp.HoverParams(doc, _pos(text, "storage es25")))
    out["hover_param"] = await client.text_document_hover_async(lsp.HoverParams(doc, _pos(text, "efficiency = 95", 2)))
    out["hover_bus"] = await client.text_document_hover_async(lsp.HoverParams(doc, _pos(text, "at b25", 4)))
    out["hover_profile"] = await client.text_document_hover_async(lsp.HoverParams(doc, _pos(text, "availability = sun", 16)))
    out["def_kind"] = await client.text_document_definition_async(lsp.DefinitionParams(doc, _pos(text, "storage es25")))
    out["def_bus"] = await client.text_document_definition_async(lsp.DefinitionParams(doc, _pos(text, "at b25", 4)))
    out["def_include"] = await client.text_document_definition_async(lsp.DefinitionParams(doc, _pos(text, '"ieee33_loads.grid"', 3)))
    # completion on an edited text: after 'at ', and inside a storage's braces
    edited = text + "pv pv9 at \nstorage es9 at b9 { energy = 1 MWh;  }\n"
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(lsp.VersionedTextDocumentIdentifier(version=2, uri=doc.uri), [lsp.TextDocumentContentChangeWholeDocument(edited)]))
    out["complete_bus"] = await client.text_document_completion_async(lsp.CompletionParams(doc, _pos(edited, "pv pv9 at ", 10)))
    out["complete_param"] = await client.text_document_completion_async(lsp.CompletionParams(doc, _pos(edited, "energy = 1 MWh; ", 16)))
    out["complete_top"] = await client.text_document_completion_async(lsp.CompletionParams(doc, lsp.Position(edited.count("\n"), 0)))
    out["changed"] = published[doc.uri]
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return out


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("case")
    for f in ("ieee33_network.grid", "ieee33_loads.grid"):
        shutil.copy(CASES / f, folder / f)
    shutil.copytree(CASES / "data", folder / "data")
    broken = folder / "broken.grid"
    broken.write_text(CASE.read_text().replace("soc_init = 50 %", "soc_int = 50 %").replace("at b33", "at b34"))
    out = asyncio.run(_session(broken, CASE.read_text()))
    out["broken"] = broken
    return out


def _items(completion) -> set[str]:
    items = completion.items if isinstance(completion, lsp.CompletionList) else completion
    return {i.label for i in items}


def test_diagnostics_carry_the_messages_and_positions_of_check(session) -> None:
    broken = session["broken"]
    diagnostics = session["diagnostics"][from_fs_path(str(broken))]
    run = subprocess.run([str(GRIDLANG), "check", str(broken)], capture_output=True, text=True)
    assert run.returncode == 1
    # every 'file:line:col: error: message' of check is one diagnostic at that place, with that message
    expected = [(int(m[0]), int(m[1]), m[2]) for m in re.findall(r"^.*?:(\d+):(\d+): error: (.*)$", run.stderr, re.M)]
    got = [(d.range.start.line + 1, d.range.start.character + 1, d.message.split("\nhint: ")[0]) for d in diagnostics]
    assert len(expected) == 2 and sorted(got) == sorted(expected)
    bus = next(d for d in diagnostics if "b34" in d.message)
    text = broken.read_text()
    assert bus.range.start == _pos(text, "b34") and bus.range.end.character - bus.range.start.character == 3
    assert "hint:" in bus.message and bus.severity == lsp.DiagnosticSeverity.Error
    assert len(session["diagnostics"][from_fs_path(str(CASE))]) == 0  # the shipped case is clean
    # after a change that leaves 'pv pv9 at' without its bus, the end of that line is reported
    (changed,) = session["changed"]
    assert changed.range.start.line == CASE.read_text().count("\n") and changed.message.startswith("unexpected end of line")


def test_hover_shows_units_defaults_ranges_and_the_doc_comment(session) -> None:
    kind = session["hover_kind"].contents.value
    assert "**storage**" in kind and "Battery or other storage" in kind and "`energy`: MWh, required, range >= 0" in kind
    param = session["hover_param"].contents.value
    assert param.startswith("- `efficiency`: -, default 1, range (0, 1]") and "one-way" in param and "State of charge" in param
    assert "bus b25" in session["hover_bus"].contents.value and "ieee33" in session["hover_bus"].contents.value
    assert 'csv("data/day_profiles.csv", column = "pv")' in session["hover_profile"].contents.value


def test_definition_goes_to_the_kind_the_bus_and_the_included_file(session) -> None:
    kind, bus, include = (session[k] for k in ("def_kind", "def_bus", "def_include"))
    assert Path(to_fs_path(kind.uri)).resolve() == STORAGE_GRID.resolve()
    assert STORAGE_GRID.read_text().splitlines()[kind.range.start.line].startswith("kind storage")
    network = CASES / "ieee33_network.grid"
    assert Path(to_fs_path(bus.uri)) == network.resolve()
    line = network.read_text().splitlines()[bus.range.start.line]
    assert line[bus.range.start.character :].startswith("b2..b33")  # b25 is defined by the range b2..b33
    assert Path(to_fs_path(include.uri)) == (CASES / "ieee33_loads.grid").resolve() and include.range.start.line == 0


def test_completion_offers_buses_parameters_and_kinds(session) -> None:
    buses = _items(session["complete_bus"])
    assert buses == {f"b{i}" for i in range(1, 34)}
    params = _items(session["complete_param"])
    assert {"energy", "power", "soc_init", "cyclic", "rating"} <= params and "capacity" not in params
    top = _items(session["complete_top"])
    assert {"storage", "pv", "grid", "lindistflow", "network", "profile"} <= top and "b1" not in top
