"""Results files: plain JSON values, censored numbers as null, written atomically."""
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from mamlpaper import runtime


def test_plain_turns_numpy_pandas_and_non_finite_values_into_json():
    value = {"a": np.float32(1.5), "b": [np.int64(3), np.inf, -np.inf, np.nan, pd.NA], "c": (True, np.bool_(False)),
             "d": np.array([1.0, np.nan]), 4: None, "e": "x"}
    assert runtime.plain(value) == {"a": 1.5, "b": [3, None, None, None, None], "c": [True, False],
                                    "d": [1.0, None], "4": None, "e": "x"}
    assert all(type(v) is int for v in runtime.plain([np.int32(1), 2]))
    with pytest.raises(ValueError, match="^value.x=object is not allowed"):
        runtime.plain({"x": object()})


def test_write_results_refuses_nan_and_reads_back_what_plain_made(tmp_path):
    with pytest.raises(ValueError, match="without NaN or inf"):
        runtime.write_results("x", {"ratio": math.inf}, tmp_path)
    path = runtime.write_results("x", runtime.plain({"ratio": math.inf, "low": np.float64(0.5)}), tmp_path)
    assert json.loads(path.read_text()) == {"ratio": None, "low": 0.5}


@pytest.mark.parametrize("value, name", [({"a": [1, math.nan]}, "label.a[1]"), ({1: 2}, "label"),
                                         ({"x": pd.NA}, "label.x")])
def test_strict_plain_refuses_what_json_would_not_give_back_naming_the_entry(value, name):
    with pytest.raises(ValueError, match=f"^{re.escape(name)}=.* is not allowed"):
        runtime.plain(value, strict=True, name="label")
