"""The `verticals` command line. Imports stay inside commands so `verticals --help` is instant."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Fine-tune a pretrained model on your data and serve it, in one of several verticals.\n\n"
    "Example: verticals demo customer_service",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _vertical(name: str):
    from shared.registry import get_vertical

    try:
        return get_vertical(name)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from None


def _load(vertical, artifact: Path, device: str):
    """The runtime of a checked artifact, with the environment's settings and `--device`."""
    from shared.registry import build_settings, load_runtime

    return load_runtime(vertical, artifact, build_settings(vertical, device=device))


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _setup_logging(verbose: bool) -> None:
    """Text lines, or JSON objects with `VERTICALS_LOG_FORMAT=json` (see `shared.observability`)."""
    from shared.observability import setup_logging
    from shared.settings import ServeSettings

    setup_logging(logging.DEBUG if verbose else logging.INFO, ServeSettings().log_format)


@app.command("list")
def list_verticals() -> None:
    """List the registered verticals.

    Example: verticals list
    """
    from shared.registry import get_vertical, vertical_names

    for name in vertical_names():
        try:
            summary = get_vertical(name).summary
        except Exception as exc:  # one broken vertical must not hide the others
            summary = f"(cannot be loaded: {type(exc).__name__}: {exc})"
        typer.echo(f"{name:20s} {summary}")


@app.command()
def demo(
    verticals: Annotated[
        list[str] | None, typer.Argument(help="Verticals to demo; all when omitted.")
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Folder for the demos' data, models and reports.")
    ] = Path("demo_output"),
    verbose: bool = False,
) -> None:
    """Run the demo of each vertical on embedded, generated data.

    Example: verticals demo customer_service --out demo_output
    """
    from shared.errors import VerticalsError
    from shared.registry import vertical_names

    _setup_logging(verbose)
    timings = {}
    for name in verticals or vertical_names():
        typer.secho(f"\n=== demo: {name} ===", bold=True)
        started = time.perf_counter()
        try:
            summary = _vertical(name).demo(out / name)
        except VerticalsError as exc:
            _fail(exc)
        from shared.training.checkpoint import prune_checkpoints

        prune_checkpoints(out / name)  # a demo is not resumed: its checkpoints only take disk
        timings[name] = time.perf_counter() - started
        typer.echo(json.dumps(summary, indent=2, default=str))
        typer.secho(f"demo {name} finished in {timings[name]:.0f} s", bold=True)
        for line in _next_steps(name, summary):
            typer.echo(f"  next: {line}")
    if len(timings) > 1:
        typer.echo("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))


def _next_steps(name: str, summary: dict) -> list[str]:
    """Commands a user can try on what a demo left (its `artifact`, and `data` when given)."""
    artifact = summary.get("artifact") if isinstance(summary, dict) else None
    if not artifact:
        return []
    steps = [f"verticals serve {name} --artifact {artifact}   # then open /docs"]
    if summary.get("data"):
        steps.append(f"verticals evaluate {name} --artifact {artifact} --data {summary['data']}")
    if _vertical(name).chat is not None:
        steps.append(f"verticals chat {name} --artifact {artifact}")
    return steps


@app.command()
def train(
    vertical: Annotated[str, typer.Argument(help="Vertical name (see `verticals list`).")],
    data: Annotated[
        Path, typer.Option(help="Training data: a file or folder in the vertical's schema.")
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Config overrides such as trainer.lr=3e-5 (see `verticals config`)."),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config file.")] = None,
    out: Annotated[
        Path, typer.Option(help="Output folder; the artifact lands in OUT/artifact.")
    ] = Path("runs/model"),
    resume: Annotated[
        bool, typer.Option(help="Continue a killed run from OUT's last checkpoint.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Replace what an earlier run left in OUT.")
    ] = False,
    keep_checkpoint: Annotated[
        bool,
        typer.Option(
            help="Keep OUT/checkpoint.pt (optimizer state, 2-4x the model) after a finished run."
        ),
    ] = False,
    verbose: bool = False,
) -> None:
    """Fine-tune a vertical's model on your data and write an artifact folder.

    Example: verticals train finance_sentiment --data labelled.csv --config cfg.yaml trainer.epochs=2
    """
    from shared.config import load_config
    from shared.errors import VerticalsError
    from shared.training.checkpoint import check_out_dir, prune_checkpoints

    _setup_logging(verbose)
    v = _vertical(vertical)
    try:
        extra = list(overrides or []) + (["trainer.resume=true"] if resume else [])
        cfg = load_config(v.config_cls, config, extra)
        check_out_dir(out, resume=resume, overwrite=overwrite)
        artifact = v.train(cfg, data, out)
    except VerticalsError as exc:
        _fail(exc)
    freed = prune_checkpoints(out, keep_last=keep_checkpoint)
    if freed:
        typer.echo(
            f"removed training checkpoints ({freed / 1e6:.0f} MB); --keep-checkpoint keeps them"
        )
    typer.echo(f"artifact written to {artifact}")


@app.command()
def pretrain(
    vertical: Annotated[str, typer.Argument(help="Vertical whose text encoder to pretrain.")],
    data: Annotated[
        Path, typer.Option(help="Unlabelled domain text: .txt (one per line) or a table.")
    ],
    out: Annotated[Path, typer.Option(help="Output model folder (give it as model=OUT).")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Settings such as objective=mlm trainer.epochs=2 max_texts=20000."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing OUT.")] = False,
    verbose: bool = False,
) -> None:
    """Continue pretraining a vertical's text encoder on your unlabelled text (SimCSE or MLM).

    Use only texts you may train on (for a fair test: the training split, never the test
    texts). Example: verticals pretrain finance_sentiment --data news.txt --out runs/tapt,
    then verticals train finance_sentiment --data labelled.csv model=runs/tapt
    """
    from shared.config import load_config
    from shared.errors import VerticalsError
    from shared.models import is_text_model
    from shared.pretrain import PretrainConfig
    from shared.pretrain import pretrain as run_pretrain
    from shared.training.checkpoint import check_out_dir, prune_checkpoints

    _setup_logging(verbose)
    v = _vertical(vertical)
    base = v.config_cls.model_fields.get("model")
    if base is None or not isinstance(base.default, str) or not is_text_model(base.default):
        _fail(ValueError(f"{vertical}'s model is not a text encoder: nothing to pretrain"))
    try:
        cfg = load_config(PretrainConfig, None, [f"model={base.default}", *(overrides or [])])
        check_out_dir(out, resume=False, overwrite=overwrite)
        folder = run_pretrain(cfg, data, out)
    except VerticalsError as exc:
        _fail(exc)
    prune_checkpoints(out)
    typer.echo(f"pretrained encoder written to {folder}; train with model={folder}")


@app.command("config")
def show_config(
    vertical: Annotated[str, typer.Argument(help="Vertical name.")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Overrides to apply before printing.")
    ] = None,
) -> None:
    """Print a vertical's full training config, defaults and meanings, as commented YAML.

    Save it, edit it and pass it back with `verticals train --config FILE`.

    Example: verticals config finance_sentiment > cfg.yaml
    """
    from shared.config import config_yaml, load_config
    from shared.errors import VerticalsError

    v = _vertical(vertical)
    try:
        cfg = load_config(v.config_cls, None, list(overrides or []))
    except VerticalsError as exc:
        _fail(exc)
    typer.echo(config_yaml(cfg), nl=False)


@app.command()
def evaluate(
    vertical: Annotated[str, typer.Argument(help="Vertical name.")],
    artifact: Annotated[Path, typer.Option(help="Artifact folder from `verticals train`.")],
    data: Annotated[
        Path | None, typer.Option(help="Labelled data in the vertical's schema.")
    ] = None,
    conversations: Annotated[
        Path | None,
        typer.Option(help="YAML conversation tests (verticals with a chat), instead of --data."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Report folder; reports/<vertical> (or reports/<vertical>-conversations)."
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the metrics as JSON instead of a table.")
    ] = False,
    device: str = "auto",
) -> None:
    """Evaluate an artifact on labelled data; print a table and write a report folder.

    The folder holds metrics.json, the per-class report, a confusion matrix with counts, the
    errors (input, expected, predicted, confidence) and the vertical's own plots.

    Example: verticals evaluate finance_sentiment --artifact runs/model/artifact --data test.csv
    """
    from shared.errors import VerticalsError
    from shared.reports import EvaluationReport, format_table, write_report

    v = _vertical(vertical)
    if (data is None) == (conversations is None):
        _fail(ValueError("give exactly one of --data or --conversations"))
    step = v.evaluate if data is not None else v.evaluate_conversations
    if step is None:
        kind = "labelled-data" if data is not None else "conversation-test"
        _fail(ValueError(f"{vertical} has no {kind} evaluation"))
    folder = out or Path("reports") / (
        vertical if data is not None else f"{vertical}-conversations"
    )
    try:
        report = step(_load(v, artifact, device), data if data is not None else conversations)
    except VerticalsError as exc:
        _fail(exc)
    if not isinstance(report, EvaluationReport):
        report = EvaluationReport(metrics=dict(report))
    write_report(report, folder)
    if json_output:
        typer.echo(json.dumps(report.metrics, indent=2, default=str))
    else:
        typer.echo(format_table(report))
        typer.echo(f"report written to {folder}")
    failed = report.metrics.get("n_failed")
    if conversations is not None and failed:
        raise typer.Exit(code=1)


@app.command()
def chat(
    vertical: Annotated[str, typer.Argument(help="Vertical name (one with a chat).")],
    artifact: Annotated[Path, typer.Option(help="Artifact folder from `verticals train`.")],
    device: str = "auto",
) -> None:
    """Talk to a trained bot in the terminal; each reply shows its intent, confidence and handoff.

    Example: verticals chat customer_service --artifact runs/bot/artifact
    """
    from shared.errors import VerticalsError

    v = _vertical(vertical)
    if v.chat is None:
        _fail(ValueError(f"{vertical} has no chat"))
    try:
        v.chat(_load(v, artifact, device))
    except VerticalsError as exc:
        _fail(exc)


@app.command()
def predict(
    vertical: Annotated[str, typer.Argument(help="Vertical name.")],
    artifact: Annotated[Path, typer.Option(help="Artifact folder from `verticals train`.")],
    input: Annotated[Path, typer.Option("--input", help="CSV, JSONL or Parquet rows to predict.")],
    output: Annotated[Path | None, typer.Option(help="JSONL output; stdout when omitted.")] = None,
    device: str = "auto",
) -> None:
    """Predict for every row of an input table, through the same engine the service uses.

    Example: verticals predict finance_sentiment --artifact runs/model/artifact --input news.csv
    """
    from shared.data import read_table
    from shared.errors import VerticalsError

    v = _vertical(vertical)
    try:
        rows = read_table(input).to_dict(orient="records")
        results = _load(v, artifact, device).predict(rows)
    except VerticalsError as exc:
        _fail(exc)
    lines = "\n".join(
        json.dumps({**_input_key(i, row), **result}, default=str)
        for i, (row, result) in enumerate(zip(rows, results, strict=True))
    )
    if output is None:
        typer.echo(lines)
    else:
        output.write_text(lines + "\n", encoding="utf-8")
        typer.echo(f"{len(results)} predictions written to {output}")


def _input_key(index: int, row: dict) -> dict:
    """What ties an output line to its input: the row's number, and its `id` or else the row."""
    return {"row": index, **({"id": row["id"]} if "id" in row else {"input": row})}


@app.command()
def compress(
    vertical: Annotated[str, typer.Argument(help="Vertical name (one with a compress hook).")],
    artifact: Annotated[Path, typer.Option(help="Artifact folder to compress; never modified.")],
    method: Annotated[
        str,
        typer.Option(
            help="int8 | onnx | onnx-int8 | interpolate | fp16 | bf16 | distill | lora-merge (those "
            "the vertical supports; another is refused with the vertical's list).",
        ),
    ],
    data: Annotated[
        Path,
        typer.Option(help="Labelled data; its validation split measures (and picks alpha)."),
    ],
    out: Annotated[Path, typer.Option(help="New artifact folder; must not exist.")],
    alphas: Annotated[
        str, typer.Option(help="interpolate: the alphas to try, comma-separated.")
    ] = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1",
    rounds: Annotated[int, typer.Option(help="Timing rounds, interleaved original/new.")] = 3,
    device: str = "cpu",
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the compression record as JSON.")
    ] = False,
    verbose: bool = False,
) -> None:
    """Write a compressed copy of an artifact (int8, ONNX, WiSE-FT...) and measure it.

    Prints the size (MB), p50 latency, throughput and metric change against the original,
    measured side by side on the validation split of --data; the new manifest records them.

    Example: verticals compress finance_sentiment --artifact runs/model/artifact --method int8 --data labelled.csv --out runs/model/int8
    """
    from shared.compression import compress_artifact, format_table
    from shared.errors import VerticalsError

    _setup_logging(verbose)
    v = _vertical(vertical)
    try:
        grid = _alphas(alphas)
    except ValueError as exc:
        _fail(exc)
    try:
        section = compress_artifact(
            v, artifact, out, method, data, alphas=grid, device=device, rounds=rounds
        )
    except VerticalsError as exc:
        _fail(exc)
    if json_output:
        typer.echo(json.dumps(section, indent=2, default=str))
        return
    measured = section["measured"]
    typer.echo(f"{method}: measured on {measured['split']}, {measured['threads']} thread(s)")
    typer.echo(format_table(measured["rows"], measured["metric"]))
    typer.echo(f"compressed artifact written to {out}")


def _alphas(text: str) -> tuple[float, ...]:
    """`"0,0.5,1"` -> (0.0, 0.5, 1.0); a ValueError names a value that is not in [0, 1]."""
    values = []
    for part in text.split(","):
        try:
            values.append(float(part))
        except ValueError:
            raise ValueError(f"--alphas: {part.strip()!r} is not a number") from None
        if not 0.0 <= values[-1] <= 1.0:
            raise ValueError(f"--alphas: {values[-1]} is not in [0, 1]")
    return tuple(values)


@app.command()
def serve(
    vertical: Annotated[str, typer.Argument(help="Vertical name.")],
    artifact: Annotated[Path, typer.Option(help="Artifact folder to serve.")],
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[
        int, typer.Option(help="Uvicorn worker processes (each loads the model).")
    ] = 1,
) -> None:
    """Serve a vertical's artifact over HTTP (FastAPI + uvicorn); docs at /docs.

    Example: VERTICALS_API_KEY=secret verticals serve finance_sentiment --artifact runs/model/artifact
    """
    import os

    import uvicorn

    from shared.settings import ServeSettings

    _vertical(vertical)
    _check_port(host, port)  # before any model loads
    os.environ["VERTICALS_SERVE_VERTICAL"] = vertical
    os.environ["VERTICALS_SERVE_ARTIFACT"] = str(artifact)
    json_logs = ServeSettings().log_format == "json"
    uvicorn.run(
        "shared.cli:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None if json_logs else uvicorn.config.LOGGING_CONFIG,
        access_log=not json_logs,  # JSON mode logs each request itself, with its route
    )


def _check_port(host: str, port: int) -> None:
    """Exits with a clear message when `host:port` cannot be bound (busy, or not ours)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            _fail(OSError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port"))


def app_from_env():
    """Uvicorn factory: builds the app named by `VERTICALS_SERVE_*` (one per worker process)."""
    import os

    from shared.registry import get_vertical
    from shared.serving import create_app

    _setup_logging(False)
    return create_app(
        get_vertical(os.environ["VERTICALS_SERVE_VERTICAL"]), os.environ["VERTICALS_SERVE_ARTIFACT"]
    )


if __name__ == "__main__":
    app()
