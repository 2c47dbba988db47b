"""ONNX Runtime execution providers by name, for every command that runs a model
(``cache-features``, ``predict``) and for :class:`augkit.Classifier`.

``--device cuda`` names a device; ``--providers CUDAExecutionProvider,CPUExecutionProvider``
names ONNX Runtime's providers themselves, in order of preference. Either way the CPU
comes last as the fallback for the operators a device lacks. A provider this
ONNX Runtime does not have is one usage error naming the package that has it: each
provider ships in its own onnxruntime package (``onnxruntime-gpu``, ``onnxruntime-openvino``,
``onnxruntime-directml``, ...), which replaces the plain ``onnxruntime``.
"""

from __future__ import annotations

from collections.abc import Sequence

from augkit.core.errors import AugkitError, UsageError
from augkit.core.words import close_matches

CPU = "CPUExecutionProvider"
# device name -> (the provider, the pip package whose onnxruntime has it)
DEVICES: dict[str, tuple[str, str]] = {
    "cpu": (CPU, "onnxruntime"),
    "cuda": ("CUDAExecutionProvider", "onnxruntime-gpu"),
    "tensorrt": ("TensorrtExecutionProvider", "onnxruntime-gpu"),
    "openvino": ("OpenVINOExecutionProvider", "onnxruntime-openvino"),
    "coreml": ("CoreMLExecutionProvider", "onnxruntime"),  # in the macOS wheels of the plain package
    "directml": ("DmlExecutionProvider", "onnxruntime-directml"),
    "rocm": ("ROCMExecutionProvider", "onnxruntime-rocm"),
}
_PACKAGES = {provider: package for provider, package in DEVICES.values()}


def available() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def resolve_providers(device: str | None = None, providers: str | Sequence[str] | None = None) -> tuple[str, ...]:
    """The providers a session is made with, best first, the CPU last; checked against
    what this ONNX Runtime has. ``device``: a key of :data:`DEVICES`; ``providers``:
    provider names (or device names), a list or a comma-separated string."""
    if device and providers:
        raise UsageError("give --device or --providers, not both")
    if not device and not providers:
        return (CPU,)
    option = "--providers" if providers else "--device"
    if providers:
        asked = [p.strip() for p in (providers.split(",") if isinstance(providers, str) else providers) if p.strip()]
    else:
        asked = [device]
    names = [_provider_name(p, option) for p in asked]
    have = available()
    for name, word in zip(names, asked):
        if name not in have:
            raise UsageError(_missing(word, name, have, option))
    return tuple(dict.fromkeys([*names, CPU]))


def _provider_name(name: str, option: str) -> str:
    """A device name (``cuda``) or a provider name (``CUDAExecutionProvider``), any case."""
    lowered = name.lower()
    if lowered in DEVICES:
        return DEVICES[lowered][0]
    for provider, _package in DEVICES.values():
        if provider.lower() == lowered or provider.lower() == lowered + "executionprovider":
            return provider
    if name.endswith("ExecutionProvider"):
        return name  # one augkit does not list: ONNX Runtime says whether it has it
    hint = close_matches(name, list(DEVICES))
    fix = f"did you mean {' or '.join(hint)}?" if hint else f"known: {', '.join(DEVICES)}"
    raise UsageError(f"{option} {name}: unknown device; {fix} (or name an ONNX Runtime provider, e.g. CUDAExecutionProvider)")


def _missing(asked: str, provider: str, have: list[str], option: str) -> str:
    import onnxruntime as ort

    package = _PACKAGES.get(provider)
    shown = ", ".join(p.replace("ExecutionProvider", "") for p in have)
    if package is None:
        fix = "install the onnxruntime package built with it"
    elif package == "onnxruntime":
        fix = "it comes with the onnxruntime wheels for macOS"
    else:
        fix = f"pip uninstall -y onnxruntime && pip install {package}"
    return f"{option} {asked}: this ONNX Runtime ({ort.__version__}) has no {provider} (it has {shown}); {fix}"


def is_accelerated(providers: Sequence[str]) -> bool:
    """True when the first choice is not the CPU."""
    return bool(providers) and providers[0] != CPU


def check_started(session, providers: Sequence[str]) -> None:
    """ONNX Runtime falls back to the CPU, with a log line, when a device's provider cannot
    start (no driver, missing CUDA libraries): that is an error here, not a slow run."""
    if is_accelerated(providers) and providers[0] not in session.get_providers():
        raise AugkitError(f"ONNX Runtime could not start {providers[0]} (running: {', '.join(session.get_providers())}); "
                          f"check the device's driver and libraries, or use --device cpu")
