"""`jsontune serve`: vLLM's OpenAI-compatible server for a checkpoint, until Ctrl-C or SIGTERM.

jsontune serve runs/merged
jsontune serve Qwen/Qwen3-0.6B --lora runs/run1/best --port 8001 --api-key "$KEY"
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from jsontune.cli.common import console, engine_options, err_console
from jsontune.serving.settings import VLLM, EngineSettings


@engine_options(VLLM)
def serve(
    model: Annotated[str, typer.Argument(help="A merged checkpoint folder (or, with --lora, the adapter's base).")],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind: loopback unless you open it (0.0.0.0).")] = "127.0.0.1",
    lora: Annotated[Path | None, typer.Option(help="A LoRA adapter (RUN/best) to serve on top of MODEL.")] = None,
    api_key: Annotated[
        str | None, typer.Option(help="Require this key from clients (default: $JSONTUNE_API_KEY, else none).")
    ] = None,
    log_dir: Annotated[Path, typer.Option(help="Where the server's log and schema.json go.")] = Path("runs/serve"),
    timeout_s: Annotated[float, typer.Option(help="Seconds to wait for the server to answer /health.")] = 600.0,
    settings: EngineSettings = EngineSettings(),  # vLLM's flags, as predict and bench take them (@engine_options)
) -> None:
    """Serve MODEL with vLLM's OpenAI-compatible server (chat completions, thinking off, guided JSON) and
    stop it, with every process it started, on Ctrl-C or SIGTERM."""
    from jsontune.serving.server import start_server, stop_server

    api_key = api_key or os.environ.get("JSONTUNE_API_KEY")
    with err_console.status(f"starting vLLM's server for {model} (this takes a while on a CPU)"):
        server = start_server(
            model,
            settings,
            host=host,
            port=port,
            lora=str(lora) if lora else None,
            api_key=api_key,
            log_dir=log_dir,
            timeout_s=timeout_s,
        )
    console.print(f"serving [bold]{server.model_name}[/bold] at {server.url}", highlight=False)
    console.print(f"log: {server.log}", highlight=False)
    if server.schema is not None:
        console.print(f"JSON schema for response_format: {server.schema}", highlight=False)
        print(json.dumps(json.loads(server.schema.read_text())))
    else:
        console.print("no JSON schema known: the manifest names no training data to infer one from.")
    console.print(f'try: jsontune extract --url {server.url} "Necesito 100 tornillos a 50 pesos"', highlight=False)
    console.print("Ctrl-C stops the server.")
    try:
        code = server.process.wait()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the app turns it into KeyboardInterrupt)
        stop_server(server)
        console.print("stopped the server.")
        return
    from jsontune.errors import JsontuneError
    from jsontune.serving.server import last_error

    raise JsontuneError(f"the vLLM server exited by itself (code {code}): {last_error(server.log)} (log: {server.log})")
