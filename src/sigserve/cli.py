"""`sigserve serve | predict | demo`, with the flags of `mlflow models serve|predict`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from sigserve import __version__
from sigserve.errors import ModelLoadError, SigserveError
from sigserve.model.loader import load_model
from sigserve.model.source import resolve
from sigserve.scoring import Scorer

CONTENT_TYPES = {"json": "application/json", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


def _serve_flags(parser: argparse.ArgumentParser, with_model: bool = True) -> None:
    parser.add_argument("--help", action="help", help="show this help and exit")
    if with_model:
        parser.add_argument("-m", "--model-uri", required=True, help="model URI or local path")
    parser.add_argument("-h", "--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("-w", "--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "-t", "--timeout", type=float, default=None,
        help="request timeout in seconds (default $MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT or 60)",
    )
    parser.add_argument("--env-manager", default="local", choices=["local"],
                        help="accepted for mlflow compatibility; sigserve serves in this environment")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sigserve", description=__doc__)
    parser.add_argument("--version", action="version", version=f"sigserve {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", add_help=False, help="serve a model over HTTP")
    _serve_flags(serve)

    demo = commands.add_parser("demo", add_help=False, help="serve the bundled iris demo model")
    _serve_flags(demo, with_model=False)

    predict = commands.add_parser("predict", help="score a file with the same decoding and enforcement")
    predict.add_argument("-m", "--model-uri", required=True)
    predict.add_argument("-i", "--input-path", default=None, help="input file (default stdin)")
    predict.add_argument("-o", "--output-path", default=None, help="output file (default stdout)")
    predict.add_argument("-t", "--content-type", default="json", choices=sorted(CONTENT_TYPES))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "warning").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "predict":
            return _predict(args)
        return _serve(args)
    except SigserveError as exc:
        print(f"sigserve: {exc.message}", file=sys.stderr)
        return 2 if isinstance(exc, ModelLoadError) else 1
    except OSError as exc:
        print(f"sigserve: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1


def _load_scorer(uri: str) -> Scorer:
    return Scorer(load_model(resolve(uri).path))


def _serve(args: argparse.Namespace) -> int:
    from sigserve.server.app import ScoringApp
    from sigserve.server.run import request_timeout, run_server

    if args.command == "demo":
        from sigserve.demo import DEMO_MODEL_DIR

        args.model_uri = str(DEMO_MODEL_DIR)
    scorer = _load_scorer(args.model_uri)
    scorer.warm_up()
    app = ScoringApp(scorer, timeout_seconds=request_timeout(args.timeout))
    logging.getLogger("sigserve").info(
        "serving %s on http://%s:%d (%d worker%s)",
        args.model_uri, args.host, args.port, args.workers, "" if args.workers == 1 else "s",
    )
    run_server(app, args.host, args.port, args.workers, args.log_level)
    return 0


def _predict(args: argparse.Namespace) -> int:
    body = Path(args.input_path).read_bytes() if args.input_path else sys.stdin.buffer.read()
    scorer = _load_scorer(args.model_uri)
    result = scorer.score(CONTENT_TYPES[args.content_type], body)
    if args.output_path:
        Path(args.output_path).write_bytes(result)
    else:
        sys.stdout.buffer.write(result + b"\n")
    return 0

