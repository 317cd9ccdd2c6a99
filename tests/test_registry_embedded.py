"""The embedded registry: `sigserve registry …` registers models and sets aliases without MLflow,
in a SQLite database laid out as MLflow 3.17 lays it out; sigserve and MLflow's own client then
resolve what it wrote. Commands run as real processes in which `import mlflow` fails."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import SKLEARN_REQUIREMENTS, SigserveWithoutMlflow, mlflow_sqlite_tracking, wait_for

from sigserve.errors import ModelLoadError, ModelNotFound
from sigserve.admin.embedded import (
    ARTIFACT_DIR,
    REGISTRY_TABLES,
    EmbeddedRegistry,
    RegistryError,
    artifact_dir_name,
)
from sigserve.sources.registry.sqlite_store import SqliteRegistry
from sigserve.sources.registry.uri import RegisteredModelRef

IRIS_ROW = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}
REGISTRY_ENTRY = (
    "import sys; sys.modules['mlflow'] = None; "
    "from sigserve.admin.cli import main; sys.exit(main(sys.argv[1:]))"
)
# Says it is ready, then waits for a start file after the imports, so that all processes race
# for the write lock at once.
RACING_ENTRY = (
    "import os, sys, time; sys.modules['mlflow'] = None; from sigserve.admin.cli import main\n"
    "open(f'{sys.argv[1]}.ready.{os.getpid()}', 'w').close()\n"
    "while not os.path.exists(sys.argv[1]): time.sleep(0.002)\n"
    "sys.exit(main(sys.argv[2:]))"
)


@pytest.fixture(scope="module")
def iris(tmp_path_factory) -> dict:
    """An iris LogisticRegression saved by the real MLflow, and one with different weights."""
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("iris")
    features, target = load_iris(return_X_y=True, as_frame=True)
    models = {}
    for label, c in (("model", 1.0), ("weak", 0.001)):
        classifier = LogisticRegression(C=c, max_iter=500).fit(features, target)
        mlflow.sklearn.save_model(classifier, root / label, pip_requirements=SKLEARN_REQUIREMENTS)
        models[label] = (root / label, classifier)
    return {"path": models["model"][0], "weak": models["weak"][0], "features": features,
            "predict": {label: classifier for label, (_, classifier) in models.items()}}


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory) -> Path:
    """A database MLflow itself created, with model 'iris' v1 logged and registered by MLflow."""
    import mlflow
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("mlflow-made")
    with mlflow_sqlite_tracking(root) as (_, experiment):
        features, target = load_iris(return_X_y=True, as_frame=True)
        with mlflow.start_run(experiment_id=experiment):
            mlflow.sklearn.log_model(LogisticRegression(max_iter=500).fit(features, target), name="model",
                                     registered_model_name="iris", pip_requirements=SKLEARN_REQUIREMENTS)
    return root / "mlflow.db"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}


def registry(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", REGISTRY_ENTRY, *args], capture_output=True, text=True,
                          check=False, cwd=cwd, env=clean_env(), timeout=60)


def sigserve(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sigserve", *args], capture_output=True, text=True,
                          check=False, cwd=cwd, env=clean_env(), timeout=60)


def ok(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refused(result: subprocess.CompletedProcess[str], expected: str) -> None:
    error = result.stderr.strip()
    assert result.returncode == 2, (result.stdout, error)
    assert result.stdout == "" and error.startswith("sigserve: ") and expected in error
    assert len(error.splitlines()) == 1 and "Traceback" not in error


def info(uri: str, model_uri: str) -> dict:
    return ok(sigserve("info", "-m", model_uri, "--registry-uri", uri))


def uri_for(db: Path) -> str:
    return f"sqlite:///{db}"


def registry_schema(db: Path) -> set[tuple]:
    with sqlite3.connect(db) as connection:
        listed = ", ".join(f"'{t}'" for t in REGISTRY_TABLES)
        query = f"SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name IN ({listed})"
        return set(connection.execute(query))


def test_register_twice_gives_versions_1_and_2_that_sigserve_resolves(iris, tmp_path, mlflow_db) -> None:
    uri = uri_for(tmp_path / "mlflow.db")
    first = ok(registry("register", "--name", "iris", "--path", str(iris["path"]), "--registry-uri", uri,
                        "--tag", "team=ml", "--tag", "data=iris=v2", "--description", "first cut"))
    second = ok(registry("register", "--name", "iris", "--path", str(iris["weak"]), "--registry-uri", uri))
    assert (first["version"], second["version"]) == ("1", "2")
    assert first["model_uri"] == "models:/iris/1" and first["status"] == "READY" and first["stage"] == "None"
    assert first["tags"] == {"team": "ml", "data": "iris=v2"} and first["description"] == "first cut"
    for record in (first, second):
        copy = tmp_path / ARTIFACT_DIR / "iris" / record["version"]
        assert record["source"] == record["storage_location"] == str(copy)
        assert (copy / "MLmodel").is_file()
        resolved = info(uri, f"models:/iris/{record['version']}")
        assert resolved["version"] == record["version"] and resolved["local_path"] == str(copy)
        assert resolved["flavor"] == "mlflow.sklearn"
    assert info(uri, "models:/iris/latest")["version"] == "2"
    # MLflow 3.17's registry tables exactly, in its whole schema stamped at its alembic head
    assert registry_schema(tmp_path / "mlflow.db") == registry_schema(mlflow_db)
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        row = db.execute("SELECT user_id, run_id, workspace, creation_time, last_updated_time FROM model_versions"
                         " WHERE version = 1").fetchone()
    assert set(REGISTRY_TABLES) | {"alembic_version"} <= tables
    assert row[:3] == (None, None, "default") and abs(row[3] - time.time() * 1000) < 120_000 and row[3] == row[4]


def test_aliases_set_move_and_delete(iris, tmp_path) -> None:
    uri = uri_for(tmp_path / "mlflow.db")
    ok(registry("register", "--name", "iris", "--path", str(iris["path"]), "--registry-uri", uri,
                "--alias", "champion"))
    ok(registry("register", "--name", "iris", "--path", str(iris["weak"]), "--registry-uri", uri))
    assert info(uri, "models:/iris@champion")["version"] == "1"

    moved = ok(registry("alias", "set", "--name", "iris", "--alias", "champion", "--version", "2",
                        "--registry-uri", uri))
    assert (moved["version"], moved["previous_version"]) == ("2", "1")
    resolved = info(uri, "models:/iris@champion")
    assert resolved["version"] == "2" and resolved["aliases"] == ["champion"]
    assert resolved["local_path"] == str(tmp_path / ARTIFACT_DIR / "iris" / "2")

    ok(registry("--registry-uri", uri, "alias", "set", "--name", "iris", "--alias", "challenger", "--version", "1"))
    listed = ok(registry("list", "--registry-uri", uri))["models"]
    assert listed == [{"name": "iris", "latest_version": "2", "aliases": {"champion": "2", "challenger": "1"}}]
    shown = ok(registry("show", "iris", "--registry-uri", uri))
    assert [(v["version"], v["aliases"]) for v in shown["versions"]] == [("1", ["challenger"]), ("2", ["champion"])]

    deleted = ok(registry("alias", "delete", "--name", "iris", "--alias", "champion", "--registry-uri", uri))
    assert deleted["version"] == "2"
    refused(sigserve("info", "-m", "models:/iris@champion", "--registry-uri", uri), "has no alias @champion")
    refused(registry("alias", "delete", "--name", "iris", "--alias", "champion", "--registry-uri", uri),
            "has no alias @champion")
    refused(registry("alias", "set", "--name", "iris", "--alias", "champion", "--version", "7", "--registry-uri", uri),
            "has no version 7")
    refused(registry("alias", "set", "--name", "nope", "--alias", "champion", "--version", "1", "--registry-uri", uri),
            "No registered model named 'nope'")
    refused(registry("alias", "set", "--name", "iris", "--alias", "latest", "--version", "1", "--registry-uri", uri),
            "reserved")
    refused(registry("show", "nope", "--registry-uri", uri), "No registered model named 'nope'")


def test_default_registry_is_mlflow_db_in_the_working_directory(iris, tmp_path) -> None:
    assert ok(registry("list", cwd=tmp_path))["models"] == []
    assert not (tmp_path / "mlflow.db").exists()  # reading never creates a database
    registered = ok(registry("register", "--name", "Fraud v2 model", "--path", str(iris["path"]), cwd=tmp_path))
    assert registered["registry"] == "sqlite:///mlflow.db" and (tmp_path / "mlflow.db").is_file()
    copy = Path(registered["source"])
    assert copy.parent == tmp_path / ARTIFACT_DIR / artifact_dir_name("Fraud v2 model") and copy.name == "1"
    result = sigserve("info", "-m", "models:/Fraud v2 model/1", cwd=tmp_path)
    assert json.loads(result.stdout)["local_path"] == str(copy), result.stderr


def test_the_registered_copy_does_not_follow_the_source_directory(iris, tmp_path) -> None:
    uri = uri_for(tmp_path / "mlflow.db")
    source = tmp_path / "work" / "model"
    shutil.copytree(iris["path"], source)
    registered = ok(registry("register", "--name", "iris", "--path", str(source), "--registry-uri", uri))
    (source / "MLmodel").write_text("flavors: {}\n")
    (source / "model.skops").unlink()
    (source / "extra.txt").write_text("later")

    copy = Path(info(uri, "models:/iris/1")["local_path"])
    assert copy == Path(registered["source"]) and copy != source
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in iris["path"].iterdir())
    for original in iris["path"].iterdir():
        assert (copy / original.name).read_bytes() == original.read_bytes()
    assert not (copy / "MLmodel").stat().st_mode & 0o222  # the copy's files are read-only
    assert list((tmp_path / ARTIFACT_DIR / ".incoming").iterdir()) == []


def test_directories_that_are_not_models_are_refused(tmp_path) -> None:
    uri = uri_for(tmp_path / "mlflow.db")
    (tmp_path / "empty").mkdir()
    refused(registry("register", "--name", "m", "--path", str(tmp_path / "empty"), "--registry-uri", uri),
            "No MLmodel file in")
    refused(registry("register", "--name", "m", "--path", str(tmp_path / "missing"), "--registry-uri", uri),
            "is not a directory")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "MLmodel").write_text("flavors:\n  sklearn: {}\n")
    refused(registry("register", "--name", "m", "--path", str(tmp_path / "bad"), "--registry-uri", uri),
            "no python_function flavor")
    (tmp_path / "bad" / "MLmodel").write_text("flavors: [\n  :::\n")
    refused(registry("register", "--name", "m", "--path", str(tmp_path / "bad"), "--registry-uri", uri),
            "is not valid YAML")
    refused(registry("register", "--name", "a/b", "--path", str(tmp_path / "bad"), "--registry-uri", uri),
            "cannot contain '/'")
    refused(registry("register", "--name", "m", "--path", str(tmp_path / "bad"), "--tag", "novalue",
                     "--registry-uri", uri), "expected KEY=VALUE")
    refused(registry("list", "--registry-uri", "http://127.0.0.1:1"), "SQLite databases only")
    assert not (tmp_path / ARTIFACT_DIR).exists() or not any((tmp_path / ARTIFACT_DIR).glob("*/*"))


def test_concurrent_registrations_get_distinct_consecutive_versions(iris, tmp_path) -> None:
    uri = uri_for(tmp_path / "mlflow.db")  # fresh: the processes also race to create the tables
    go = tmp_path / "go"
    processes = [
        subprocess.Popen([sys.executable, "-c", RACING_ENTRY, str(go), "register", "--name", "iris",
                          "--path", str(iris["path"]), "--registry-uri", uri, "--tag", f"writer={i}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
        for i in range(8)
    ]

    def imported() -> bool:  # ready, or exited (its error is reported below)
        ready = len(list(tmp_path.glob("go.ready.*")))
        return ready + sum(p.poll() is not None for p in processes) >= len(processes)

    assert wait_for(imported, 60), "the processes never finished importing"
    go.touch()
    results = [(p.communicate(timeout=60), p.returncode) for p in processes]
    assert all(code == 0 for (_, code) in results), [err for ((_, err), _) in results]
    records = [json.loads(out) for ((out, _), _) in results]
    assert sorted(int(r["version"]) for r in records) == list(range(1, 9))
    assert len({r["source"] for r in records}) == 8
    shown = ok(registry("show", "iris", "--registry-uri", uri))
    assert sorted(v["tags"]["writer"] for v in shown["versions"]) == [str(i) for i in range(8)]
    for record in shown["versions"]:
        assert (Path(record["source"]) / "model.skops").is_file()
    assert list((tmp_path / ARTIFACT_DIR / ".incoming").iterdir()) == []


def test_a_registration_copies_first_then_waits_for_the_write_lock(iris, tmp_path) -> None:
    db = tmp_path / "mlflow.db"
    with EmbeddedRegistry(uri_for(db)) as reg:
        assert reg.register("iris", iris["path"]) == 1
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        process = subprocess.Popen([sys.executable, "-c", REGISTRY_ENTRY, "register", "--name", "iris", "--path",
                                    str(iris["path"]), "--registry-uri", uri_for(db)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
        incoming = tmp_path / ARTIFACT_DIR / ".incoming"
        assert wait_for(lambda: list(incoming.glob("*/model.skops")), 30, every=0.02), \
            "the copy is made before the lock is taken"
        time.sleep(0.5)  # the time it would take to give up or go ahead without the lock
        assert process.poll() is None  # waiting for the lock, not failing
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert json.loads(out)["version"] == "2" and list(incoming.iterdir()) == []


def test_registering_into_a_database_mlflow_created(iris, mlflow_db, tmp_path) -> None:
    import mlflow
    import mlflow.pyfunc

    db = tmp_path / "mlflow.db"
    shutil.copy(mlflow_db, db)
    uri = uri_for(db)
    with sqlite3.connect(db) as connection:
        before = list(connection.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name"))
    registered = ok(registry("register", "--name", "iris", "--path", str(iris["weak"]), "--alias", "champion",
                             "--tag", "origin=sigserve", "--registry-uri", uri))
    assert registered["version"] == "2"
    with sqlite3.connect(db) as connection:
        assert list(connection.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name")) == before

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version("iris", "2")
    assert (version.source, version.status, version.current_stage) == (registered["source"], "READY", "None")
    assert version.tags == {"origin": "sigserve"} and version.aliases == ["champion"]
    assert str(client.get_model_version_by_alias("iris", "champion").version) == "2"
    assert str(client.get_registered_model("iris").latest_versions[-1].version) == "2"

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        loaded = mlflow.pyfunc.load_model("models:/iris@champion")
    finally:
        mlflow.set_tracking_uri(previous)
    expected = iris["predict"]["weak"].predict(iris["features"])
    assert list(loaded.predict(iris["features"])) == list(expected)

    assert info(uri, "models:/iris@champion")["local_path"] == registered["source"]
    mlflow_own = info(uri, "models:/iris/1")  # MLflow's own version still resolves to its artifacts
    assert mlflow_own["source"].startswith("models:/m-") and ARTIFACT_DIR not in mlflow_own["local_path"]


def test_serving_an_alias_registered_without_mlflow(iris, tmp_path) -> None:
    uri = uri_for(tmp_path / "mlflow.db")
    ok(registry("register", "--name", "iris", "--path", str(iris["weak"]), "--registry-uri", uri))
    ok(registry("register", "--name", "iris", "--path", str(iris["path"]), "--registry-uri", uri, "--alias", "prod"))
    features, strong, weak = iris["features"], iris["predict"]["model"], iris["predict"]["weak"]
    differs = (strong.predict(features) != weak.predict(features)).nonzero()[0]
    row = features.iloc[[differs[0]]]  # a row on which the two versions disagree
    expected = int(strong.predict(row)[0])
    with SigserveWithoutMlflow("models:/iris@prod", "--registry-uri", uri, env=clean_env()) as server:
        response = server.post({"dataframe_split": row.to_dict(orient="split", index=False)})
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": [expected]}


# -- in-process: the EmbeddedRegistry API ----------------------------------------------------------


def test_api_round_trip_and_errors(iris, tmp_path) -> None:
    with EmbeddedRegistry(uri_for(tmp_path / "r.db")) as reg:
        assert reg.list_models() == []
        assert reg.register("churn", iris["path"], alias="champion", tags={"k": "v"}, description="d") == 1
        assert reg.register("churn", iris["path"]) == 2
        assert reg.set_alias("churn", "champion", "2") == 1
        assert reg.set_alias("churn", "shadow", 1) is None
        assert reg.list_models() == [{"name": "churn", "latest_version": "2",
                                      "aliases": {"champion": "2", "shadow": "1"}}]
        shown = reg.show("churn")
        assert shown["versions"][0]["tags"] == {"k": "v"} and shown["versions"][0]["description"] == "d"
        assert reg.delete_alias("churn", "shadow") == 1
        with pytest.raises(ModelNotFound, match="has no alias @shadow"):
            reg.delete_alias("churn", "shadow")
        with pytest.raises(ModelNotFound, match="has no version 3"):
            reg.set_alias("churn", "x", 3)
        with pytest.raises(ModelNotFound, match="No registered model named 'ghost'"):
            reg.show("ghost")
        for bad_alias in ("latest", "LATEST", "v3", "has space", ""):
            with pytest.raises(RegistryError):
                reg.set_alias("churn", bad_alias, 1)
        for bad_name in ("", "a:b", "../up", "a/../b", "."):
            with pytest.raises(RegistryError):
                reg.register(bad_name, iris["path"])
        with pytest.raises(RegistryError, match="whole number"):
            reg.set_alias("churn", "x", "two")
        with pytest.raises(ModelLoadError):
            reg.register("churn", tmp_path)
    record = SqliteRegistry(uri_for(tmp_path / "r.db")).find_version(RegisteredModelRef("churn", alias="champion"))
    assert record.version == "2" and record.source == str(tmp_path / ARTIFACT_DIR / "churn" / "2")


def test_a_directory_left_by_a_killed_registration_is_replaced(iris, tmp_path) -> None:
    leftover = tmp_path / ARTIFACT_DIR / "churn" / "1"
    leftover.mkdir(parents=True)
    (leftover / "half-written").write_text("x")
    with EmbeddedRegistry(uri_for(tmp_path / "r.db")) as reg:
        assert reg.register("churn", iris["path"]) == 1
    assert not (leftover / "half-written").exists() and (leftover / "MLmodel").is_file()


def test_artifact_directory_names_never_collide() -> None:
    names = ["churn", "Churn", "a b", "a_b", "a-b", "fraud.v2 model", "é", "e", "x" * 256, "x" * 255]
    directories = [artifact_dir_name(name) for name in names]
    assert len({d.lower() for d in directories}) == len(names)
    assert artifact_dir_name("churn") == "churn" and all(len(d) < 120 and "/" not in d for d in directories)


def test_mlflow_2_database_without_workspace_columns(iris, mlflow_db, tmp_path) -> None:
    old = tmp_path / "mlflow2.db"
    shutil.copy(mlflow_db, old)
    with sqlite3.connect(old) as db:
        for table in ("model_version_tags", "registered_model_tags", "registered_model_aliases",
                      "model_versions", "registered_models"):
            columns = ", ".join(row[1] for row in db.execute(f"PRAGMA table_info({table})") if row[1] != "workspace")
            db.execute(f"CREATE TABLE {table}_v2 AS SELECT {columns} FROM {table}")
            db.execute(f"DROP TABLE {table}")
            db.execute(f"ALTER TABLE {table}_v2 RENAME TO {table}")
    with EmbeddedRegistry(uri_for(old)) as reg:
        assert reg.register("iris", iris["path"], alias="champion", tags={"a": "b"}) == 2
    record = SqliteRegistry(uri_for(old)).find_version(RegisteredModelRef("iris", alias="champion"))
    assert record.version == "2" and Path(record.source).parent.parent.name == ARTIFACT_DIR


def test_other_sqlite_databases_are_left_alone(iris, tmp_path) -> None:
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE users (id INTEGER)")
    with EmbeddedRegistry(uri_for(other)) as reg, pytest.raises(RegistryError, match="not an MLflow registry"):
        reg.register("churn", iris["path"])
    with sqlite3.connect(other) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["users"]


MLFLOW_OPENS = r"""
import sys, warnings, logging
warnings.filterwarnings("ignore"); logging.disable(logging.WARNING)
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
client = mlflow.MlflowClient()
version = client.get_model_version_by_alias("iris", "champion")
client.create_model_version("iris", version.source)
print(version.version, len(client.search_model_versions("name='iris'")))
"""


def test_mlflow_opens_a_registry_sigserve_created(iris, tmp_path) -> None:
    uri = uri_for(tmp_path / "mlflow.db")
    ok(registry("register", "--name", "iris", "--path", str(iris["path"]), "--registry-uri", uri,
                "--alias", "champion"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    result = subprocess.run([sys.executable, "-c", MLFLOW_OPENS, uri], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["1", "2"]
