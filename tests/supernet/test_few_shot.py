"""Few-shot supernets: the split, training one shot per option, and scoring by the shot that holds a member."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nas.errors import NasError
from nas.space import coarse_space, contains, sample, size, widths_of
from nas.spec import parse_arch
from nas.supernet import (
    FewShotEstimator,
    SupernetEstimator,
    SupernetMacsEstimator,
    TrainConfig,
    load_data,
    make_estimator,
    train_few_shot,
    train_supernet,
)
from nas.supernet._checkpoint import load_checkpoint, save_checkpoint
from nas.supernet._few_shot import read_manifest, shot_path, split_space
from nas.supernet._supernet import Supernet

SPLIT = "stage2.channels"  # t-conv: the first UIB stage, channels 16 or 24


@pytest.fixture(scope="module")
def data():
    return load_data("builtin:20", 32)


@pytest.fixture(scope="module")
def few_shot(tmp_path_factory, conv_space, data):
    """A 1-epoch few-shot supernet of t-conv's coarse stage, split on ``SPLIT``."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = tmp_path_factory.mktemp("few-shot") / "fs.json"
        res = train_few_shot(
            coarse_space(conv_space),
            data,
            path,
            TrainConfig(epochs=1, batch_size=32),
            split=SPLIT,
            data_spec="builtin:20",
        )
    finally:
        torch.set_num_threads(old)
    return path, res


def test_split_space_partitions_the_space(conv_space):
    shots = split_space(conv_space, SPLIT)
    assert [sh.label for sh in shots] == ["stage2.channels=16", "stage2.channels=24"]
    assert sum(size(sh.space) for sh in shots) == size(conv_space)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = sample(conv_space, rng)
        holders = [sh.options for sh in shots if contains(sh.space, a)]
        assert holders == [(("stage2.channels", widths_of(conv_space, a)[2][0]),)]
    assert [sh.label for sh in split_space(conv_space, "stage3.depth")] == ["stage3.depth=1", "stage3.depth=3"]


def test_several_decisions_split_into_every_combination(conv_space):
    shots = split_space(conv_space, "stage1.channels, stage3.depth")
    assert [sh.label for sh in shots] == [
        "stage1.channels=8+stage3.depth=1",
        "stage1.channels=8+stage3.depth=3",
        "stage1.channels=16+stage3.depth=1",
        "stage1.channels=16+stage3.depth=3",
    ]
    assert sum(size(sh.space) for sh in shots) == size(conv_space)
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = sample(conv_space, rng)
        assert sum(contains(sh.space, a) for sh in shots) == 1
    with pytest.raises(NasError, match="named twice"):
        split_space(conv_space, "stage3.depth,stage3.depth")


@pytest.mark.parametrize("name", ["stage0.channels", "stage2.block0.uib", "channels", "stage9.depth"])
def test_only_width_and_depth_decisions_split(conv_space, name):
    with pytest.raises(NasError, match=r"--split: .* \(allowed: stage1.channels, stage1.depth, stage2.channels") as exc:
        split_space(conv_space, name)
    assert "\n" not in str(exc.value)


def test_training_writes_a_manifest_and_one_checkpoint_per_shot(few_shot):
    path, res = few_shot
    m = read_manifest(path)
    assert m["split"] == SPLIT and [s["options"] for s in m["shots"]] == [{SPLIT: 16}, {SPLIT: 24}]
    for v in (16, 24):
        ck = shot_path(path, f"{SPLIT}={v}")
        assert ck.name == f"fs.{SPLIT}={v}.pt"
        r = res.shots[f"{SPLIT}={v}"]
        assert ck.is_file() and r.checkpoint == ck and r.epochs_done == 1
        assert SupernetEstimator(ck).search_space.stages[2].channels == (v,)
    assert res.images_per_second > 0


def test_rerun_resumes_every_shot(few_shot, conv_space, data):
    path, _ = few_shot
    again = train_few_shot(
        coarse_space(conv_space), data, path, TrainConfig(epochs=1, batch_size=32), split=SPLIT, data_spec="builtin:20"
    )
    assert all(r.resumed_from == 1 and r.epochs_done == 1 for r in again.shots.values())


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"split": "stage1.channels"}, "is a few-shot supernet of another space or split"),
        ({"cfg": TrainConfig(epochs=1, sampler="tunas")}, "--sampler sandwich or uniform, not tunas"),
        ({"suffix": ".pt"}, r"--out: a few-shot supernet \(--split\) is a .json manifest"),
    ],
)
def test_bad_few_shot_trainings_are_refused_without_touching_files(few_shot, conv_space, data, kw, msg):
    path, _ = few_shot
    before = path.read_text()
    target = path.with_suffix(kw.get("suffix", ".json"))
    with pytest.raises(NasError, match=msg) as exc:
        train_few_shot(
            coarse_space(conv_space),
            data,
            target,
            kw.get("cfg", TrainConfig(epochs=1, batch_size=32)),
            split=kw.get("split", SPLIT),
            data_spec="builtin:20",
        )
    assert "\n" not in str(exc.value)
    assert path.read_text() == before


def test_members_are_scored_by_the_shot_that_holds_them(few_shot, conv_space):
    path, _ = few_shot
    est = make_estimator(f"supernet:{path}")
    assert isinstance(est, FewShotEstimator) and est.name == f"supernet:{path}"
    assert "2 supernets, one per stage2.channels" in est.meaning
    assert est.search_space.phase == "coarse" and est.search_space.stages[2].channels == (16, 24)
    shots = {v: SupernetEstimator(shot_path(path, f"{SPLIT}={v}")) for v in (16, 24)}
    rng = np.random.default_rng(1)
    archs = [sample(coarse_space(conv_space), rng) for _ in range(6)]
    got = est.score(archs)
    for a, g in zip(archs, got, strict=True):
        v = 16 if "_s2_e4_c16" in a.arch else 24
        assert est.shot_for(a) is est.shots[f"{SPLIT}={v}"]
        assert g == pytest.approx(float(shots[v].score([a])[0]))
    # TuNAS's per-step quality goes through the same shot
    q = est.tunas_quality(batch_size=16)(archs[:2])
    assert q.shape == (2,) and ((q >= 0) & (q <= 1)).all()
    assert est.controller() is None


def test_supernet_macs_takes_a_few_shot_manifest(few_shot, conv_space):
    path, _ = few_shot
    est = make_estimator(f"supernet+macs:{path}")
    assert isinstance(est, SupernetMacsEstimator) and isinstance(est.base, FewShotEstimator)
    est.n_ref = 8  # a small reference sample keeps the test short
    a = sample(coarse_space(conv_space), np.random.default_rng(2))
    assert np.isfinite(est.score([a])).all()


def test_non_members_and_broken_manifests_are_one_line_errors(few_shot, tmp_path):
    path, _ = few_shot
    est = FewShotEstimator(path)
    other = parse_arch("res32|cn_r1_k3_s2_c8|uir_r1_a0_k3_s2_e4_c16|head_c32_h48_cls10")
    with pytest.raises(NasError, match="not in space") as exc:
        est.score([other])
    assert "\n" not in str(exc.value)
    cases = {
        "missing.json": None,
        "garbage.json": "{not json",
        "other.json": json.dumps({"format": "something else"}),
        "future.json": json.dumps({"format": "mnv4-nas few-shot supernet", "version": 99}),
    }
    m = read_manifest(path)
    m["shots"][0]["checkpoint"] = "gone.pt"
    cases["gone.json"] = json.dumps(m)
    m["shots"][0]["checkpoint"] = "../elsewhere/fs.pt"
    cases["outside.json"] = json.dumps(m)
    del m["shots"][0]["label"]
    cases["nolabel.json"] = json.dumps(m)
    for name, text in cases.items():
        p = tmp_path / name
        if text is not None:
            p.write_text(text)
        with pytest.raises(NasError) as exc:
            make_estimator(f"supernet:{p}")
        assert "\n" not in str(exc.value) and str(p) in str(exc.value), name


def test_a_two_decision_split_trains_and_scores_every_combination(conv_space, data, tmp_path):
    path = tmp_path / "fs2.json"
    res = train_few_shot(
        coarse_space(conv_space),
        data,
        path,
        TrainConfig(epochs=1, batch_size=32),
        split="stage1.channels,stage2.channels",
        data_spec="builtin:20",
        max_steps_per_epoch=2,
    )
    assert len(res.shots) == 4 and all(shot_path(path, label).is_file() for label in res.shots)
    est = FewShotEstimator(path)
    rng = np.random.default_rng(4)
    for a in [sample(coarse_space(conv_space), rng) for _ in range(4)]:
        w = widths_of(conv_space, a)
        assert est.shot_for(a) is est.shots[f"stage1.channels={w[1][0]}+stage2.channels={w[2][0]}"]
        assert 0 <= est.score([a])[0] <= 1


def test_shots_trained_below_the_space_resolution_score_its_members(conv_space, tmp_path):
    """``--resolution`` smaller than the space's: members (given at the space's 32 px) find their shot."""
    assert conv_space.resolution == 32
    path = tmp_path / "fs16.json"
    train_few_shot(
        coarse_space(conv_space),
        load_data("builtin:20", 16),
        path,
        TrainConfig(epochs=1, batch_size=32),
        split=SPLIT,
        data_spec="builtin:20",
        max_steps_per_epoch=2,
    )
    est = FewShotEstimator(path)
    assert est.search_space.resolution == 32
    rng = np.random.default_rng(5)
    for a in [sample(coarse_space(conv_space), rng) for _ in range(3)]:
        assert est.shot_for(a) is est.shots[f"{SPLIT}={widths_of(conv_space, a)[2][0]}"]
        assert 0 <= est.score([a])[0] <= 1


# -- shots that start from a one-shot supernet (--init-from) ------------------------------------


def _randomised(space) -> Supernet:
    """A supernet over ``space`` whose classifier and BatchNorm statistics are not at their (trivial) init."""
    net = Supernet(space, seed=3)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("classifier.weight") or name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=g))
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
    return net.eval()


@pytest.mark.parametrize("split", [SPLIT, "stage3.depth", "stage1.channels,stage3.depth"])
def test_an_inheriting_shot_computes_what_the_one_shot_supernet_does(conv_space, split):
    parent = _randomised(conv_space)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    rng = np.random.default_rng(5)
    for sh in split_space(conv_space, split):
        child = Supernet(sh.space, seed=7)
        child.inherit(parent.state_dict(), "parent.pt")
        child.eval()
        for a in [sample(sh.space, rng) for _ in range(3)] + [child.largest(), child.smallest()]:
            torch.testing.assert_close(child(x, a), parent(x, a))


def test_a_supernet_of_a_smaller_space_cannot_be_inherited(conv_space):
    full = Supernet(conv_space)
    narrow, shallow = split_space(conv_space, SPLIT)[0], split_space(conv_space, "stage3.depth")[0]
    for sub, msg in ((narrow, r"holds body.s2_b0.* smaller than"), (shallow, "has no body.s3_b1")):
        with pytest.raises(NasError, match=f"--init-from: small.pt {msg}.*does not contain this one") as exc:
            full.inherit(Supernet(sub.space).state_dict(), "small.pt")
        assert "\n" not in str(exc.value)


@pytest.fixture(scope="module")
def one_shot(tmp_path_factory, conv_space, data):
    """A 2-step one-shot supernet of t-conv's coarse stage, for shots to start from."""
    path = tmp_path_factory.mktemp("one-shot") / "one.pt"
    train_supernet(
        coarse_space(conv_space),
        data,
        path,
        TrainConfig(epochs=1, batch_size=32),
        data_spec="builtin:20",
        max_steps_per_epoch=2,
    )
    return path


def test_few_shot_training_starts_every_shot_from_the_one_shot_supernet(one_shot, conv_space, data, tmp_path):
    path = tmp_path / "warm.json"
    # a learning rate of ~0 leaves the shots at their start: each scores its members as the one-shot supernet does
    res = train_few_shot(
        coarse_space(conv_space),
        data,
        path,
        TrainConfig(epochs=1, batch_size=32, lr=1e-12),
        split=SPLIT,
        data_spec="builtin:20",
        max_steps_per_epoch=1,
        init_from=one_shot,
    )
    for r in res.shots.values():
        assert r.meta["init_from"]["checkpoint"] == str(one_shot) and r.meta["init_from"]["epochs_done"] == 1
    start = SupernetEstimator(one_shot)
    archs = [sample(coarse_space(conv_space), np.random.default_rng(6)) for _ in range(4)]
    archs += [start.supernet.largest(), start.supernet.smallest()]
    np.testing.assert_allclose(FewShotEstimator(path).score(archs), start.score(archs), atol=1e-3)
    assert read_manifest(path)["init_from"]["checkpoint"] == str(one_shot)


def test_resuming_a_warm_few_shot_run_keeps_its_start(one_shot, few_shot, conv_space, data, tmp_path):
    space = coarse_space(conv_space)
    cfg = TrainConfig(epochs=1, batch_size=32, lr=1e-12)
    kw = dict(split=SPLIT, data_spec="builtin:20", max_steps_per_epoch=1)
    start = tmp_path / "start.pt"
    start.write_bytes(one_shot.read_bytes())
    path = tmp_path / "warm.json"
    train_few_shot(space, data, path, cfg, **kw, init_from=start)
    # killed before the second shot began: rerun without --init-from, it starts from the recorded start
    second = shot_path(path, f"{SPLIT}=24")
    second.unlink()
    res = train_few_shot(space, data, path, cfg, **kw)
    assert res.shots[f"{SPLIT}=24"].meta["init_from"]["checkpoint"] == str(start)
    assert read_manifest(path)["init_from"]["checkpoint"] == str(start)
    # a different start, or none on a manifest trained from scratch, is refused; nothing is rewritten
    other = tmp_path / "other.pt"  # the same weights, another supernet by its record
    save_checkpoint(
        other,
        {**load_checkpoint(start)["meta"], "created": "2000-01-01T00:00:00+00:00"},
        load_checkpoint(start)["model"],
        None,
        None,
    )
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for manifest, given, was in (
        (path, other, "started from .*start.pt"),
        (few_shot[0], start, "trained without --init-from"),
    ):
        with pytest.raises(
            NasError, match=f"is a few-shot supernet {was}; resume it with the same --init-from or none"
        ) as exc:
            train_few_shot(space, data, manifest, cfg, **kw, init_from=given)
        assert "\n" not in str(exc.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # the start file replaced by another supernet while a shot has not begun: refused
    second.unlink()
    save_checkpoint(
        start, {**load_checkpoint(start)["meta"], "epochs_done": 7}, load_checkpoint(start)["model"], None, None
    )
    with pytest.raises(
        NasError, match=r"started from .*start.pt at 1 epochs, and that file now holds another supernet \(7 epochs\)"
    ):
        train_few_shot(space, data, path, cfg, **kw)
    assert not second.exists()


def test_a_warm_supernet_resumes_without_its_start_and_refuses_another(one_shot, conv_space, data, tmp_path):
    space = coarse_space(conv_space)
    kw = dict(data_spec="builtin:20", max_steps_per_epoch=1)
    out = tmp_path / "warm.pt"
    train_supernet(space, data, out, TrainConfig(epochs=1, batch_size=32), init_from=one_shot, **kw)
    r = train_supernet(space, data, out, TrainConfig(epochs=2, batch_size=32), **kw)
    assert r.epochs_done == 2 and r.meta["init_from"]["checkpoint"] == str(one_shot)
    other = tmp_path / "other.pt"  # the same weights, another supernet by its record
    save_checkpoint(
        other,
        {**load_checkpoint(one_shot)["meta"], "created": "2000-01-01T00:00:00+00:00"},
        load_checkpoint(one_shot)["model"],
        None,
        None,
    )
    before = out.read_bytes()
    with pytest.raises(NasError, match=r"trained with --init-from .*one.pt at 1 epochs; pass --no-resume") as exc:
        train_supernet(space, data, out, TrainConfig(epochs=3, batch_size=32), init_from=other, **kw)
    assert "\n" not in str(exc.value) and out.read_bytes() == before


def test_a_start_that_cannot_hold_the_shots_fails_before_anything_is_written(
    one_shot, few_shot, conv_space, data, tmp_path
):
    narrow = shot_path(few_shot[0], f"{SPLIT}=16")  # a shot: stage 2 at 16 channels only
    ck = load_checkpoint(one_shot)
    ck["meta"]["num_classes"] = 3
    ck["meta"]["classes"] = ck["meta"]["classes"][:3]  # consistent metadata: only the class count differs
    other_classes = tmp_path / "three.pt"
    save_checkpoint(other_classes, ck["meta"], ck["model"], None, None)
    for start, msg in (
        (narrow, "smaller than"),
        (other_classes, "was trained on 3 classes, the data has 10"),
        (tmp_path / "none.pt", "no such supernet checkpoint"),
    ):
        out = tmp_path / "refused.json"
        with pytest.raises(NasError, match=msg) as exc:
            train_few_shot(
                coarse_space(conv_space),
                data,
                out,
                TrainConfig(epochs=1, batch_size=32),
                split=SPLIT,
                data_spec="builtin:20",
                init_from=start,
            )
        assert "\n" not in str(exc.value)
        assert not out.exists() and not list(tmp_path.glob("refused.*"))
