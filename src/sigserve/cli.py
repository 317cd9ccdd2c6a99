"""`sigserve serve | predict | demo`, with the flags of `mlflow models serve|predict`."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

from sigserve import __version__
from sigserve.codecs.limits import UNLIMITED, DecodeLimits, default_max_decoded_bytes
from sigserve.demo import DEMO_REGISTRY_URI, ensure_demo_registered
from sigserve.dockerfile import (
    add_generate_dockerfile_flags,
    generate_dockerfile_command,
)
from sigserve.codecs.json_encode import encode_json
from sigserve.errors import ModelLoadError, SigserveError
from sigserve.logging_setup import configure_logging
from sigserve.manager.loading import load_models
from sigserve.manager.fleet import ModelSet, ModelSpec
from sigserve.manager.lru import ResidentModels
from sigserve.manager.traffic import TrafficPolicy
from sigserve.serve_config import ConfigError, ServeConfig, ServeSettings, from_flags, read_config
from sigserve.loaders.loader import load_model
from sigserve.model.mlmodel import read_mlmodel
from sigserve.sources.resolved import ResolvedModel
from sigserve.sources.source import resolve
from sigserve.sources.settings import SourceSettings
from sigserve.admin.cli import add_registry_commands, run_registry_command
from sigserve.predict_cli import CONTENT_TYPES, add_predict_flags, batch_options, predict_in_batches
from sigserve.scoring import Scorer
from sigserve.native_threads import (
    default_native_threads,
    limit_native_threads,
    threads_for,
)
from sigserve.server.settings import ConnectionLimits, GrpcListener, ServerSettings

DEFAULT_RELOAD_SECONDS = 30.0
DEFAULT_GRPC_PORT = 8081
MODEL_URI_ENV = "MODEL_URI"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


def _model_flags(parser: argparse.ArgumentParser, serving: bool = False) -> None:
    uri_help = ("models:/name@alias, models:/name/version|stage|latest, models:/m-<id>, "
                "runs:/<run id>/<path>, a local path or file:// URI")
    if serving:
        parser.add_argument("-m", "--model-uri", action="append", default=None,
                            help=uri_help + f"; repeat to serve several models, the first answering POST "
                                            f"/invocations (default ${MODEL_URI_ENV})")
        parser.add_argument("--config", default=_env("CONFIG", None),
                            help="a YAML file listing the models to serve (`models:`, each with `uri` and "
                                 "optional `name`, `reload_interval`, `batch_max_size`, `batch_max_wait_ms`, "
                                 "`max_concurrency`) and their `traffic:` policies, instead of -m "
                                 "(default $SIGSERVE_CONFIG)")
        parser.add_argument("--traffic", action="append", default=None,
                            help="NAME=shadow or NAME=canary:SHARE[:HEADER]: how a model served in two versions "
                                 "(e.g. -m models:/churn@champion -m models:/churn@challenger) shares its traffic; "
                                 "repeatable (default $SIGSERVE_TRAFFIC, comma-separated)")
    else:
        parser.add_argument("-m", "--model-uri", required=True, help=uri_help)
    parser.add_argument("--registry-uri", default=None,
                        help="registry (default $MLFLOW_REGISTRY_URI, $MLFLOW_TRACKING_URI, "
                             "else sqlite:///mlflow.db)")
    parser.add_argument("--cache-dir", default=None,
                        help="where downloaded models are cached (default $SIGSERVE_CACHE_DIR, "
                             "else ~/.cache/sigserve)")


def _env(name: str, default: object) -> object:
    """A serve flag's default from `SIGSERVE_<NAME>`, so a container is configured by env alone;
    argparse converts and checks it like a typed flag."""
    return os.environ.get(f"SIGSERVE_{name}", default)


def _flag_env(name: str, default: bool = False) -> bool:
    """A boolean `SIGSERVE_<NAME>`: the usual spellings of false turn it off, anything else on."""
    value = os.environ.get(f"SIGSERVE_{name}", "")
    if not value.strip():  # unset, or rendered empty by a template
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


def _serve_flags(parser: argparse.ArgumentParser, with_model: bool = True) -> None:
    parser.add_argument("--help", action="help", help="show this help and exit")
    if with_model:
        _model_flags(parser, serving=True)
    parser.add_argument("-h", "--host", default=_env("HOST", "127.0.0.1"),
                        help="bind address (default $SIGSERVE_HOST, else 127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, default=_env("PORT", 5000),
                        help="port (default $SIGSERVE_PORT, else 5000)")
    parser.add_argument("--grpc-port", type=int, default=_env("GRPC_PORT", DEFAULT_GRPC_PORT),
                        help="port of the Open Inference Protocol's gRPC service (and grpc.health.v1), on the "
                             f"same host, served by every worker (default $SIGSERVE_GRPC_PORT, else {DEFAULT_GRPC_PORT}, "
                             "as MLServer; 0 turns it off)")
    parser.add_argument("-w", "--workers", type=int, default=_env("WORKERS", 1),
                        help="worker processes (default $SIGSERVE_WORKERS, else 1)")
    parser.add_argument(
        "-t", "--timeout", type=float, default=_env("TIMEOUT", None),
        help="request timeout in seconds (default $SIGSERVE_TIMEOUT, "
             "$MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT, else 60)",
    )
    parser.add_argument("--env-manager", default="local", choices=["local"],
                        help="accepted for mlflow compatibility; sigserve serves in this environment")
    parser.add_argument("--log-level", default=_env("LOG_LEVEL", "info"), type=str.lower, choices=LOG_LEVELS,
                        help="(default $SIGSERVE_LOG_LEVEL, else info)")
    parser.add_argument("--log-format", default=_env("LOG_FORMAT", "text"), type=str.lower, choices=LOG_FORMATS,
                        help="text lines, or one JSON object per line for log collectors "
                             "(default $SIGSERVE_LOG_FORMAT, else text)")
    parser.add_argument("--no-access-log", dest="access_log", action="store_false",
                        default=_flag_env("ACCESS_LOG", default=True),
                        help="do not log one line per request (or SIGSERVE_ACCESS_LOG=false)")
    parser.add_argument("--reload-interval", type=float, default=_env("RELOAD_INTERVAL", DEFAULT_RELOAD_SECONDS),
                        help="for models:/name@alias, /latest or /<stage>: seconds between registry "
                             f"polls for a new version (default $SIGSERVE_RELOAD_INTERVAL, else "
                             f"{DEFAULT_RELOAD_SECONDS:g}; 0 turns it off)")
    parser.add_argument("--max-body-bytes", type=int, default=_env("MAX_BODY_BYTES", ServerSettings.max_body_bytes),
                        help="larger requests get 413 (default $SIGSERVE_MAX_BODY_BYTES, else "
                             f"{ServerSettings.max_body_bytes})")
    parser.add_argument("--max-concurrency", type=int, default=_env("MAX_CONCURRENCY", ServerSettings.max_concurrency),
                        help="requests scored at once per worker; more get 503 with Retry-After "
                             f"(default $SIGSERVE_MAX_CONCURRENCY, else {ServerSettings.max_concurrency})")
    decode_limits = DecodeLimits()
    parser.add_argument("--max-rows", type=int, default=_env("MAX_ROWS", decode_limits.max_rows),
                        help="requests holding more rows get 413, counted before decoding (default "
                             f"$SIGSERVE_MAX_ROWS, else {decode_limits.max_rows})")
    parser.add_argument("--max-columns", type=int, default=_env("MAX_COLUMNS", decode_limits.max_columns),
                        help="CSV and Parquet bodies with more columns get 413 when every column must be read "
                             "(a model whose signature does not name its inputs); otherwise only the "
                             f"signature's are read (default $SIGSERVE_MAX_COLUMNS, else {decode_limits.max_columns})")
    parser.add_argument("--max-decoded-bytes", type=int, default=_env("MAX_DECODED_BYTES", None),
                        help="requests that would decode to more bytes get 413, checked before or while "
                             "decoding (default $SIGSERVE_MAX_DECODED_BYTES, else "
                             "8 times --max-body-bytes, and at least 64 MiB)")
    parser.add_argument("--model-name", default=_env("MODEL_NAME", None),
                        help="with one model, the name it is served as: /v2/models/<name> for KServe V2 "
                             "clients and /invocations/<name> (default $SIGSERVE_MODEL_NAME, else the "
                             "registered name or the directory name; with several, `name:` in --config)")
    parser.add_argument("--native-threads", type=int, default=_env("NATIVE_THREADS", default_native_threads()),
                        help="threads each native thread pool (OpenMP, BLAS) may use per predict call "
                             "with one worker; raise it for large batches on otherwise idle cores. With "
                             "several workers it is 1 (default $SIGSERVE_NATIVE_THREADS, $OMP_NUM_THREADS, else 1)")
    parser.add_argument("--allow-failing-example", action="store_true",
                        default=_flag_env("ALLOW_FAILING_EXAMPLE"),
                        help="serve a model that fails on its own serving_input_example.json instead of "
                             "refusing to start (or to reload); it is then never reported ready "
                             "(or SIGSERVE_ALLOW_FAILING_EXAMPLE=true)")
    parser.add_argument("--max-loaded-models", type=int, default=_env("MAX_LOADED_MODELS", 0), metavar="K",
                        help="keep at most K models in memory per worker: the first K load at start, the "
                             "others on their first request, evicting the least recently used idle one "
                             "(default $SIGSERVE_MAX_LOADED_MODELS, else 0: all load at start and stay)")
    limits = ConnectionLimits()
    parser.add_argument("--header-timeout", type=float, default=_env("HEADER_TIMEOUT", limits.header_timeout_seconds),
                        help="seconds a client has to send a request's head, from connecting or from its "
                             "first byte; slower ones get 408 and are closed (default "
                             f"$SIGSERVE_HEADER_TIMEOUT, else {limits.header_timeout_seconds:g})")
    parser.add_argument("--body-timeout", type=float, default=_env("BODY_TIMEOUT", limits.body_timeout_seconds),
                        help="seconds a client has to send a request's body once its head is in (default "
                             f"$SIGSERVE_BODY_TIMEOUT, else {limits.body_timeout_seconds:g})")
    parser.add_argument("--keep-alive", type=float, default=_env("KEEP_ALIVE", limits.keep_alive_seconds),
                        help="seconds an idle keep-alive connection stays open; keep it above the idle "
                             "timeout of a load balancer in front (default $SIGSERVE_KEEP_ALIVE, else "
                             f"{limits.keep_alive_seconds:g})")
    parser.add_argument("--max-connections", type=int, default=_env("MAX_CONNECTIONS", limits.max_connections),
                        help="open connections per worker (at most the file descriptor limit less 64); at "
                             "the cap, the connection waiting longest for its request is closed "
                             f"(default $SIGSERVE_MAX_CONNECTIONS, else {limits.max_connections})")
    parser.add_argument("--batch-max-size", type=int, default=_env("BATCH_MAX_SIZE", 0),
                        help="merge concurrent requests into one predict call of up to this many "
                             "rows (default $SIGSERVE_BATCH_MAX_SIZE, else 0: off; only for models "
                             "whose rows are independent)")
    parser.add_argument("--batch-max-wait-ms", type=float,
                        default=_env("BATCH_MAX_WAIT_MS", ServerSettings.batch_max_wait_seconds * 1000),
                        help="longest a request waits for others to join its batch (default "
                             f"$SIGSERVE_BATCH_MAX_WAIT_MS, else {ServerSettings.batch_max_wait_seconds * 1000:g})")
    parser.add_argument("--auth-token-file", default=_env("AUTH_TOKEN_FILE", None),
                        help="require 'Authorization: Bearer <token>' everywhere but /ping, /health and "
                             "/v2/health/*; the accepted tokens, one a line, are re-read when the file changes "
                             "(default $SIGSERVE_AUTH_TOKEN_FILE; $SIGSERVE_AUTH_TOKENS, comma-separated, adds tokens "
                             "and turns authentication on too)")
    parser.add_argument("--metrics-without-auth", action="store_true", default=_flag_env("METRICS_WITHOUT_AUTH"),
                        help="with authentication on, leave GET /metrics open to scrapers without a token "
                             "(or SIGSERVE_METRICS_WITHOUT_AUTH=true)")
    parser.add_argument("--tls-cert", default=_env("TLS_CERT", None),
                        help="serve HTTPS with this PEM certificate (and chain), re-read when it changes; "
                             "needs --tls-key (default $SIGSERVE_TLS_CERT)")
    parser.add_argument("--tls-key", default=_env("TLS_KEY", None),
                        help="the certificate's unencrypted PEM private key (default $SIGSERVE_TLS_KEY)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sigserve", description=__doc__)
    parser.add_argument("--version", action="version", version=f"sigserve {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", add_help=False, help="serve a model over HTTP")
    _serve_flags(serve)

    demo = commands.add_parser(
        "demo", add_help=False, help="register the bundled iris model in the local registry and serve it"
    )
    _serve_flags(demo, with_model=False)
    demo.add_argument("--registry-uri", default=DEMO_REGISTRY_URI,
                      help=f"where to register the demo model (default {DEMO_REGISTRY_URI})")

    predict = commands.add_parser("predict", help="score a file with the same decoding and enforcement")
    _model_flags(predict)
    add_predict_flags(predict)

    info = commands.add_parser("info", help="print what a model URI resolves to, as JSON")
    _model_flags(info)

    dockerfile = commands.add_parser("generate-dockerfile",
                                     help="write a build context for an image with the model baked in")
    _model_flags(dockerfile)
    add_generate_dockerfile_flags(dockerfile)
    add_registry_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("serve", "demo"):
        _check_serve_args(parser, args)
    configure_logging(getattr(args, "log_level", "warning"), getattr(args, "log_format", "text"))
    try:
        if args.command == "registry":
            return run_registry_command(args)
        if args.command == "predict":
            return _predict(args)
        if args.command == "info":
            return _info(args)
        if args.command == "generate-dockerfile":
            return generate_dockerfile_command(args, _resolve(args))
        return _serve(serve_settings(args), demo=args.command == "demo", demo_name=args.model_name or None)
    except SigserveError as exc:
        print(f"sigserve: {exc.message}", file=sys.stderr)
        return 2 if isinstance(exc, ModelLoadError) else 1
    except OSError as exc:
        print(f"sigserve: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1


def _check_serve_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """argparse checks typed defaults but not their choices or ranges, and env supplies defaults."""
    args.log_level, args.log_format = str(args.log_level).lower(), str(args.log_format).lower()
    if args.log_level not in LOG_LEVELS:
        parser.error(f"log level {args.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    if args.log_format not in LOG_FORMATS:
        parser.error(f"log format {args.log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    if args.max_decoded_bytes is None:
        args.max_decoded_bytes = default_max_decoded_bytes(args.max_body_bytes)
    positive = {"workers": args.workers, "max-concurrency": args.max_concurrency, "max-body-bytes": args.max_body_bytes,
                "native-threads": args.native_threads, "max-connections": args.max_connections,
                "max-rows": args.max_rows, "max-columns": args.max_columns,
                "max-decoded-bytes": args.max_decoded_bytes}
    for flag, value in positive.items():
        if value < 1:
            parser.error(f"--{flag} must be at least 1, got {value}")
    args.tls_cert, args.tls_key = args.tls_cert or None, args.tls_key or None  # empty env is unset
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together ($SIGSERVE_TLS_CERT and $SIGSERVE_TLS_KEY): "
                     "give both or neither")
    _check_models(parser, args)
    from sigserve.server.run import request_timeout

    try:  # -t, or MLflow's variable, resolved here: a bad value must not wait for the model to load
        args.timeout = request_timeout(args.timeout)
    except ValueError as exc:
        parser.error(str(exc))
    for flag, value in {"header-timeout": args.header_timeout, "body-timeout": args.body_timeout,
                        "keep-alive": args.keep_alive}.items():
        if not value > 0:
            parser.error(f"--{flag} must be positive, got {value:g}")
    for flag, value in {"reload-interval": args.reload_interval, "batch-max-size": args.batch_max_size,
                        "batch-max-wait-ms": args.batch_max_wait_ms,
                        "max-loaded-models": args.max_loaded_models}.items():
        if value < 0:
            parser.error(f"--{flag} must not be negative, got {value:g}")
    for flag, value in {"port": args.port, "grpc-port": args.grpc_port}.items():
        if not 0 <= value <= 65535:
            parser.error(f"--{flag} must be a port number from 0 to 65535, got {value}")
    if args.grpc_port and args.grpc_port == args.port:
        parser.error(f"--grpc-port {args.grpc_port} is the HTTP port too: give gRPC a port of its own (0: no gRPC)")


def _check_models(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Which models to serve, checked before anything loads: `args.serve_config`."""
    if args.command == "demo":  # its one model is registered when it starts
        args.serve_config = None
        return
    uris = args.model_uri or []
    try:
        if args.traffic is None:
            args.traffic = [item.strip() for item in str(_env("TRAFFIC", "")).split(",") if item.strip()]
        if args.config and uris:
            parser.error("give the models with -m or in --config, not both")
        if args.config and args.model_name:
            parser.error("--model-name names the one model given with -m; in --config, give each model its `name:`")
        if args.config:
            args.serve_config = read_config(args.config, args.traffic)
        else:
            uris = uris or ([os.environ[MODEL_URI_ENV]] if os.environ.get(MODEL_URI_ENV, "").strip() else [])
            if not uris:
                parser.error(f"a model to serve is required: -m/--model-uri (or ${MODEL_URI_ENV}), or --config")
            args.serve_config = from_flags(uris, args.traffic, args.model_name)
    except ConfigError as exc:
        parser.error(str(exc))


def _source_settings(args: argparse.Namespace) -> SourceSettings:
    """Where the registry is and how to reach it: the flags over the environment, read once."""
    return SourceSettings.from_env(registry_uri=args.registry_uri, cache_dir=getattr(args, "cache_dir", None))


def _resolve(args: argparse.Namespace, sources: SourceSettings | None = None) -> ResolvedModel:
    return resolve(args.model_uri, sources or _source_settings(args))


def _load_scorer(args: argparse.Namespace) -> Scorer:
    return Scorer(load_model(_resolve(args).path))


def _info(args: argparse.Namespace) -> int:
    resolved = _resolve(args)
    meta = read_mlmodel(resolved.path)
    report = {
        "uri": resolved.uri,
        "registry": resolved.registry,
        "name": resolved.name,
        "version": resolved.version,
        "aliases": list(resolved.aliases),
        "stage": resolved.stage,
        "source": resolved.source,
        "local_path": str(resolved.path),
        "flavor": meta.loader_module,
        "signature": meta.signature.raw if meta.signature else None,
    }
    sys.stdout.write(encode_json(report).decode() + "\n")
    return 0


def serve_settings(args: argparse.Namespace) -> ServeSettings:
    """The flags and environment of `serve` and `demo`, checked (`_check_serve_args`) into one object."""
    from sigserve.server.auth import BearerAuth
    from sigserve.server.tls import TlsFiles

    auth = BearerAuth.from_config(args.auth_token_file, args.metrics_without_auth)  # before the slow part
    sources = _source_settings(args)
    tls = TlsFiles.from_flags(args.tls_cert, args.tls_key)
    server = ServerSettings(
        timeout_seconds=args.timeout,
        max_body_bytes=args.max_body_bytes,
        max_concurrency=args.max_concurrency,
        access_log=args.access_log,
        batch_max_size=args.batch_max_size,
        batch_max_wait_seconds=args.batch_max_wait_ms / 1000,
        connections=connection_limits(args, args.timeout),
        decode_limits=DecodeLimits(args.max_rows, args.max_columns, args.max_decoded_bytes),
        auth=auth,
        grpc=GrpcListener(args.host, args.grpc_port, tls) if args.grpc_port else None,
    )
    return ServeSettings(
        models=args.serve_config or ServeConfig([]), sources=sources, server=server,
        host=args.host, port=args.port, workers=args.workers, log_level=args.log_level,
        native_threads=threads_for(args.native_threads, args.workers), reload_interval=args.reload_interval,
        allow_failing_example=args.allow_failing_example, max_loaded_models=args.max_loaded_models,
        tls=tls,
    )


def _serve(settings: ServeSettings, demo: bool = False, demo_name: str | None = None) -> int:
    from sigserve.server.app import ScoringApp
    from sigserve.server.metrics import Metrics, prepare_multiprocess_dir
    from sigserve.server.run import run_server

    if settings.server.grpc is not None:  # before the slow part: a taken port is found at once
        from sigserve.server.grpc_server import check_port_free

        problem = check_port_free(settings.server.grpc)
        if problem is not None:
            print(f"sigserve: {problem}", file=sys.stderr)
            return 2
    if demo:
        demo_spec = ModelSpec(ensure_demo_registered(settings.sources), demo_name)
        settings = dataclasses.replace(settings, models=ServeConfig([demo_spec]))
    if settings.workers > 1:
        prepare_multiprocess_dir()  # before any metric exists, so every worker writes its own file
    metrics = Metrics()
    limit_native_threads(settings.native_threads)
    models = load_models(settings.models.models, settings.models.traffic, settings.sources, metrics,
                         settings.reload_interval, settings.allow_failing_example, settings.max_loaded_models)
    residency = None
    if 0 < settings.max_loaded_models < len(models):
        residency = ResidentModels(models, settings.max_loaded_models, metrics,
                                   allow_failing_example=settings.allow_failing_example,
                                   load_timeout=settings.server.timeout_seconds)
    app = ScoringApp(models, settings.server, metrics, residency)
    _log_start(settings, models, residency)
    run_server(app, settings.host, settings.port, settings.workers, settings.log_level, tls=settings.tls)
    return 0


def _log_start(settings: ServeSettings, models: ModelSet, residency: ResidentModels | None) -> None:
    log = logging.getLogger("sigserve")
    for served in models:
        log.info("serving %s as %s (%s/%s)%s", served.spec.uri, served.key, served.current.name,
                 served.current.version,
                 f", polling the registry every {served.poller.interval:g}s" if served.poller else "")
    for group in models.groups.values():
        if group.traffic.policy != "champion":
            log.info("traffic for %s: %s", group.name, _describe_traffic(group.traffic))
    if residency is not None:
        log.info("at most %d models in memory per worker; %s load on their first request", residency.capacity,
                 ", ".join(served.key for served in models if not served.loaded))
    threads = settings.native_threads
    log.info("listening on %s://%s:%d (%d worker%s, %d native thread%s each)",
             "https" if settings.tls else "http", settings.host, settings.port, settings.workers,
             "" if settings.workers == 1 else "s", threads, "" if threads == 1 else "s")
    if settings.server.grpc is not None:
        log.info("gRPC (inference.GRPCInferenceService, grpc.health.v1) on %s:%d%s", settings.host,
                 settings.server.grpc.port, " with TLS" if settings.tls else "")
    if settings.server.auth is not None:
        log.info("%s", settings.server.auth.describe())


def _describe_traffic(policy: TrafficPolicy) -> str:
    if policy.policy == "canary":
        sticky = f", sticky per {policy.sticky_header}" if policy.sticky_header else ""
        return f"canary, {policy.share:.0%} to the challenger{sticky}"
    return "shadow: the challenger scores a copy of each request"


def connection_limits(args: argparse.Namespace, timeout: float) -> ConnectionLimits:
    return ConnectionLimits(
        header_timeout_seconds=args.header_timeout,
        body_timeout_seconds=args.body_timeout,
        keep_alive_seconds=args.keep_alive,
        max_connections=args.max_connections,
        answer_timeout_seconds=timeout + args.body_timeout,
    )


def _predict(args: argparse.Namespace) -> int:
    options = batch_options(args)
    if options is not None:
        return predict_in_batches(args, options, _resolve(args))
    body = Path(args.input_path).read_bytes() if args.input_path else sys.stdin.buffer.read()
    scorer = _load_scorer(args)
    result = scorer.score(CONTENT_TYPES[args.content_type], body, UNLIMITED).body  # a local file: no request limits
    if args.output_path:
        Path(args.output_path).write_bytes(result)
    else:
        sys.stdout.buffer.write(result + b"\n")
    return 0

