"""Every way a user rate profile can be wrong gives one InputError line naming the file and key."""
from __future__ import annotations

import pytest

from statten_hw import ModelConfig
from statten_hw.energy import load_rate_profile, rate_keys
from statten_hw.errors import InputError
from statten_hw.models import build_model

TINY = ModelConfig(family="statten", attention="STAtten", depth=1, dim=16, heads=2, timesteps=2,
                   block_size=2, img_size=8, in_channels=3, num_classes=4)


@pytest.fixture(scope="module")
def model():
    return build_model(TINY)


def _valid(model) -> dict:
    return {k: [0.5] * n for k, n in rate_keys(model).items()}


def _text(model, change) -> str:
    import json

    data = _valid(model)
    change(data)
    return json.dumps(data)


CASES = {
    "bad json": (lambda m: "{'head': [0.1, 0.2]", r"not valid JSON"),
    "not an object": (lambda m: "[0.1, 0.2]", r"JSON object"),
    # its layers' rates are output rates over all steps, not each conv's input rate per step
    "a simulate report": (lambda m: '{"schema_version": 1, "tool": "statten-hw", "command": "simulate", "layers": []}',
                          r"a statten-hw 'simulate' report, not a rate profile.*simulate --target paper45nm"),
    "unknown layer": (lambda m: _text(m, lambda d: d.update({"block.9.attn.q_conv": [0.1, 0.1]})),
                      r"unknown layer 'block\.9\.attn\.q_conv'"),
    "first conv is rate-free": (lambda m: _text(m, lambda d: d.update({"patch_embed.proj_conv": [1, 1]})),
                                r"unknown layer 'patch_embed\.proj_conv'"),
    "missing layer": (lambda m: _text(m, lambda d: d.pop("head")), r"layer 'head' has no rates"),
    "too short": (lambda m: _text(m, lambda d: d.update({"head": [0.1]})), r"'head': expected 2 rates.*got 1"),
    "too long": (lambda m: _text(m, lambda d: d.update({"head": [0.1] * 3})), r"'head': expected 2 rates.*got 3"),
    "not a list": (lambda m: _text(m, lambda d: d.update({"head": 0.3})), r"'head': expected a list"),
    # depth 1: an input sums at most 1 + 2 spike tensors; a firing rate is at most 1
    "input rate above its bound": (lambda m: _text(m, lambda d: d.update({"head": [0.1, 3.5]})),
                                   r"'head': rate at step 1 is 3\.5, outside \[0, 3\]"),
    "firing rate above one": (lambda m: _text(m, lambda d: d.update({"block.0.attn.q_lif": [1.5, 0.5]})),
                              r"'block\.0\.attn\.q_lif': rate at step 0 is 1\.5, outside \[0, 1\]"),
    "negative": (lambda m: _text(m, lambda d: d.update({"head": [-0.1, 0.5]})), r"'head': rate at step 0 is -0\.1"),
    "string": (lambda m: _text(m, lambda d: d.update({"head": ["0.1", 0.5]})), r"'head': rate at step 0 is not a number"),
    "boolean": (lambda m: _text(m, lambda d: d.update({"head": [True, 0.5]})), r"'head': rate at step 0 is not a number"),
    "null": (lambda m: _text(m, lambda d: d.update({"head": [None, 0.5]})), r"'head': rate at step 0 is not a number"),
    "nan": (lambda m: _text(m, lambda d: d.update({"head": [0.5, float("nan")]})), r"'head': rate at step 1 is not a number"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_profile_raises_one_line_input_error(case, model, tmp_path):
    make, pattern = CASES[case]
    path = tmp_path / "rates.json"
    path.write_text(make(model))
    with pytest.raises(InputError, match=pattern) as info:
        load_rate_profile(path, model)
    message = str(info.value)
    assert "\n" not in message and str(path) in message


def test_missing_file(model, tmp_path):
    with pytest.raises(InputError, match="cannot read rate profile"):
        load_rate_profile(tmp_path / "absent.json", model)


def test_valid_profile_loads(model, tmp_path):
    import json

    path = tmp_path / "rates.json"
    path.write_text(json.dumps(_valid(model)))
    rates = load_rate_profile(path, model)
    assert rates.source == str(path) and rates.rates["head"] == (0.5, 0.5)
