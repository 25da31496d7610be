// Starts `gridlang lsp` (stdio) for .grid files; everything else is the server's.
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("gridlang").get("server.command", "gridlang");
  const server = { command, args: ["lsp"], transport: TransportKind.stdio };
  client = new LanguageClient("gridlang", "gridlang", server, {
    documentSelector: [{ scheme: "file", language: "grid" }, { scheme: "untitled", language: "grid" }],
  });
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
