"""The backbone registry: entries by name, a user's YAML entry or bare ONNX file, and the
one place where a backbone's settings are decided (:func:`resolve_backbone`: explicit
option > entry > :data:`DEFAULTS`, the ONNX-zoo convention). Every command gets its
preprocessing from there, and ``meta.json`` records it.

The registry is data (``backbones.yaml`` beside this module, shipped with the package).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augkit.core.errors import UsageError
from augkit.core.words import close_matches, numbers
from augkit.stages.backbones.weights import is_remote
from augkit.stages.preprocess import ZOO, ZOO_RESIZE, Preprocessing

DEFAULT_BACKBONE = "mobilenet_v2"
POOL_RULES = ("last_global_pool", "classifier_input")
CHANNELS = ("RGB", "BGR")
LAYOUTS = ("NCHW", "NHWC")

# What a bare ONNX file gets, and what an entry leaves out: the zoo's preprocessing
# (augkit.stages.preprocess owns it) and its pooled features.
DEFAULTS: dict[str, Any] = {**ZOO, "pooled": "last_global_pool"}
ENTRY_KEYS = ("name", "description", "url", "sha256", "size", "input_size", "resize", "range", "mean", "std",
              "channels", "layout", "pooled", "feature_node", "feature_dim", "license", "top1")
PREPROCESSING_KEYS = ("input_size", "resize", "range", "mean", "std", "channels", "layout")


@dataclass(frozen=True)
class Backbone:
    name: str
    source: str  # "registry", the user YAML file, or the ONNX file
    preprocessing: Preprocessing
    pooled: str
    feature_node: str | None = None
    feature_dim: int | None = None
    url: str | None = None  # http(s) URL or local path of the weights
    sha256: str | None = None
    size: int | None = None
    weights: str | None = None  # a local weights file given explicitly (--weights, a bare .onnx)
    description: str = ""
    license: str | None = None
    top1: float | None = None


@functools.lru_cache(maxsize=1)
def registry() -> dict[str, dict[str, Any]]:
    """Name -> validated entry, from the packaged ``backbones.yaml``."""
    import yaml

    path = Path(__file__).with_name("backbones.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {name: _check_entry(entry, f"{path}: {name}") for name, entry in data.items()}


def _check_entry(entry: Any, where: str) -> dict[str, Any]:
    """Validate the keys and types of one entry; errors name the file, the key and the fix."""
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: a backbone entry is a mapping of {', '.join(ENTRY_KEYS[:6])}, ...")
    for key in entry:
        if key not in ENTRY_KEYS:
            hint = close_matches(str(key), ENTRY_KEYS)
            fix = f"did you mean {hint[0]!r}?" if hint else f"known keys: {', '.join(ENTRY_KEYS)}"
            raise UsageError(f"{where}: unknown key {key!r}; {fix}")
    out = dict(entry)
    for key in ("input_size", "resize", "size", "feature_dim"):
        if key in out and out[key] is not None and (isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] < 1):
            raise UsageError(f"{where}: {key} must be a positive whole number, got {out[key]!r}")
    for key, length in (("range", 2), ("mean", 3), ("std", 3)):
        if key in out:
            try:
                out[key] = numbers(out[key], length)
            except ValueError:
                raise UsageError(f"{where}: {key}: expected {length} numbers, got {out[key]!r}") from None
    if "std" in out and any(s == 0 for s in out["std"]):
        raise UsageError(f"{where}: std must not contain 0")
    for key, allowed in (("channels", CHANNELS), ("layout", LAYOUTS), ("pooled", POOL_RULES)):
        if key in out and str(out[key]).upper() not in [a.upper() for a in allowed]:
            raise UsageError(f"{where}: {key} must be one of {', '.join(allowed)}, got {out[key]!r}")
        if key in out:
            out[key] = next(a for a in allowed if a.upper() == str(out[key]).upper())
    if "sha256" in out and out["sha256"] is not None:
        sha = str(out["sha256"]).lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise UsageError(f"{where}: sha256 must be 64 hexadecimal digits")
        out["sha256"] = sha
    return out


def _load_user_entry(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the backbone file ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    # One entry, flat, or under its name (`my_model: {url: ...}`) as in the registry.
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), dict):
        (name, data), = data.items()
        data = {"name": name, **data}
    entry = _check_entry(data, str(path))
    if not entry.get("url"):
        raise UsageError(f"{path}: no url; give the ONNX file's https URL (with its sha256) or a local path")
    url = str(entry["url"])
    if is_remote(url):
        if not entry.get("sha256"):
            raise UsageError(f"{path}: sha256 is required with a URL ({url}); add the file's sha256 so a download can be verified")
    else:  # a local path is relative to the YAML file
        local = Path(url.removeprefix("file://")).expanduser()
        entry["url"] = str(local if local.is_absolute() else (path.parent / local))
    return entry


def resolve_backbone(spec: str | os.PathLike | None = None, *, weights: str | os.PathLike | None = None,
                     input_size: int | None = None, resize: int | None = None, value_range=None, mean=None,
                     std=None, channels: str | None = None, layout: str | None = None, pooled: str | None = None,
                     feature_node: str | None = None) -> Backbone:
    """The backbone named by ``spec`` (a registry name, a user YAML file or an ONNX file),
    with every setting decided here: explicit option > entry > :data:`DEFAULTS`."""
    entry, source, name = _find_entry(str(spec) if spec is not None else DEFAULT_BACKBONE)
    explicit = {"input_size": input_size, "resize": resize, "range": value_range, "mean": mean, "std": std,
                "channels": channels, "layout": layout, "pooled": pooled, "feature_node": feature_node}
    given = _check_entry({k: v for k, v in explicit.items() if v is not None}, "option")

    def pick(key: str) -> Any:
        if key in given:
            return given[key]
        return entry[key] if entry.get(key) is not None else DEFAULTS.get(key)

    size = pick("input_size")
    prep = Preprocessing(size, _shorter_side(size, given, entry), tuple(pick("range")), tuple(pick("mean")),
                         tuple(pick("std")), pick("channels"), pick("layout"))
    if weights is not None and not Path(weights).expanduser().is_file():
        raise UsageError(f"{weights}: weights file not found; pass the path of the backbone's .onnx file")
    feature_dim = entry.get("feature_dim") if not given.get("feature_node") else None
    return Backbone(
        name=name, source=source, preprocessing=prep, pooled=pick("pooled"), feature_node=pick("feature_node"),
        feature_dim=feature_dim, url=entry.get("url"), sha256=entry.get("sha256"), size=entry.get("size"),
        weights=str(Path(weights).expanduser()) if weights is not None else None,
        description=str(entry.get("description") or ""), license=entry.get("license"), top1=entry.get("top1"),
    )


def _find_entry(spec: str) -> tuple[dict[str, Any], str, str]:
    """(entry, source, name) of a registry name, a user YAML file or a bare ONNX file."""
    lowered = spec.lower()
    if lowered.endswith((".yaml", ".yml")):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UsageError(f"{spec}: backbone file not found; pass a registry name (see `augkit backbones`), a .yaml entry or an .onnx file")
        entry = _load_user_entry(path)
        return entry, str(path), str(entry.get("name") or path.stem)
    if lowered.endswith(".onnx"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UsageError(f"{spec}: ONNX file not found; check the path")
        return {"url": str(path)}, str(path), path.stem
    known = registry()
    if spec not in known:
        hint = close_matches(spec, known)
        fix = f"did you mean {' or '.join(hint)}?" if hint else f"known: {', '.join(known)}"
        raise UsageError(f"unknown backbone {spec!r}; {fix} (or pass a .yaml entry or an .onnx file)")
    return known[spec], "registry", spec


def _shorter_side(size: int, given: dict[str, Any], entry: dict[str, Any]) -> int:
    """The side the shorter one is resized to before the centre crop: the option, else
    the entry's (unless the input size was changed), else the zoo's ratio (256 for 224)."""
    if "resize" in given:
        shorter = given["resize"]
    elif entry.get("resize") and "input_size" not in given:
        shorter = entry["resize"]
    else:
        shorter = round(size * ZOO_RESIZE / ZOO["input_size"])
    if shorter < size:
        raise UsageError(f"resize ({shorter}) must be at least the input size ({size}): the centre crop is taken from it")
    return shorter
