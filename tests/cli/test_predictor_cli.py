"""``mnv4-nas supernet fit-predictor`` and ``--estimator predictor:PRED``."""

from __future__ import annotations

import numpy as np
import pytest

SPACE = """
name = "cli-pred"
resolution = 32
num_classes = 10
stem = "cn_r1_k3_s2_c8"
head = "head_c16_h0"

[fine]
start_dw = [0, 3]
mid_dw = [0, 3]
expansion = [2]

[[stages]]
kind = "uib"
stride = 2
channels = [8, 16]
depth = [1, 2]

[[stages]]
kind = "uib"
stride = 2
channels = [16, 24]
depth = [1, 2]
"""


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, write_space):
    """A 2-epoch supernet on four colour classes (its members score differently)."""
    from nas.cli import main

    space = write_space("cli-pred", SPACE)
    d = tmp_path_factory.mktemp("pred")
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 80)
    x = rng.integers(0, 90, (len(y), 32, 32, 3))
    for c in range(3):
        x[y == c, :, :, c] += 150
    np.savez(d / "easy.npz", images=x.astype(np.uint8), labels=y)
    code = main(
        [
            "supernet",
            "train",
            "--space",
            str(space),
            "--data",
            str(d / "easy.npz"),
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--out",
            str(d / "sn.pt"),
            "--threads",
            "1",
            "--json",
        ]
    )
    assert code == 0
    return d / "sn.pt"


def test_fit_predictor_then_search_with_it(cli, ckpt, tmp_path):
    out = tmp_path / "pred.json"
    r = cli(
        "supernet",
        "fit-predictor",
        str(ckpt),
        "--n",
        "30",
        "--model",
        "ridge",
        "--out",
        str(out),
        "--threads",
        "1",
        "--json",
    )
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["predictor"] == str(out) and doc["fit"]["n"] == 30 and doc["fit"]["heldout"]["n_test"] == 6
    assert out.is_file()
    r = cli("supernet", "fit-predictor", str(ckpt), "--n", "20", "--model", "ridge", "--out", str(tmp_path / "p2.json"))
    assert r.code == 0 and "Kendall τ" in r.out and "predictor:" in r.out
    r = cli(
        "search",
        "--target",
        "pixel6-cpu",
        "--budget",
        "1ms",
        "--estimator",
        f"predictor:{out}",
        "--fallback",
        "roofline",
        "--trials",
        "6",
        "--one-stage",
        "--out",
        str(tmp_path / "run"),
        "--json",
    )
    assert r.code == 0, r.err
    assert r.json()["estimator"] == f"predictor:{out}"


def test_fit_predictor_with_equal_heldout_scores_says_undefined(cli, ckpt, tmp_path, monkeypatch):
    """A barely trained supernet can score every held-out member the same: no τ exists, and the
    command says so instead of failing on formatting."""
    import nas.supernet as sn

    real = sn.fit_predictor

    def flat(*args, **kwargs):
        pred = real(*args, **kwargs)
        pred.record["fit"]["heldout"].update(kendall_tau=None, spearman_rho=None)
        return pred

    monkeypatch.setattr(sn, "fit_predictor", flat)
    r = cli("supernet", "fit-predictor", str(ckpt), "--n", "20", "--model", "ridge", "--out", str(tmp_path / "p.json"))
    assert r.code == 0, r.err
    assert "Kendall τ undefined (all held-out scores equal)" in r.out


@pytest.mark.parametrize(
    "args, msg",
    [
        (["--n", "0"], "--n must be at least 10"),
        (["--holdout", "nan"], "--holdout must be a finite number"),
        (["--holdout", "0.9"], "--holdout must be <= 0.5"),
        (["--out", "FILE/p.json"], "is a file, not a folder"),
        (["--model", "gbm"], "'gbm' is not one of"),
    ],
)
def test_fit_predictor_errors_are_one_line(cli, ckpt, tmp_path, args, msg):
    (tmp_path / "FILE").write_text("")
    base = ["supernet", "fit-predictor", str(ckpt), "--out", str(tmp_path / "p.json")]
    r = cli(*base, *[a.replace("FILE", str(tmp_path / "FILE")) for a in args])
    assert r.code == 2 and msg in r.err and "Traceback" not in r.err
    assert not (tmp_path / "p.json").exists()


def test_a_bad_predictor_file_is_a_one_line_search_error(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "mnv4-nas-accuracy-predictor", "version": 1}')
    r = cli(
        "search",
        "--target",
        "pixel6-cpu",
        "--budget",
        "1ms",
        "--estimator",
        f"predictor:{bad}",
        "--out",
        str(tmp_path / "run"),
    )
    assert r.code == 2 and "field space must be a JSON object" in r.err and len(r.err.strip().splitlines()) == 1
