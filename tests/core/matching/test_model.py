"""The decision model file: numpy evaluation equals the fitted estimator, bad files are refused."""

import json

import numpy as np
import pytest

from vdup.calibrate import export
from vdup.matching.evidence import FEATURE_NAMES, FEATURES
from vdup.matching.model import ModelError, default_model, from_json, load

F = len(FEATURE_NAMES)


def fitted(seed=0, n=600):
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, F)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 9] - 0.3 * x[:, 12] + 0.2 * rng.normal(size=n)) > 0
    clf = HistGradientBoostingClassifier(
        max_iter=40,
        max_depth=3,
        early_stopping=False,
        monotonic_cst=[d for _, d in FEATURES],
        random_state=0,
    )
    return clf.fit(x, y), x


def test_the_exported_trees_give_the_estimators_probabilities():
    clf, x = fitted()
    model = export(clf, 0.5, {})
    fresh = np.random.default_rng(9).uniform(-1.5, 1.5, (300, F)).astype(np.float32)
    for rows in (x, fresh):
        np.testing.assert_allclose(
            model.probability(rows), clf.predict_proba(rows)[:, 1], rtol=1e-9, atol=1e-12
        )


def test_a_saved_model_loads_back_with_the_same_answers(tmp_path):
    clf, x = fitted(1)
    model = export(clf, 0.7, {"note": "test"})
    model.save(tmp_path / "m.json")
    again = load(tmp_path / "m.json")
    assert again.threshold == 0.7 and again.info == {"note": "test"}
    np.testing.assert_array_equal(again.probability(x), model.probability(x))
    assert not list(tmp_path.glob("*.tmp"))


def test_a_model_for_other_features_is_refused():
    doc = export(fitted()[0], 0.5, {}).to_json()
    doc["features"] = doc["features"][::-1]
    with pytest.raises(ModelError, match="vdup calibrate"):
        from_json(doc)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(format="pickle"), "not a vdup-decision-model"),
        (lambda d: d.update(threshold=1.0), "threshold"),
        (lambda d: d["trees"][0]["left"].__setitem__(0, 10_000), "does not exist"),
    ],
)
def test_broken_model_files_are_refused_with_a_reason(change, message):
    doc = json.loads(json.dumps(export(fitted()[0], 0.5, {}).to_json()))
    change(doc)
    with pytest.raises(ModelError, match=message):
        from_json(doc)


def test_an_unreadable_file_names_itself(tmp_path):
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ModelError, match="m.json"):
        load(tmp_path / "m.json")


def test_the_shipped_model_loads_and_scores_evidence_rows():
    model = default_model()
    p = model.probability(np.zeros((3, F), np.float32))
    assert p.shape == (3,) and ((p >= 0) & (p <= 1)).all()
    assert 0 < model.threshold < 1
    with pytest.raises(ValueError, match="model takes"):
        model.probability(np.zeros((3, F + 1), np.float32))
