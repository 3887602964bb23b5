"""The same-place verdict: thresholds calibrated from hand-made inlier counts, kept per setting in verdict.json."""

import json

import numpy as np
import pytest

from retrieval.local.verdict import (
    DEFAULT_MIN_INLIERS,
    VerdictThreshold,
    VerdictThresholds,
    calibrate_threshold,
)


def test_the_threshold_is_the_smallest_count_few_enough_negatives_reach():
    # 1,000 different-place pairs: 990 with 0–9 inliers, 8 with 12, 2 with 15. At most 0.1% (1 pair) may reach it:
    # t = 13 lets 2 through (0.2%), t = 16 none → 16. At 1%: t = 10 lets the 10 at 12 and 15 through (1%), t = 9 also
    # the 99 nines → 10.
    negatives = np.concatenate([np.arange(990) % 10, np.full(8, 12), np.full(2, 15)])
    positives = np.array([5, 14, 16, 40, 200])
    strict = calibrate_threshold(positives, negatives, "hand", max_false_accept_rate=0.001)
    assert strict.min_inliers == 16 and strict.false_accept_rate == 0
    assert strict.true_accept_rate == pytest.approx(3 / 5) and strict.num_pairs == (5, 1000)
    loose = calibrate_threshold(positives, negatives, "hand", max_false_accept_rate=0.01)
    assert loose.min_inliers == 10 and loose.false_accept_rate == pytest.approx(0.01)
    assert loose.true_accept_rate == pytest.approx(4 / 5)
    assert calibrate_threshold(positives, np.zeros(4), "hand").min_inliers == 1


def test_calibration_refuses_what_it_cannot_measure():
    with pytest.raises(ValueError, match="same-place and different-place pairs"):
        calibrate_threshold(np.array([3]), np.array([], dtype=np.int64), "hand")
    with pytest.raises(ValueError, match="max_false_accept_rate"):
        calibrate_threshold(np.array([3]), np.array([1]), "hand", max_false_accept_rate=1.0)
    with pytest.raises(ValueError, match="at least 1"):
        VerdictThreshold(0)


def test_a_verdict_is_none_when_nothing_was_verified():
    threshold = VerdictThreshold(20)
    assert threshold.verified(None) is None
    assert threshold.verified(19) is False and threshold.verified(20) is True
    assert threshold.describe() == "≥ 20 inliers (default)"


def test_thresholds_are_kept_per_setting_and_written_atomically(tmp_path):
    path = tmp_path / "verdict.json"
    thresholds = VerdictThresholds(path)
    assert thresholds.get("rootsift|magsac").min_inliers == DEFAULT_MIN_INLIERS
    calibrated = calibrate_threshold(np.array([30, 40]), np.array([1, 2, 17]), "photos", 0.0)
    thresholds.set("rootsift|magsac", calibrated)
    assert not path.with_suffix(".tmp").exists()
    reopened = VerdictThresholds(path)
    assert reopened.get("rootsift|magsac") == calibrated and calibrated.min_inliers == 18
    assert reopened.get("orb|ransac").min_inliers == DEFAULT_MIN_INLIERS
    assert (
        "calibrated on photos: 0.00% false accepts, 100.0% of same-place results verified"
        in calibrated.describe()
    )
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="expected an object"):
        VerdictThresholds(path)
