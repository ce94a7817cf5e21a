"""Property tests: random bad values for --set and the experiment always give the project's own
error (LtrayError), never a traceback from deep inside the code, and never touch the disk."""

import dataclasses
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ltray.errors import LtrayError
from ltray.config import Experiment, apply_overrides, describe_fields, validate

FIELDS = [line.split("(")[0].strip() for line in describe_fields()]
junk = st.one_of(st.text(max_size=20), st.integers(-10**12, 10**12).map(str), st.floats(allow_nan=True).map(str),
                 st.sampled_from(["", ",", "1,2,3", "true", "nan", "inf", "-1", "1e400", "[]", "None", "ce,arcface",
                                  "0.5,0.1", "(1,", "a=b"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.one_of(st.sampled_from(FIELDS), st.text(max_size=30)), value=junk)
def test_any_set_gives_a_valid_experiment_or_ltray_error(key, value):
    try:
        exp = apply_overrides(Experiment(), [f"{key}={value}"])
        validate(exp, {"CPU": 2, "GPU": 0}, local_data=False)
    except LtrayError:
        pass  # the project's own message


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=25), max_size=4))
def test_malformed_set_items(items):
    try:
        apply_overrides(Experiment(), items)
    except LtrayError:
        pass


numbers = st.one_of(st.integers(-1000, 1000), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.text(max_size=5), st.none())


@settings(max_examples=1000, deadline=None)
@given(group=st.sampled_from(["train", "data", "search", "resources", "posthoc", "model"]), data=st.data())
def test_random_field_values_in_an_experiment(group, data):
    sub = getattr(Experiment(), group)
    f = data.draw(st.sampled_from([x.name for x in dataclasses.fields(sub)]))
    value = data.draw(numbers)
    exp = dataclasses.replace(Experiment(), **{group: dataclasses.replace(sub, **{f: value})})
    try:
        validate(exp, {"CPU": 2, "GPU": 0}, local_data=False)
    except LtrayError:
        return
    # accepted: then it really is a sane, finite value
    v = getattr(getattr(exp, group), f)
    assert not (isinstance(v, float) and not math.isfinite(v)), (group, f, v)


def test_regressions_found_by_reading_the_validator():
    import pytest

    from ltray.config import Recipe

    for bad in (Recipe(momentum=float("nan")), Recipe(weight_decay=-1.0), Recipe(gamma=float("inf")),
                Recipe(lr=float("inf")), Recipe(milestones=(0.5, float("nan")))):
        with pytest.raises(LtrayError):
            validate(Experiment(train=bad), {"CPU": 2, "GPU": 0})
