"""How sure a held-out accuracy is when one person gives many images (model/evaluate.group_interval, printed by the
classifier benchmark): the identity groups are resampled, not the images."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model import evaluate


def test_one_persons_misses_make_a_wide_interval_the_same_misses_spread_out_a_narrow_one():
    concentrated = [g != 0 for g in range(20) for _ in range(10)]            # person 0: every image wrong
    spread = [i != 0 for g in range(20) for i in range(10)]                  # one image wrong per person
    groups = [g for g in range(20) for _ in range(10)]
    a, b = evaluate.group_interval(concentrated, groups), evaluate.group_interval(spread, groups)
    assert a["high"] - a["low"] > 0.05 and b["high"] == b["low"] == pytest.approx(0.9)
    per_image = evaluate.group_interval(concentrated, list(range(200)))   # images as groups: too sure
    assert per_image["high"] - per_image["low"] < a["high"] - a["low"]


@pytest.mark.property
@settings(max_examples=100, deadline=None)
@given(results=st.lists(st.tuples(st.booleans(), st.integers(0, 6)), max_size=80), seed=st.integers(0, 99))
def test_the_interval_is_a_proper_share_and_seeded(results, seed):
    correct, groups = [r[0] for r in results], [r[1] for r in results]
    got = evaluate.group_interval(correct, groups, resamples=50, seed=seed)
    assert got == evaluate.group_interval(correct, groups, resamples=50, seed=seed)
    if not results:
        assert got["low"] is None and got["groups"] == 0
        return
    assert 0.0 <= got["low"] <= got["high"] <= 1.0 and 0.0 <= got["below_0.95"] <= 1.0
    assert got["groups"] == len(set(groups))
    if all(correct) or not any(correct):
        assert got["low"] == got["high"] == float(all(correct))
    assert np.isfinite([got["low"], got["high"]]).all()


def test_results_and_groups_must_match():
    with pytest.raises(ValueError, match="2 groups for 3 results"):
        evaluate.group_interval([True, False, True], [0, 1])
