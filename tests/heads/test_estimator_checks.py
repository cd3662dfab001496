"""scikit-learn's own estimator checks over every head: get/set_params and clone, fitted attributes ending in `_`,
`n_features_in_` and `classes_`, clear errors on NaN, sparse, complex, 1-D or wrongly shaped input and on predicting
before `fit`, decision_function / predict / predict_proba agreeing, class weights, pickling, idempotent fits...

Small settings keep them fast (about 25 s for all of them): LinearHead with fixed C and scaling and with both chosen by
cross-validation, MLPHead small with few epochs and with its size and dropout chosen. Every check passes: there is
no `expected_failed_checks`. scikit-learn itself skips `check_array_api_input` unless SCIPY_ARRAY_API=1 is set.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from headstart.heads import LinearHead, MLPHead

HEADS = [
    LinearHead(C=1.0, scaling="standard"),
    LinearHead(cv=3),  # C and scaling chosen by cross-validation inside `fit`
    MLPHead(hidden=16, dropout=0.1, lr=1e-2, max_epochs=20, batch_size=32),
    MLPHead(lr=1e-2, max_epochs=10, batch_size=32),  # hidden size and dropout chosen by cross-validation
]


@parametrize_with_checks(HEADS)
def test_scikit_learn_estimator_checks(estimator, check) -> None:
    check(estimator)
