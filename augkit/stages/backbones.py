"""Backbones: pretrained ONNX classifiers by name, their preprocessing, their weights, and
the cut of their graph at the pooled features.

- The registry is data (``backbones.yaml``, shipped with the package). A user's own
  backbone is a YAML file with the same keys (one entry), or a bare ``.onnx`` file, whose
  defaults are the ONNX-zoo convention (:data:`DEFAULTS`).
- :func:`resolve_backbone` is the one place where "explicit option > entry > default" is
  decided: every command gets its preprocessing from there, and ``meta.json`` records it.
- :func:`weights_file` finds the ONNX file: ``--weights PATH``, a local file named by the
  entry, or a download into the cache directory (``AUGKIT_CACHE_DIR``, else the platform's
  user cache), verified against the entry's sha256 and moved into place atomically; an
  interrupted or corrupt download leaves nothing behind. ``AUGKIT_MIRROR`` / ``--mirror``
  replace the public host for networks that block it.
- :func:`feature_model` cuts the graph at the pooled-feature tensor, found by the entry's
  rule (or ``--feature-node NAME``), with ``onnx``; ONNX Runtime runs the result.

Nothing here imports onnx, NumPy or tqdm at module level: ``augkit backbones`` stays fast.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from augkit.core.errors import AugkitError, UsageError
from augkit.core.words import close_matches, numbers

DEFAULT_BACKBONE = "mobilenet_v2"
CACHE_ENV = "AUGKIT_CACHE_DIR"
MIRROR_ENV = "AUGKIT_MIRROR"
POOL_RULES = ("last_global_pool", "classifier_input")
CHANNELS = ("RGB", "BGR")
LAYOUTS = ("NCHW", "NHWC")

# The ONNX-zoo convention: what a bare ONNX file gets, and what an entry leaves out.
DEFAULTS: dict[str, Any] = {
    "input_size": 224,
    "range": [0.0, 1.0],
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "channels": "RGB",
    "layout": "NCHW",
    "pooled": "last_global_pool",
}
ENTRY_KEYS = ("name", "description", "url", "sha256", "size", "input_size", "resize", "range", "mean", "std",
              "channels", "layout", "pooled", "feature_node", "feature_dim", "license", "top1")
PREPROCESSING_KEYS = ("input_size", "resize", "range", "mean", "std", "channels", "layout")


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB uint8 image becomes the network's input: the centre square that resizing
    the shorter side to ``resize`` and cropping ``input_size`` would keep (side
    ``round(shorter * input_size / resize)``), resized to ``input_size`` (OpenCV's
    bilinear, or INTER_AREA when shrinking 2x or more; an image already of that size is
    used as is), channels reordered, 0..255 mapped onto ``range``, ``(x - mean) / std``."""

    input_size: int
    resize: int
    range: tuple[float, float]
    mean: tuple[float, float, float]  # in the model's channel order
    std: tuple[float, float, float]
    channels: str
    layout: str

    def scale_offset(self) -> tuple[list[float], list[float]]:
        """Per channel, ``x * scale + offset`` equals the whole normalisation."""
        lo, hi = self.range
        step = (hi - lo) / 255.0
        return ([step / s for s in self.std], [(lo - m) / s for m, s in zip(self.mean, self.std)])

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["range"], data["mean"], data["std"] = list(self.range), list(self.mean), list(self.std)
        return data


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


# --- the registry ------------------------------------------------------------------------


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
    if _is_remote(url):
        if not entry.get("sha256"):
            raise UsageError(f"{path}: sha256 is required with a URL ({url}); add the file's sha256 so a download can be verified")
    else:  # a local path is relative to the YAML file
        local = Path(url.removeprefix("file://")).expanduser()
        entry["url"] = str(local if local.is_absolute() else (path.parent / local))
    return entry


def _is_remote(url: str) -> bool:
    return url.split("://", 1)[0].lower() in ("http", "https") if "://" in url else False


def resolve_backbone(spec: str | os.PathLike | None = None, *, weights: str | os.PathLike | None = None,
                     input_size: int | None = None, resize: int | None = None, value_range=None, mean=None,
                     std=None, channels: str | None = None, layout: str | None = None, pooled: str | None = None,
                     feature_node: str | None = None) -> Backbone:
    """The backbone named by ``spec`` (a registry name, a user YAML file or an ONNX file),
    with every setting decided here: explicit option > entry > :data:`DEFAULTS`."""
    spec = str(spec) if spec is not None else DEFAULT_BACKBONE
    lowered = spec.lower()
    if lowered.endswith((".yaml", ".yml")):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UsageError(f"{spec}: backbone file not found; pass a registry name (see `augkit backbones`), a .yaml entry or an .onnx file")
        entry, source = _load_user_entry(path), str(path)
        name = str(entry.get("name") or path.stem)
    elif lowered.endswith(".onnx"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UsageError(f"{spec}: ONNX file not found; check the path")
        entry, source, name = {"url": str(path)}, str(path), path.stem
    else:
        known = registry()
        if spec not in known:
            hint = close_matches(spec, known)
            fix = f"did you mean {' or '.join(hint)}?" if hint else f"known: {', '.join(known)}"
            raise UsageError(f"unknown backbone {spec!r}; {fix} (or pass a .yaml entry or an .onnx file)")
        entry, source, name = known[spec], "registry", spec

    explicit = {"input_size": input_size, "resize": resize, "range": value_range, "mean": mean, "std": std,
                "channels": channels, "layout": layout, "pooled": pooled, "feature_node": feature_node}
    given = _check_entry({k: v for k, v in explicit.items() if v is not None}, "option")

    def pick(key: str) -> Any:
        if key in given:
            return given[key]
        return entry[key] if entry.get(key) is not None else DEFAULTS.get(key)

    size = pick("input_size")
    if "resize" in given:
        shorter = given["resize"]
    elif entry.get("resize") and "input_size" not in given:
        shorter = entry["resize"]
    else:  # the zoo's evaluation ratio: 256 for 224
        shorter = round(size * 256 / 224)
    if shorter < size:
        raise UsageError(f"resize ({shorter}) must be at least the input size ({size}): the centre crop is taken from it")
    prep = Preprocessing(size, shorter, tuple(pick("range")), tuple(pick("mean")), tuple(pick("std")),
                         pick("channels"), pick("layout"))
    if weights is not None and not Path(weights).expanduser().is_file():
        raise UsageError(f"{weights}: weights file not found; pass the path of the backbone's .onnx file")
    feature_dim = entry.get("feature_dim") if not given.get("feature_node") else None
    return Backbone(
        name=name, source=source, preprocessing=prep, pooled=pick("pooled"), feature_node=pick("feature_node"),
        feature_dim=feature_dim, url=entry.get("url"), sha256=entry.get("sha256"), size=entry.get("size"),
        weights=str(Path(weights).expanduser()) if weights is not None else None,
        description=str(entry.get("description") or ""), license=entry.get("license"), top1=entry.get("top1"),
    )


# --- weights -----------------------------------------------------------------------------


def cache_root() -> Path:
    """``AUGKIT_CACHE_DIR``, else the platform's user cache directory, plus ``augkit``."""
    explicit = os.environ.get(CACHE_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "augkit" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "augkit"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "augkit"


def cached_path(backbone: Backbone, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """Where a downloaded backbone's weights live in the cache (None for local weights)."""
    if not backbone.url or not _is_remote(backbone.url) or not backbone.sha256:
        return None
    name = Path(urllib.parse.urlparse(backbone.url).path).name or f"{backbone.name}.onnx"
    stem, dot, suffix = name.rpartition(".")
    name = f"{stem}-{backbone.sha256[:12]}.{suffix}" if dot else f"{name}-{backbone.sha256[:12]}"
    return Path(cache_dir or cache_root()) / "backbones" / name


def mirror_url(url: str, mirror: str | None) -> str:
    """``url`` on a mirror: a plain base gets the file name appended (``BASE/mobilenetv2-12.onnx``);
    a base with ``{file}`` or ``{path}`` (the URL's path) placeholders is filled in instead."""
    if not mirror:
        return url
    parsed = urllib.parse.urlparse(url)
    if "{" in mirror:
        return mirror.format(file=Path(parsed.path).name, path=parsed.path.lstrip("/"))
    return f"{mirror.rstrip('/')}/{Path(parsed.path).name}"


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_file(backbone: Backbone, *, cache_dir: str | os.PathLike | None = None, mirror: str | None = None,
                 progress: bool = False) -> tuple[Path, str]:
    """(path of the ONNX file, its sha256), downloading it into the cache on first use."""
    local = backbone.weights or (backbone.url if backbone.url and not _is_remote(backbone.url) else None)
    if local is not None:
        path = Path(local)
        if not path.is_file():
            raise UsageError(f"{path}: weights file not found; check the path or pass --weights PATH")
        return path, file_sha256(path)
    if not backbone.url:
        raise UsageError(f"backbone {backbone.name!r} names no weights; pass --weights PATH")
    dest = cached_path(backbone, cache_dir)
    if dest.is_file():
        sha = file_sha256(dest)
        if sha == backbone.sha256:
            return dest, sha
        dest.unlink()  # damaged since it was verified: fetch it again
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV, "").strip() or None
    download(mirror_url(backbone.url, mirror), dest, sha256=backbone.sha256, size=backbone.size, progress=progress,
             mirrored=mirror is not None)
    return dest, backbone.sha256


def download(url: str, dest: Path, *, sha256: str, size: int | None = None, progress: bool = False,
             timeout: float = 30.0, mirrored: bool = False) -> None:
    """Download ``url`` to ``dest`` via a temporary file beside it, verify the sha256, then
    ``os.replace``. Any failure (no network, HTTP error, a transfer cut short, a checksum
    mismatch, Ctrl-C) removes the temporary file and raises a one-line AugkitError."""
    import http.client
    import urllib.error
    import urllib.request

    from augkit._version import __version__
    from augkit.core.progress import progress_bar

    fix = "download it elsewhere and pass --weights PATH, or " + (
        "check the mirror (--mirror / AUGKIT_MIRROR) serves the same file" if mirrored
        else "set a mirror with --mirror / AUGKIT_MIRROR")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(dest.parent)
    tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}")
    request = urllib.request.Request(url, headers={"User-Agent": f"augkit/{__version__}"})
    try:
        try:
            response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) only, checked by the caller
        except urllib.error.HTTPError as exc:
            raise AugkitError(f"cannot download {url}: HTTP {exc.code} {exc.reason}; {fix}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise AugkitError(f"cannot download {url} ({reason}): offline? {fix}") from None
        with response:
            header = response.headers.get("Content-Length", "")
            expected = int(header) if header.isdigit() else size
            digest, received = hashlib.sha256(), 0
            with open(tmp, "wb") as f, progress_bar(expected, unit="B", desc=f"download {dest.name}", enabled=progress,
                                                    unit_scale=True, unit_divisor=1024) as bar:
                while True:
                    try:
                        block = response.read(1 << 20)
                    except (OSError, http.client.HTTPException):
                        block = b""  # a connection cut mid-way: reported from the byte count below
                    if not block:
                        break
                    f.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
        if expected is not None and received < expected:
            raise AugkitError(f"download of {url} stopped after {received:,} of {expected:,} bytes; nothing was kept: "
                              f"rerun to retry, or {fix}")
        got = digest.hexdigest()
        if got != sha256:
            raise AugkitError(f"{url}: sha256 of the download is {got}, expected {sha256}; the file was not kept "
                              f"(a proxy or a changed file?): {fix}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_stale_parts(folder: Path) -> None:
    """Partial downloads of processes that died (kill -9) without cleaning up."""
    for part in folder.glob(".*.part-*"):
        pid = part.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            part.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but is not ours
        return True
    return True


# --- the graph cut -----------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureModel:
    """The backbone cut at its pooled features, ready for ``onnxruntime.InferenceSession``."""

    model_bytes: bytes
    input_name: str
    output_name: str  # the pooled tensor; the runtime flattens it to (N, feature_dim)
    feature_dim: int | None  # None when the graph does not say (checked on the first batch)
    fixed_batch: int | None  # the batch size the file declared (the cut frees it), else None


PIXELS = "augkit_pixels"  # the uint8 input of a model cut with pixels=True
_PASS_THROUGH = {"Flatten", "Reshape", "Squeeze", "Dropout", "Identity", "Transpose"}
_SPATIAL_AXES = ({2, 3}, {1, 2})


def feature_model(path: str | os.PathLike, backbone: Backbone, *, pixels: bool = False) -> FeatureModel:
    """Load the ONNX file and cut it at the pooled-feature tensor (the entry's rule, or
    ``feature_node``). Raises AugkitError naming ``--feature-node`` when nothing matches.

    With ``pixels``, the model takes uint8 images (N, S, S, 3) in the backbone's channel
    order and does the normalisation (``x * scale + offset``, the layout) itself: the
    workers then ship a quarter of the bytes, and ONNX Runtime normalises a whole batch in
    a fraction of what NumPy takes per image."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise AugkitError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - shapes only help; the cut works without them
        inferred = model
    graph = model.graph
    shapes = _shapes(inferred.graph)
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise AugkitError(f"{path}: the graph has {len(inputs)} inputs; a backbone takes one image tensor")
    if backbone.feature_node:
        output = _named_tensor(graph, backbone.feature_node, path)
    else:
        output = _find_pooled(graph, shapes, backbone.pooled, initializers)
        if output is None:
            tail = ", ".join(f"{n.output[0]} ({n.op_type})" for n in list(graph.node)[-4:] if n.output)
            raise AugkitError(f"{path}: no pooled-feature tensor found by the rule {backbone.pooled!r}; name it with "
                              f"--feature-node NAME (the graph ends with: {tail})")
    feature_dim = _flat_dim(shapes.get(output))
    if backbone.feature_dim and feature_dim and feature_dim != backbone.feature_dim:
        raise AugkitError(f"{path}: the pooled tensor {output!r} has {feature_dim} values per image, the backbone entry "
                          f"says {backbone.feature_dim}: wrong weights for {backbone.name!r}? Or name the tensor with --feature-node NAME")
    image = inputs[0]
    _check_input(image, backbone.preprocessing, path)
    fixed = _fixed_batch(image)
    cut = _cut(model, image, output, inferred.graph, backbone.preprocessing if pixels else None)
    return FeatureModel(cut.SerializeToString(), PIXELS if pixels else image.name, output, feature_dim, fixed)


def _check_input(image, prep: Preprocessing, path) -> None:
    """The file's declared input against the preprocessing: a clear error before any run."""
    dims = [d.dim_value if d.HasField("dim_value") else None for d in image.type.tensor_type.shape.dim]
    if len(dims) != 4:
        return
    channels, height, width = (dims[1], dims[2], dims[3]) if prep.layout == "NCHW" else (dims[3], dims[1], dims[2])
    if channels not in (None, 3):
        other = "NHWC" if prep.layout == "NCHW" else "NCHW"
        raise UsageError(f"{path}: the input is {dims[1:]} per image, not 3-channel {prep.layout}; pass --layout {other}?")
    if (height, width) != (None, None) and (height, width) != (prep.input_size, prep.input_size):
        raise UsageError(f"{path}: the model takes {height}x{width} images, the preprocessing makes "
                         f"{prep.input_size}x{prep.input_size}; pass --input-size {height or width}")


def _shapes(graph) -> dict[str, list]:
    out = {}
    for info in [*graph.value_info, *graph.input, *graph.output]:
        if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
            out[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in info.type.tensor_type.shape.dim]
    return out


def _flat_dim(shape: list | None) -> int | None:
    if not shape or any(d is None for d in shape[1:]):
        return None
    dim = 1
    for d in shape[1:]:
        dim *= d
    return dim


def _fixed_batch(image) -> int | None:
    dims = image.type.tensor_type.shape.dim
    return dims[0].dim_value if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else None


def _named_tensor(graph, name: str, path) -> str:
    tensors = {o for n in graph.node for o in n.output}
    if name in tensors:
        return name
    by_node = {n.name: n.output[0] for n in graph.node if n.name and n.output}
    if name in by_node:
        return by_node[name]
    hint = close_matches(name, tensors | set(by_node))
    fix = f"did you mean {' or '.join(hint)}?" if hint else "list them with a viewer such as Netron"
    raise UsageError(f"{path}: --feature-node {name!r} is not a tensor or node of the graph; {fix}")


def _constant_ints(graph, name: str) -> list[int] | None:
    from onnx import numpy_helper

    for t in graph.initializer:
        if t.name == name:
            return [int(v) for v in numpy_helper.to_array(t).ravel()]
    for n in graph.node:
        if n.op_type == "Constant" and n.output and n.output[0] == name:
            for a in n.attribute:
                if a.name == "value":
                    return [int(v) for v in numpy_helper.to_array(a.t).ravel()]
                if a.name == "value_ints":
                    return list(a.ints)
    return None


def _is_global_pool(node, graph, shapes) -> bool:
    if node.op_type == "GlobalAveragePool":
        return True
    if node.op_type == "ReduceMean":
        axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = _constant_ints(graph, node.input[1])
        rank = len(shapes.get(node.input[0]) or []) or 4
        return axes is not None and rank == 4 and {a % rank for a in axes} in _SPATIAL_AXES
    if node.op_type == "AveragePool":
        shape = shapes.get(node.output[0])
        return bool(shape) and len(shape) == 4 and shape[2] == 1 and shape[3] == 1
    return False


def _find_pooled(graph, shapes, rule: str, initializers: set[str]) -> str | None:
    nodes = list(graph.node)  # ONNX requires topological order: the last match is the deepest
    if rule == "last_global_pool":
        return next((n.output[0] for n in reversed(nodes) if _is_global_pool(n, graph, shapes)), None)
    producers = {o: n for n in nodes for o in n.output}
    for node in reversed(nodes):
        if node.op_type in ("Gemm", "MatMul") and len(node.input) > 1 and node.input[1] in initializers:
            tensor = node.input[0]
            while tensor in producers and producers[tensor].op_type in _PASS_THROUGH:
                tensor = producers[tensor].input[0]
            return tensor
    return None


def _cut(model, image, output: str, inferred_graph, pixels: Preprocessing | None = None):
    """A model holding only what ``output`` needs, with a free batch dimension; with
    ``pixels``, preceded by the normalisation from uint8 NHWC pixels."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    needed, kept = {output}, []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
            for attr in node.attribute:  # names a subgraph (If, Loop) reads from outside
                for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                    needed.update(i for n in sub.node for i in n.input if i)
    initializers = [t for t in graph.initializer if t.name in needed]
    nodes = list(reversed(kept))
    if pixels is None:
        new_input = onnx.ValueInfoProto()
        new_input.CopyFrom(image)
        dims = new_input.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = "batch"
    else:
        size = pixels.input_size
        new_input = helper.make_tensor_value_info(PIXELS, onnx.TensorProto.UINT8, ["batch", size, size, 3])
        scale, offset = pixels.scale_offset()
        # NCHW: transpose the uint8 pixels first (a quarter of the bytes of float), then
        # Cast, Mul, Add broadcast per channel: 0.13 ms per 224x224 image on one core,
        # against 0.96 ms for the same ops transposing floats last.
        nchw = pixels.layout == "NCHW"
        shape = (1, 3, 1, 1) if nchw else (3,)
        initializers += [numpy_helper.from_array(np.array(scale, np.float32).reshape(shape), f"{PIXELS}_scale"),
                         numpy_helper.from_array(np.array(offset, np.float32).reshape(shape), f"{PIXELS}_offset")]
        source = f"{PIXELS}_nchw" if nchw else PIXELS
        prologue = [helper.make_node("Transpose", [PIXELS], [source], perm=[0, 3, 1, 2])] if nchw else []
        prologue += [
            helper.make_node("Cast", [source], [f"{PIXELS}_float"], to=onnx.TensorProto.FLOAT),
            helper.make_node("Mul", [f"{PIXELS}_float", f"{PIXELS}_scale"], [f"{PIXELS}_scaled"]),
            helper.make_node("Add", [f"{PIXELS}_scaled", f"{PIXELS}_offset"], [image.name]),
        ]
        nodes[:0] = prologue
    elem = next((i.type.tensor_type.elem_type for i in [*inferred_graph.value_info, *inferred_graph.output]
                 if i.name == output), onnx.TensorProto.FLOAT)
    cut_graph = helper.make_graph(
        nodes, f"{graph.name or 'backbone'}_features", [new_input],
        [helper.make_tensor_value_info(output, elem, None)], initializer=initializers,
    )
    cut = helper.make_model(cut_graph, opset_imports=list(model.opset_import), producer_name="augkit")
    cut.ir_version = max(model.ir_version, 4)  # IR 4+: initializers need not be listed as inputs
    return cut
