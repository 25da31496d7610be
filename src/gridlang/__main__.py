from gridlang.cli import app

app()
