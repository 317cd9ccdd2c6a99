#!/usr/bin/env python
"""In-process CPU cost per request: sigserve's `Scorer` vs the floor, stage by stage.

Companion to `bench_vs_mlflow.py` for a shared, noisy machine: wrk's req/s there depend on what
else runs on the cores, while CPU time per call, measured in one process, mostly does not. For
one model (`--model`, same choices and same artifact as `bench_vs_mlflow.py`) and each case, it
times, in CPU microseconds per request (best of `--repeats` rounds):

* sigserve: `Scorer.score` whole, and its stages: `decode`, `enforce`, the model call and
  `encode` (`Scorer.prepare` = decode + enforce, `Scorer._call_model`, `Prepared.encode`);
* the floor (`floor_server.py`): whole, and parse (orjson + `pd.DataFrame`), predict, encode;
* the model's own predict function on the frame sigserve hands it (`predict (sigserve input)`).

The server adds HTTP and event-loop costs on top of these, about the same for both. With
`--cprofile N`, it also prints the N functions with the most own time under `Scorer.score`.

    python benchmarks/profile_vs_floor.py --model xgboost --cases split_1 split_1k --cprofile 25
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # as sigserve serve and the floor do, before numpy loads
os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")  # the floor loads through MLflow

import argparse  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_vs_mlflow as bench  # noqa: E402
import floor_server  # noqa: E402


def cpu_us(fn: Callable[[], Any], min_seconds: float, repeats: int) -> float:
    """Best of `repeats` rounds of CPU time per call, each round at least `min_seconds` of CPU."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        calls, start = 0, time.process_time()
        while True:
            fn()
            calls += 1
            spent = time.process_time() - start
            if spent >= min_seconds:
                break
        best = min(best, spent / calls)
    return best * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=bench.MODELS, default=bench.MODELS[0])
    p.add_argument("--cases", nargs="+", choices=list(bench.CASES), default=["split_1", "split_1k"])
    p.add_argument("--seconds", type=float, default=0.5, help="CPU seconds per timing round")
    p.add_argument("--repeats", type=int, default=3, help="rounds per timing; the best is kept")
    p.add_argument("--cprofile", type=int, default=0, metavar="N",
                   help="also cProfile Scorer.score per case and print the top N functions by own time")
    p.add_argument("--model-dir", type=Path, default=None, help="use this saved model instead of building one")
    args = p.parse_args()

    from sigserve.codecs.limits import DEFAULT_LIMITS
    from sigserve.codecs.mlflow.codec import MLFLOW
    from sigserve.codecs.protocol import Incoming
    from sigserve.loaders.loader import load_model
    from sigserve.scoring import Scorer
    from sigserve.native_threads import limit_native_threads

    limit_native_threads(1)  # what `sigserve serve` does before loading
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model_dir = args.model_dir or bench.build_model(Path(tempfile.mkdtemp(prefix="profile_vs_floor_")), args.model)
    print(f"model {args.model} at {model_dir}\nsigserve loader: {bench.sigserve_loader(model_dir)}")
    scorer = Scorer(load_model(model_dir))
    scorer.example_failure()  # warm-up, as at start-up
    floor_predict, what = floor_server.load_predict(str(model_dir))
    floor_server.warm_up(floor_predict, str(model_dir))
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    gc.collect()
    gc.freeze()  # as both servers do once loaded: full collections then skip MLflow's and the model's objects
    print(f"floor: {what}\n")

    def floor_whole(ct: str, body: bytes) -> bytes:
        frame = floor_server.frame_from(ct, body)
        return floor_server.orjson.dumps({"predictions": floor_server.jsonable(floor_predict(frame))},
                                         option=floor_server.JSON_OPTIONS)

    rows = []
    for case in args.cases:
        payload = bench.make_payload(case, args.model)
        ct, body = payload.content_type, payload.body
        def decode_only():
            return MLFLOW.decode(Incoming(body, ct), scorer.interface, DEFAULT_LIMITS).decoded

        decoded = decode_only()
        prepared = scorer.prepare(ct, body)
        predictions = scorer._call_model(prepared)
        frame = floor_server.frame_from(ct, body)
        floor_predictions = floor_predict(frame)
        t = {
            "sigserve score": cpu_us(lambda: scorer.score(ct, body), args.seconds, args.repeats),
            "  decode": cpu_us(decode_only, args.seconds, args.repeats),
            "  enforce": cpu_us(lambda: scorer.enforce(decoded), args.seconds, args.repeats),
            "  model call": cpu_us(lambda: scorer._call_model(prepared), args.seconds, args.repeats),
            "  encode": cpu_us(lambda: prepared.encode(predictions), args.seconds, args.repeats),
            "floor whole": cpu_us(lambda: floor_whole(ct, body), args.seconds, args.repeats),
            "  parse + DataFrame": cpu_us(lambda: floor_server.frame_from(ct, body), args.seconds, args.repeats),
            "  predict": cpu_us(lambda: floor_predict(frame), args.seconds, args.repeats),
            "  encode ": cpu_us(lambda: floor_server.orjson.dumps(
                {"predictions": floor_server.jsonable(floor_predictions)}, option=floor_server.JSON_OPTIONS),
                args.seconds, args.repeats),
            "floor predict on sigserve's input": cpu_us(lambda: floor_predict(prepared.model_input),
                                                        args.seconds, args.repeats),
        }
        rows.append((case, t))
        print(f"## {case}  ({len(body)} bytes; sigserve model input: {type(prepared.model_input).__name__}"
              f"{'' if not hasattr(prepared.model_input, 'dtypes') else ' ' + str(dict(prepared.model_input.dtypes.astype(str)))[:300]})")
        for name, us in t.items():
            print(f"  {name:<36} {us:>10.1f} us")
        print(f"  sigserve/floor CPU ratio (floor/sigserve = expected req/s ratio): "
              f"{t['floor whole'] / t['sigserve score']:.2f}\n", flush=True)
        if args.cprofile:
            prof = cProfile.Profile()
            n = max(1, int(1.0 / max(t["sigserve score"] * 1e-6, 1e-6)))
            prof.enable()
            for _ in range(n):
                scorer.score(ct, body)
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.cprofile)
            print(f"cProfile of {n} x Scorer.score ({case}), by own time:")
            print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))
            print()

    print("| case | sigserve µs | decode | enforce | model call | encode | floor µs | floor parse+frame "
          "| floor predict | floor encode | floor/sigserve |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case, t in rows:
        print(f"| {case} | {t['sigserve score']:.0f} | {t['  decode']:.0f} | {t['  enforce']:.0f} "
              f"| {t['  model call']:.0f} | {t['  encode']:.0f} | {t['floor whole']:.0f} "
              f"| {t['  parse + DataFrame']:.0f} | {t['  predict']:.0f} | {t['  encode ']:.0f} "
              f"| {t['floor whole'] / t['sigserve score']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
