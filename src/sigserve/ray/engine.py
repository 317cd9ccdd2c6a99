"""`sigserve predict --engine ray`: the input read by Ray, scored by an actor pool of `Predictor`s,
written by Ray as a folder of part files; refused rows end the run with sigserve's one-line
message, or go to one side file."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from sigserve.batch.run import BatchOptions, default_skipped_path
from sigserve.errors import BadRequest, SigserveError
from sigserve.model.mlmodel import read_mlmodel
from sigserve.ray.predictor import Predictor
from sigserve.ray.shipping import ship_directory
from sigserve.ray.skipped import SkippedRows

INPUT_FORMATS = ("parquet", "csv", "jsonl")
OUTPUT_FORMATS = ("parquet", "csv", "jsonl")


def predict_on_ray(model_dir: str | os.PathLike[str], options: BatchOptions, address: str | None) -> int:
    """Score `options.input_path` into the folder `options.output_path` on the Ray at `address`
    (`ray://head:10001`, or RAY_ADDRESS; a local Ray without its dashboard when neither is set).
    On a cluster both paths are read and written by the workers: shared or cloud storage. Returns
    the number of skipped rows."""
    _check(options)
    ray = _import_ray()
    started = _connect(ray, address)
    try:
        return _run(ray, model_dir, options)
    finally:
        if started:
            ray.shutdown()


def _check(options: BatchOptions) -> None:
    if options.input_format not in INPUT_FORMATS:
        raise BadRequest(f"--engine ray reads parquet, csv or jsonl input, not {options.input_format} "
                         "(name the format with -t)")
    if options.output_format not in OUTPUT_FORMATS:
        raise BadRequest(f"--engine ray writes a folder of parquet, csv or jsonl files, not {options.output_format}: "
                         "name the output with one of those suffixes or --output-format")


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise BadRequest(f"--engine ray needs Ray: pip install 'sigserve[ray]' ({exc})") from None
    return ray


def _connect(ray: Any, address: str | None) -> bool:
    """Whether this started (or joined) a Ray it should shut down; an initialized one is reused."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address is None:
        ray.init(address="local", include_dashboard=False, **quiet)
    else:
        ray.init(address=address, **quiet)
    return True


def _run(ray: Any, model_dir: str | os.PathLike[str], options: BatchOptions) -> int:
    from sigserve.ray.files import write_output

    keep = list(options.keep_columns)
    skipped, failure = None, None
    if options.on_error == "skip":
        skipped = SkippedRows(options.skipped_path or default_skipped_path(options.output_path))
    try:
        with _quiet_data(ray, options.progress):  # a dataset keeps the settings it was made with
            source = _input_files(options, _parquet_columns(model_dir, keep))
            kwargs = {"model": ship_directory(model_dir), "keep_columns": keep, "on_error": options.on_error,
                      "skipped": skipped}
            scored = ray.data.read_datasource(source).map_batches(
                Predictor, fn_constructor_kwargs=kwargs, batch_size=options.batch_rows, batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=None))
            write_output(scored, options.output_path, options.output_format)
    except Exception as exc:
        failure = _as_sigserve(exc)
    finally:
        count = skipped.close() if skipped is not None else 0
    if failure is not None:
        gc.collect()  # a failed run's executor lives on in cycles of its errors, with its actors' CPUs
        raise failure
    if skipped is not None and count:
        sys.stderr.write(f"skipped {count:,} row{'s' if count > 1 else ''}: see {skipped.path}\n")
    return count


def _input_files(options: BatchOptions, read_columns: list[str] | None) -> Any:
    from sigserve.ray.files import InputFiles

    try:
        return InputFiles(options.input_path, options.input_format, options.batch_rows, read_columns=read_columns)
    except FileNotFoundError:
        raise BadRequest(f"Cannot read the input {options.input_path!r}: no such file or folder") from None
    except (OSError, ValueError) as exc:  # Ray's words for a folder with no files
        raise BadRequest(f"Cannot read the input {options.input_path!r}: {exc}") from None


@contextlib.contextmanager
def _quiet_data(ray: Any, progress: bool | None) -> Iterator[None]:
    """Ray Data's progress bars as sigserve's (on a terminal unless --progress says), its errors
    as sigserve's own one-line message, not a log of Ray's stack; as they were afterwards, for a
    Ray this process shares."""
    context = ray.data.DataContext.get_current()
    logger = logging.getLogger("ray.data")
    settings = {
        "enable_progress_bars": sys.stderr.isatty() if progress is None else progress,
        "print_on_execution_start": False,
        "raise_original_map_exception": True,  # a refused row raises sigserve's error, not Ray's wrapper
    }
    before = {name: getattr(context, name) for name in settings}
    order, level = context.execution_options.preserve_order, logger.level
    for name, value in settings.items():
        setattr(context, name, value)
    context.execution_options.preserve_order = True  # the output in the input's order, as locally
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(context, name, value)
        context.execution_options.preserve_order = order
        logger.setLevel(level)


def _parquet_columns(model_dir: str | os.PathLike[str], keep: list[str]) -> list[str] | None:
    signature = read_mlmodel(model_dir).signature
    inputs = signature.inputs if signature is not None else None
    if inputs is None or inputs.is_tensor or not inputs.has_names:
        return None
    return [*inputs.names, *keep]


def _as_sigserve(exc: Exception) -> Exception:
    """The sigserve error a Ray error carries (a refused row, a model that failed to load), else
    the innermost error's type and first line (a file Ray could not read or write), not Ray's
    stack of tasks; an error of this process is itself."""
    from ray.exceptions import RayError

    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    innermost: BaseException = exc
    while todo:
        error = todo.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, SigserveError) and not isinstance(error, RayError):
            return error
        if not isinstance(error, RayError):
            innermost = error
        todo += [getattr(error, "cause", None), error.__cause__]
    if not isinstance(exc, RayError):
        return exc
    lines = str(innermost).strip().splitlines()
    return BadRequest(f"Ray failed: {type(innermost).__name__}: {lines[0] if lines else ''}".rstrip(": "))
