"""`sigserve predict`'s flags, and the batch runs they ask for: a file streamed here, or a table
scored on Spark or Ray. An MLflow JSON payload (or a body on standard input) is still scored
whole, as `mlflow models predict` scores it."""

from __future__ import annotations

import argparse

from sigserve.batch.chunks import INPUT_FORMATS, format_of
from sigserve.batch.frames import FrameScorer
from sigserve.batch.run import DEFAULT_BATCH_ROWS, ON_ERROR, BatchOptions, run_batch
from sigserve.batch.writers import OUTPUT_FORMATS, output_format_of
from sigserve.errors import BadRequest
from sigserve.sources.resolved import ResolvedModel

CONTENT_TYPES = {"json": "application/json", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
ENGINES = ("local", "spark", "ray")
DEFAULT_SPARK_MASTER = "local[*]"


def add_predict_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input-path", default=None,
                        help="input file (default stdin); for --engine spark or ray, a path or table they read")
    parser.add_argument("-o", "--output-path", default=None, help="output file (default stdout)")
    parser.add_argument("-t", "--content-type", default=None, choices=sorted([*CONTENT_TYPES, "jsonl"]),
                        help="the input's format (default: by the input's suffix, else json, an MLflow payload)")
    parser.add_argument("--output-format", default=None, choices=OUTPUT_FORMATS,
                        help="default: by the output's suffix (.parquet, .csv, .jsonl), else MLflow's "
                             '{"predictions": ...} JSON')
    parser.add_argument("--batch-rows", type=_positive, default=DEFAULT_BATCH_ROWS,
                        help=f"rows scored per batch (default {DEFAULT_BATCH_ROWS:,})")
    parser.add_argument("--keep-columns", default="",
                        help="comma-separated input columns written beside the predictions (an ID, say)")
    parser.add_argument("--on-error", default="fail", choices=ON_ERROR,
                        help="a row the signature or the model refuses ends the run (fail, the default) or is "
                             "written to --skipped-path (skip)")
    parser.add_argument("--skipped-path", default=None,
                        help="where skipped rows go, as JSON Lines (default OUTPUT.skipped.jsonl)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="a progress line on stderr (default: when stderr is a terminal)")
    parser.add_argument("--engine", default="local", choices=ENGINES,
                        help="score here (local), on Apache Spark or on Ray")
    parser.add_argument("--spark-master", default=DEFAULT_SPARK_MASTER,
                        help=f"with --engine spark (default {DEFAULT_SPARK_MASTER})")
    parser.add_argument("--ray-address", default=None,
                        help="with --engine ray: a cluster's address (default: a local Ray)")


def batch_options(args: argparse.Namespace) -> BatchOptions | None:
    """None for a payload scored whole: MLflow JSON, or a CSV or Parquet body on stdin."""
    path = args.input_path
    input_format = args.content_type or (format_of(path) if path else None) or "json"
    if args.engine == "local" and (input_format == "json" or (path is None and input_format != "jsonl")):
        if args.keep_columns or args.on_error != "fail" or args.output_format not in (None, "json"):
            raise BadRequest("--keep-columns, --on-error and --output-format need a Parquet, CSV or JSON Lines "
                             "input file")
        args.content_type = input_format
        return None
    if args.engine != "local" and (path is None or args.output_path is None):
        raise BadRequest(f"--engine {args.engine} reads -i and writes -o: both are needed")
    if input_format not in INPUT_FORMATS and args.engine == "local":
        raise BadRequest(f"Cannot stream a {input_format} input: use parquet, csv or jsonl")
    return BatchOptions(
        input_path=path or "-",
        input_format=input_format,
        output_path=args.output_path,
        output_format=args.output_format or output_format_of(args.output_path),
        batch_rows=args.batch_rows,
        keep_columns=tuple(name.strip() for name in args.keep_columns.split(",") if name.strip()),
        on_error=args.on_error,
        skipped_path=args.skipped_path,
        progress=args.progress,
    )


def predict_in_batches(args: argparse.Namespace, options: BatchOptions, resolved: ResolvedModel) -> int:
    if args.engine == "spark":
        from sigserve.spark import predict_on_spark

        predict_on_spark(resolved.path, options, args.spark_master)
    elif args.engine == "ray":
        from sigserve.ray import predict_on_ray

        predict_on_ray(resolved.path, options, args.ray_address)
    else:
        run_batch(FrameScorer.load(resolved.path), options)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value
