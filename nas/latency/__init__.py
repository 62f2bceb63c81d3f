"""Per-device latency: device catalog, latency tables, roofline device model, profiling, import,
prediction, calibration to this machine, validation and verification.

Targets live in the shipped, read-only ``latency_tables/devices.toml`` and in the user's tables folder
(:func:`user_tables_dir`), merged (:func:`load_catalog`); each has a table ``<target>.csv``, the user's
merged over the shipped one (:func:`load_table`), whose source is ``profiled`` (this host, entry by
entry, with the machine's fingerprint), ``imported`` (measured on a device from a bundle) or
``roofline-fit`` (the target's device model fitted to published or measured model latencies). A host
table made on another machine is fitted to this one by :func:`ensure_calibration`. Predict with::

    from nas.latency import predict
    ms = predict([spec], "pixel8-edgetpu")          # specs, by key lookup
    ms = predict(encodings, "host-cpu", space=sp)   # a search space's encodings, vectorised
"""

from __future__ import annotations

from nas.latency._build import BuildResult, build_table, roofline_table
from nas.latency._bundle import import_results, make_bundle, read_model_latencies, read_results
from nas.latency._calibration import Calibration, table_calibration
from nas.latency._catalog import (
    HOST_TARGET,
    HOST_TARGETS,
    TFLITE_HOST_TARGET,
    Device,
    DeviceModel,
    FitReport,
    add_device,
    get_device,
    load_catalog,
    save_device,
    user_tables_dir,
)
from nas.latency._fit import fit_models, fit_published, fit_table, fitted_device, refit_catalog
from nas.latency._host_calibration import CalibrationRun, ensure_calibration
from nas.latency._keys import arch_features, distinct_keys, key_ops, space_keys, zoo_keys
from nas.latency._machine import HostCalibration, Machine, this_machine
from nas.latency._onnxrt import time_onnx
from nas.latency._predict import Prediction, Predictor, check_supported, load_predictor, predict
from nas.latency._profile import ProfileResult, check_resumable, profile_host
from nas.latency._published import load_published, published_points
from nas.latency._roofline import FitResult, fit_device_model, layer_ms
from nas.latency._runtime import HostRuntime, host_runtime
from nas.latency._store import load_table
from nas.latency._table import (
    SOURCES,
    LatencyTable,
    find_table,
    merge_tables,
    read_table,
    table_paths,
    write_table,
)
from nas.latency._timing import Timing, TimingConfig, interference_guard
from nas.latency._validate import (
    ValidationReport,
    not_measurable_hint,
    sample_archs,
    summarize,
    validate_host,
    validate_published,
)
from nas.latency._verify import VerifyReport, picks_of, verify_picks
from nas.latency._workflows import (
    ModelsImport,
    ProfileOutcome,
    ProfilePlan,
    bundle_target,
    import_from_models,
    plan_profile,
    profile_target,
    refit_targets,
    table_keys,
)

__all__ = [
    "add_device",
    "HOST_TARGET",
    "HOST_TARGETS",
    "SOURCES",
    "TFLITE_HOST_TARGET",
    "BuildResult",
    "Calibration",
    "CalibrationRun",
    "Device",
    "DeviceModel",
    "FitReport",
    "FitResult",
    "HostCalibration",
    "HostRuntime",
    "Machine",
    "ModelsImport",
    "ProfileOutcome",
    "ProfilePlan",
    "LatencyTable",
    "Prediction",
    "Predictor",
    "ProfileResult",
    "Timing",
    "TimingConfig",
    "ValidationReport",
    "VerifyReport",
    "arch_features",
    "build_table",
    "bundle_target",
    "check_resumable",
    "check_supported",
    "distinct_keys",
    "ensure_calibration",
    "find_table",
    "fit_device_model",
    "fit_models",
    "fit_published",
    "fit_table",
    "fitted_device",
    "get_device",
    "host_runtime",
    "interference_guard",
    "import_from_models",
    "import_results",
    "key_ops",
    "layer_ms",
    "load_catalog",
    "load_predictor",
    "load_published",
    "load_table",
    "make_bundle",
    "merge_tables",
    "not_measurable_hint",
    "picks_of",
    "plan_profile",
    "predict",
    "profile_host",
    "profile_target",
    "published_points",
    "read_model_latencies",
    "read_results",
    "read_table",
    "refit_catalog",
    "refit_targets",
    "roofline_table",
    "sample_archs",
    "save_device",
    "space_keys",
    "summarize",
    "table_calibration",
    "table_keys",
    "table_paths",
    "this_machine",
    "time_onnx",
    "user_tables_dir",
    "validate_host",
    "validate_published",
    "verify_picks",
    "write_table",
    "zoo_keys",
]
