from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from nas.cost import Op, ops_of
from nas.errors import NasError
from nas.latency import DeviceModel, fit_device_model, get_device, layer_ms, refit_catalog
from nas.latency._roofline import batch_ms, op_batch
from nas.zoo import get_spec


def test_op_time_is_max_of_compute_and_memory_plus_overhead():
    m = DeviceModel(peak_gmacs=1.0, bandwidth_gbs=1.0, eff_dwconv=0.5, op_overhead_ms=0.01)
    conv = Op("c", "conv", 2_000_000, 0, 1000, 1000, 1000)  # 2 ms compute vs 3000 B → 0.003 ms memory
    dw = Op("d", "dwconv", 1_000_000, 0, 0, 500_000, 500_000)  # 2 ms compute (eff 0.5) vs 1 ms memory
    add = Op("a", "elementwise", 0, 0, 0, 2_000_000, 1_000_000)  # memory only: 3 ms at int8
    assert layer_ms(m, [conv], "int8") == pytest.approx(2.0 + 0.01)
    assert layer_ms(m, [dw], "int8") == pytest.approx(2.0 + 0.01)
    assert layer_ms(m, [add], "int8") == pytest.approx(3.0 + 0.01)
    assert layer_ms(m, [add], "fp32") == pytest.approx(12.0 + 0.01)  # 4 bytes per element
    b = op_batch([[conv], [dw, add]], "int8")
    np.testing.assert_allclose(batch_ms(m, b), [2.01, 5.02])


def test_fit_recovers_known_parameters_from_synthetic_models():
    dev = get_device("pixel6-cpu")
    truth = replace(dev.model, peak_gmacs=80.0, bandwidth_gbs=4.0, eff_dwconv=0.2, fixed_ms=0.5)
    names = [
        "mnv4-conv-small",
        "mnv4-conv-medium",
        "mobilenet-v1",
        "mobilenet-v2-050",
        "mobilenet-v2-100",
        "mobilenet-v2-200",
        "mnv4-conv-large",
    ]
    samples = [ops_of(get_spec(n)) for n in names]
    y = batch_ms(truth, op_batch(samples, "int8")) + truth.fixed_ms
    start = replace(dev, model=replace(dev.model, peak_gmacs=300.0, bandwidth_gbs=30.0, eff_dwconv=0.3, fixed_ms=0))
    res = fit_device_model(start, samples, y, with_fixed=[True] * len(y), labels=names)
    assert res.mape_pct < 0.5 and res.cv == "loo" and res.cv_mape_pct is not None and res.cv_mape_pct < 2
    assert res.model.peak_gmacs == pytest.approx(80.0, rel=0.05)
    assert res.model.bandwidth_gbs == pytest.approx(4.0, rel=0.05)


def test_fit_rejects_bad_input():
    dev = get_device("pixel6-cpu")
    ops = ops_of(get_spec("mobilenet-v1"))
    with pytest.raises(NasError, match="positive"):
        fit_device_model(dev, [ops], [-1.0], with_fixed=[True], labels=["a"])
    with pytest.raises(NasError, match="unknown device-model parameter"):
        fit_device_model(dev, [ops], [1.0], with_fixed=[True], labels=["a"], free=["speed"])


def test_shipped_catalog_is_the_fit_output():
    # `mnv4-nas latency fit` wrote the shipped parameters: refitting reproduces them.
    for dev, res in refit_catalog(["pixel8-edgetpu", "pixel4-dsp"], write=False):
        shipped = get_device(dev.name)
        assert shipped.fit is not None
        assert res.mape_pct == pytest.approx(shipped.fit.mape_pct, abs=0.1)
        assert res.cv_mape_pct == pytest.approx(shipped.fit.loo_mape_pct, abs=0.3)
        for name in res.free:
            assert getattr(res.model, name) == pytest.approx(getattr(shipped.model, name), rel=0.02, abs=1e-4)


def test_hybrid_large_on_pixel8_edgetpu_near_published():
    dev = get_device("pixel8-edgetpu")
    ms = batch_ms(dev.model, op_batch([ops_of(get_spec("mnv4-hybrid-large"))], "int8"))[0] + dev.model.fixed_ms
    assert ms == pytest.approx(3.8, rel=0.05)
