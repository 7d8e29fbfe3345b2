"""The typer CLI: one thin module per verb (options in, one library call, exit code out)."""
