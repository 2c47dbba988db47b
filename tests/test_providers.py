"""augkit.stages.providers: ONNX Runtime execution providers by name (--device, --providers)."""

from __future__ import annotations

import onnxruntime as ort
import pytest
from click.testing import CliRunner

from augkit.cli import cli
from augkit.core.errors import AugkitError, UsageError
from augkit.stages import providers
from augkit.stages.providers import CPU, check_started, resolve_providers

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def test_the_cpu_is_the_default():
    assert resolve_providers() == (CPU,)
    assert resolve_providers("cpu") == resolve_providers("CPU") == (CPU,)


def test_a_device_names_its_provider_with_the_cpu_as_fallback(monkeypatch):
    monkeypatch.setattr(providers, "available", lambda: ["CUDAExecutionProvider", CPU])
    assert resolve_providers("cuda") == ("CUDAExecutionProvider", CPU)
    assert resolve_providers(providers="cuda, cpu") == ("CUDAExecutionProvider", CPU)
    assert resolve_providers(providers=["CUDAExecutionProvider"]) == ("CUDAExecutionProvider", CPU)


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has CUDA")
def test_a_provider_this_onnxruntime_lacks_names_the_package_to_install():
    with pytest.raises(UsageError) as error:
        resolve_providers("cuda")
    message = str(error.value)
    assert "no CUDAExecutionProvider" in message and "pip install onnxruntime-gpu" in message and "\n" not in message


@pytest.mark.parametrize("device, package", [("openvino", "onnxruntime-openvino"), ("directml", "onnxruntime-directml"),
                                             ("rocm", "onnxruntime-rocm")])
def test_each_device_names_its_own_package(monkeypatch, device, package):
    monkeypatch.setattr(providers, "available", lambda: [CPU])
    with pytest.raises(UsageError, match=f"pip install {package}$"):
        resolve_providers(device)


def test_an_unknown_device_suggests_the_closest_names():
    with pytest.raises(UsageError, match="unknown device; did you mean cuda"):
        resolve_providers("cdua")


def test_device_and_providers_together_are_a_usage_error():
    with pytest.raises(UsageError, match="not both"):
        resolve_providers("cpu", "CPUExecutionProvider")


def test_a_device_whose_provider_did_not_start_is_an_error_not_a_slow_run():
    class FellBack:
        def get_providers(self):
            return [CPU]

    with pytest.raises(AugkitError, match="could not start CUDAExecutionProvider"):
        check_started(FellBack(), ("CUDAExecutionProvider", CPU))
    check_started(FellBack(), (CPU,))


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has CUDA")
@pytest.mark.parametrize("command", [["cache-features", "SRC", "-o", "OUT"], ["predict", "MODEL", "SRC", "-o", "p.csv"]])
def test_cache_features_and_predict_refuse_a_missing_device_with_exit_2(tmp_path, command):
    (tmp_path / "SRC").mkdir()
    args = [str(tmp_path / a) if a in ("SRC", "OUT", "MODEL") else a for a in command]
    result = CliRunner().invoke(cli, [*args, "--device", "cuda"])
    assert result.exit_code == 2 and "pip install onnxruntime-gpu" in result.output
