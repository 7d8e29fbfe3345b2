"""Placeholder: being written."""

import typer

from jsontune.cli.common import user_errors

app = typer.Typer(help="Make, check and augment datasets.", no_args_is_help=True)


@app.command("synth")
@user_errors
def synth() -> None:
    """(not yet available)"""
    raise NotImplementedError
