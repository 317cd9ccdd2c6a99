"""scikit-learn models as users log them: pipelines over string columns first, then the rest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from zoo import ZooModel

REQUIREMENTS = ["scikit-learn"]


def churn_frame(n: int = 400, seed: int = 7) -> tuple[pd.DataFrame, np.ndarray]:
    """A churn table with string, integer, float and boolean columns, and a target that depends
    on all of them, so every column matters to the fitted pipeline."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "tenure": rng.integers(0, 72, n).astype(np.int64),
        "monthly_charges": rng.normal(65, 30, n).round(2),
        "plan": rng.choice(["basic", "standard", "premium"], n),
        "region": rng.choice(["north", "south", "east", "west"], n),
        "paperless": rng.random(n) < 0.5,
    })
    score = (-0.04 * frame["tenure"] + 0.03 * frame["monthly_charges"]
             + frame["plan"].map({"basic": 1.0, "standard": 0.0, "premium": -1.0})
             + frame["region"].eq("south") * 0.8 + frame["paperless"] * 0.5)
    return frame, (score + rng.normal(0, 0.5, n) > score.median()).astype(np.int64).to_numpy()

NAMES = (
    "churn_pipeline",
    "churn_pipeline_proba",
    "churn_pipeline_pickle_log_proba",
    "churn_ordinal_hgb_proba",
    "iris_cloudpickle_svc",
    "cancer_random_forest",
    "cancer_random_forest_proba",
    "diabetes_imputer_ridge",
    "diabetes_knn_pickle",
    "iris_naive_bayes_joint_log_proba",
)


def build(root: Path) -> dict[str, ZooModel]:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler
    from sklearn.svm import SVC

    zoo: dict[str, ZooModel] = {}

    def save(name: str, model, X: pd.DataFrame, *, method: str = "predict", fmt: str = "skops",
             rows: pd.DataFrame | None = None, trusted: list[str] | None = None,
             requests: tuple = ()) -> None:
        path = root / name
        output = getattr(model, method)(X)
        mlflow.sklearn.save_model(model, path, serialization_format=fmt, pyfunc_predict_fn=method,
                                  skops_trusted_types=trusted,
                                  signature=infer_signature(X, output), input_example=X.iloc[:3],
                                  pip_requirements=REQUIREMENTS)
        zoo[name] = ZooModel(path, (X if rows is None else rows).iloc[:5].reset_index(drop=True), native=True,
                             requests=requests)

    churn, churned = churn_frame()
    numeric, strings = ["tenure", "monthly_charges"], ["plan", "region"]
    preprocess = ColumnTransformer([
        ("scale", StandardScaler(), numeric),
        ("onehot", OneHotEncoder(handle_unknown="ignore"), strings),
    ], remainder="passthrough")
    churn_pipeline = Pipeline([("prep", preprocess), ("clf", LogisticRegression(max_iter=500))]).fit(churn, churned)
    unified_llm = tuple(("application/json", body) for body in (
        {"input": [[1, 2, 3]]}, {"prompt": "hi"}, {"messages": [{"role": "user", "content": "hi"}]},
        {"input": churn.iloc[:2].to_dict(orient="list")},
    ))
    save("churn_pipeline", churn_pipeline, churn, requests=unified_llm)
    save("churn_pipeline_proba", churn_pipeline, churn, method="predict_proba")
    save("churn_pipeline_pickle_log_proba", churn_pipeline, churn, method="predict_log_proba", fmt="pickle")

    ordinal = Pipeline([
        ("prep", ColumnTransformer([("ord", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                                     strings)], remainder="passthrough")),
        ("hgb", HistGradientBoostingClassifier(max_iter=20, random_state=0)),
    ]).fit(churn, churned)
    save("churn_ordinal_hgb_proba", ordinal, churn, method="predict_proba",
         trusted=["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"])

    iris = load_iris(as_frame=True)
    # A lambda is pickled by value: the serving process needs nothing of this module.
    svc = make_pipeline(FunctionTransformer(lambda X: np.log1p(X)), SVC(random_state=0)).fit(iris.data, iris.target)
    save("iris_cloudpickle_svc", svc, iris.data, fmt="cloudpickle")

    cancer = load_breast_cancer(as_frame=True)
    forest = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0).fit(cancer.data, cancer.target)
    save("cancer_random_forest", forest, cancer.data, trusted=["sklearn.tree._tree.Tree"])
    save("cancer_random_forest_proba", forest, cancer.data, method="predict_proba", fmt="pickle")

    diabetes = load_diabetes(as_frame=True)
    holes = diabetes.data.copy()
    holes.iloc[::7, 2] = np.nan
    imputed = make_pipeline(SimpleImputer(), Ridge()).fit(holes, diabetes.target)
    save("diabetes_imputer_ridge", imputed, holes, rows=holes.iloc[5:], trusted=["numpy.dtype"])
    knn = KNeighborsRegressor(n_neighbors=5).fit(diabetes.data, diabetes.target)
    save("diabetes_knn_pickle", knn, diabetes.data, fmt="pickle")

    bayes = GaussianNB().fit(iris.data, iris.target)
    save("iris_naive_bayes_joint_log_proba", bayes, iris.data, method="predict_joint_log_proba")
    assert tuple(zoo) == NAMES
    return zoo
