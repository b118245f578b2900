"""Config validation: good files load, every mistake names file, tenant/model and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aiops_pipelines.cli import main
from aiops_pipelines.core.config import TaskType, load_config
from aiops_pipelines.core.errors import ConfigError


def _config(tmp_path: Path) -> dict:
    return {
        "storage": {
            "store_url": "sqlite:///store.db",
            "mlflow_tracking_uri": "sqlite:///mlflow.db",
            "artifacts_dir": "artifacts",
        },
        "tenants": [
            {
                "name": "acme",
                "models": [
                    {
                        "name": "churn",
                        "task": "binary_classification",
                        "features": {"numeric": ["age", "tenure"], "categorical": ["plan"]},
                        "columns": {"score": "score"},
                        "predictions": {"url": "sqlite:///world.db", "table": "preds"},
                        "reference": {"parquet": "ref/*.parquet"},
                        "segments": ["plan"],
                    }
                ],
            }
        ],
    }


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_valid_config_loads_with_paths_resolved_against_its_folder(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, _config(tmp_path)))
    [model] = cfg.models
    assert model.key == "acme.churn"
    assert model.task is TaskType.BINARY
    assert cfg.storage.store_url == f"sqlite:///{tmp_path.resolve()}/store.db"
    assert model.predictions.url == f"sqlite:///{tmp_path.resolve()}/world.db"
    assert model.reference.parquet == str(tmp_path.resolve() / "ref/*.parquet")
    assert cfg.model("acme.churn") is model


def test_unknown_field_names_file_model_and_field(tmp_path: Path) -> None:
    raw = _config(tmp_path)
    raw["tenants"][0]["models"][0]["thresholds"] = {"wassersten": [0.1, 0.2]}
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "tenant 'acme'" in msg and "model 'churn'" in msg
    assert "thresholds.wassersten" in msg and "unknown field" in msg


@pytest.mark.parametrize(
    ("mutate", "field", "text"),
    [
        (lambda m: m.update(task="ranking"), "task", "binary_classification"),
        (lambda m: m.pop("predictions"), "predictions", "required field is missing"),
        (lambda m: m["predictions"].pop("table"), "predictions", "table"),
        (lambda m: m.update(segments=["country"]), "", "segments must be categorical"),
        (lambda m: m["features"].update(categorical=["age"]), "features", "both numeric"),
        (lambda m: m.update(thresholds={"psi": [0.3, 0.1]}), "thresholds.psi", "warning"),
    ],
)
def test_invalid_model_fields_are_named(tmp_path: Path, mutate, field: str, text: str) -> None:
    raw = _config(tmp_path)
    mutate(raw["tenants"][0]["models"][0])
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, raw))
    msg = str(err.value)
    assert "model 'churn'" in msg
    assert f"field '{field}" in msg if field else True
    assert text in msg


def test_duplicate_model_names_and_missing_file(tmp_path: Path) -> None:
    raw = _config(tmp_path)
    raw["tenants"][0]["models"].append(dict(raw["tenants"][0]["models"][0]))
    with pytest.raises(ConfigError, match="model names must be unique"):
        load_config(_write(tmp_path, raw))
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_validate_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = _write(tmp_path, _config(tmp_path))
    assert main(["validate", "--config", str(good), "--no-data"]) == 0
    assert "acme.churn" in capsys.readouterr().out
    raw = _config(tmp_path)
    raw["tenants"][0]["name"] = "Acme Corp"
    bad = _write(tmp_path, raw)
    assert main(["validate", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "tenant 'Acme Corp'" in err and "field 'name'" in err


def _with_routes(tmp_path: Path, *routes: dict) -> dict:
    raw = _config(tmp_path)
    raw["tenants"].append(
        {"name": "globex", "models": [{**raw["tenants"][0]["models"][0], "name": "eta"}]}
    )
    raw["alerting"] = {
        "routes": [{"name": f"r{i}", "type": "log", **r} for i, r in enumerate(routes)]
    }
    return raw


def test_routes_whose_globs_match_declared_tenants_and_models_load(tmp_path: Path) -> None:
    raw = _with_routes(
        tmp_path,
        {},
        {"tenants": ["acme"]},
        {"tenants": ["ac*", "glob?x"], "models": ["churn", "e*"]},
        {"tenants": ["globex"], "models": ["[e]ta"]},
    )
    assert len(load_config(_write(tmp_path, raw)).alerting.routes) == 4


@pytest.mark.parametrize(
    ("route", "field", "text"),
    [
        (
            {"name": "acme-hook", "tenants": ["acmee"]},
            "alerting.routes.0.tenants",
            "route 'acme-hook': tenants pattern 'acmee' matches no declared tenant "
            "(declared: acme, globex)",
        ),
        (
            {"name": "churn-only", "models": ["acme.churn"]},
            "alerting.routes.0.models",
            "route 'churn-only': models pattern 'acme.churn' matches no model of tenant(s) "
            "acme, globex (models are matched by name; declared: churn, eta)",
        ),
        (
            {"name": "eta-at-acme", "tenants": ["acme"], "models": ["eta"]},
            "alerting.routes.0.models",
            "route 'eta-at-acme': models pattern 'eta' matches no model of tenant(s) acme "
            "(models are matched by name; declared: churn)",
        ),
    ],
    ids=["tenant-typo", "model-key-for-name", "model-of-another-tenant"],
)
def test_a_route_glob_that_matches_nothing_is_an_error(
    tmp_path: Path, route: dict, field: str, text: str
) -> None:
    path = _write(tmp_path, _with_routes(tmp_path, route))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and f"field '{field}'" in msg and text in msg


def test_validate_names_every_route_glob_that_matches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    raw = _with_routes(tmp_path, {"name": "a", "tenants": ["acmee"]}, {"models": ["chrun"]})
    assert main(["validate", "--config", str(_write(tmp_path, raw)), "--no-data"]) == 2
    err = capsys.readouterr().err
    assert "field 'alerting.routes'" in err
    assert "route 'a': tenants pattern 'acmee'" in err and "declared: acme, globex" in err
    assert "route 'r1': models pattern 'chrun'" in err and "declared: churn, eta" in err


def _tables(tmp_path: Path, *, broken: bool) -> None:
    import numpy as np
    import pandas as pd
    import sqlalchemy as sa

    n = 50
    rng = np.random.default_rng(0)
    ref = pd.DataFrame(
        {"age": rng.normal(40, 9, n), "tenure": rng.integers(0, 60, n), "plan": "basic"}
    )
    (tmp_path / "ref").mkdir(exist_ok=True)
    ref.to_parquet(tmp_path / "ref" / "part-0.parquet")
    stamps = pd.date_range("2026-03-01", periods=n, freq="min", tz="UTC")
    preds = ref.assign(
        request_id=[f"r{i}" for i in range(n)],
        timestamp=stamps.strftime("%Y-%m-%d %H:%M:%S+00:00"),
        model_version="1",
        prediction=1,
        score=0.7,
    )
    if broken:
        preds["timestamp"] = stamps.strftime("%Y-%m-%d %H:%M:%S")  # no offset
        preds.loc[3, "request_id"] = "r2"
        preds["age"] = "forty"
        preds = preds.drop(columns=["tenure"])
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'world.db'}")
    preds.to_sql("preds", eng, index=False, if_exists="replace")
    eng.dispose()


def test_validate_opens_every_source_and_lists_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = _write(tmp_path, _config(tmp_path))
    _tables(tmp_path, broken=True)
    assert main(["validate", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    lines = [x.strip() for x in err.splitlines()]
    assert lines[0] == "4 data contract problem(s):"
    where = "acme.churn predictions ("
    assert any(x.startswith(where) and "column 'tenure': column is missing" in x for x in lines)
    assert any("column 'timestamp'" in x and "timezone-naive" in x for x in lines)
    assert any("column 'request_id'" in x and "duplicate request ids" in x for x in lines)
    assert any("column 'age'" in x and "features.categorical" in x for x in lines)
    _tables(tmp_path, broken=False)
    assert main(["validate", "--config", str(path)]) == 0
    assert "keep the contract: OK" in capsys.readouterr().out
    (tmp_path / "ref" / "part-0.parquet").unlink()  # a reference that is not there
    assert main(["validate", "--config", str(path)]) == 1
    assert "acme.churn reference" in capsys.readouterr().err
