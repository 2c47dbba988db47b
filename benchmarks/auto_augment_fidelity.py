"""How far augkit's RandAugment / TrivialAugmentWide operations are from torchvision's.

For each of the 14 operations, at the largest magnitudes of both policies and a few others,
on the photos of sample_data/ (or PHOTOS): augkit's ``apply_op`` against torchvision's own
``autoaugment._apply_op`` on PIL images and on uint8 tensors, nearest interpolation, black
fill: mean absolute difference in grey levels, the share of values more than one level
apart, the largest difference. It also checks that augkit's magnitude tables are
torchvision's, bin by bin.

Needs torchvision (``pip install torchvision``, the release made for the installed torch);
nothing else of augkit's tests or commands does.

    python benchmarks/auto_augment_fidelity.py [PHOTOS] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

CASES = {"Identity": [None], "ShearX": [0.3, -0.3, 0.99], "ShearY": [0.3, -0.99], "TranslateX": [32.0, -136.0],
         "TranslateY": [-32.0, 20.5], "Rotate": [30.0, -135.0, 8.0], "Brightness": [0.9, -0.5],
         "Color": [0.9, -0.99], "Contrast": [0.9, -0.9], "Sharpness": [0.9, -0.9], "Posterize": [2.0, 6.0, 8.0],
         "Solarize": [178.5, 128.0, 0.0], "AutoContrast": [None], "Equalize": [None]}


def check_spaces(AA) -> None:
    from augkit.recipes.auto_augment import rand_augment_space, trivial_augment_wide_space

    pairs = ((AA.RandAugment()._augmentation_space(31, (300, 400)), rand_augment_space(31, 300, 400)),
             (AA.TrivialAugmentWide()._augmentation_space(31), trivial_augment_wide_space(31)))
    for theirs, ours in pairs:
        assert list(theirs) == list(ours), "the operations or their order differ"
        for name, (magnitudes, _signed) in theirs.items():
            if magnitudes.ndim == 0:
                assert ours[name] is None, name
            else:
                assert np.allclose(magnitudes.numpy(), ours[name], atol=1e-4), name


def compare(images: list[np.ndarray], AA, torch) -> dict:
    from PIL import Image
    from torchvision.transforms import InterpolationMode

    from augkit.recipes.auto_augment import apply_op

    table: dict = {}
    for mode in ("pil", "tensor"):
        for name, magnitudes in CASES.items():
            for magnitude in magnitudes:
                means, over_one, largest = [], [], 0
                for image in images:
                    m = 0.0 if magnitude is None else magnitude
                    if mode == "pil":
                        ref = np.asarray(AA._apply_op(Image.fromarray(image), name, m, InterpolationMode.NEAREST, None))
                    else:
                        tensor = torch.from_numpy(image.copy()).permute(2, 0, 1)
                        ref = AA._apply_op(tensor, name, m, InterpolationMode.NEAREST, [0.0, 0.0, 0.0])
                        ref = ref.permute(1, 2, 0).numpy()
                    diff = np.abs(ref.astype(int) - apply_op(image, name, magnitude).astype(int))
                    means.append(diff.mean())
                    over_one.append((diff > 1).mean())
                    largest = max(largest, int(diff.max()))
                table[f"{mode} {name} {magnitude}"] = {"mean": float(np.mean(means)),
                                                       "over_one_level": float(np.mean(over_one)), "max": largest}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="?", default=str(ROOT / "sample_data"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    try:
        import torch
        import torchvision
        from torchvision.transforms import autoaugment as AA
    except ImportError as exc:
        raise SystemExit(f"needs torchvision ({exc}): pip install torchvision") from None
    import augkit

    paths = sorted(p for p in Path(args.photos).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    images = [augkit.decode_image(p) for p in paths]
    check_spaces(AA)
    print(f"magnitude tables: torchvision {torchvision.__version__}'s, bin by bin; {len(images)} photos")
    table = compare(images, AA, torch)
    for key, row in table.items():
        print(f"{key:<32} mean {row['mean']:.3f}  >1 level {100 * row['over_one_level']:.2f} %  max {row['max']}")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
