"""The PNGs of the evaluations, copied into docs/results/ small enough to commit."""
from __future__ import annotations

from pathlib import Path

EVALUATE_DPI = 120  # what molenv.evaluate writes


def copy_figures(collected: dict, figure_dir: Path, dpi: int, suffix: str = "", only: tuple[str, ...] | None = None) -> dict:
    """Copies of the PNGs of each test evaluation ({molecule: collect_run()}; those named
    in `only`, or all), downscaled to `dpi` with a 256-colour palette, named
    ``<molecule>_<model><suffix>_<file>``; {(molecule, model + suffix): [names]}."""
    from PIL import Image

    figure_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for molecule, c in collected.items():
        for model, entry in c["models"].items():
            names = []
            for key, file in entry["metrics"].get("files", {}).items():
                src = entry["dir"] / "eval-test" / file
                if not src.is_file() or (only is not None and key not in only):
                    continue
                dst = figure_dir / f"{molecule}_{model}{suffix}_{file}"
                with Image.open(src) as img:
                    scale = dpi / EVALUATE_DPI
                    small = img.convert("RGB").resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
                    small.quantize(colors=256).save(dst, optimize=True)
                names.append(dst.name)
            files[(molecule, model + suffix)] = names
    return files
