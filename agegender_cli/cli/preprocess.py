"""`agegender preprocess`: the report's image pipeline on images, folders or a manifest split."""

from pathlib import Path
from typing import Annotated

import typer

from agegender_cli.cli import options as o
from agegender_cli.cli.common import RichReporter, errors, fail_cleanly, print_json, stderr, stdout
from agegender_cli.config import SPLITS, PreprocessConfig
from agegender_cli.formatting import plural

D = PreprocessConfig()
SplitName = o.choice(SPLITS)


@fail_cleanly
def preprocess(
    inputs: Annotated[list[Path] | None, typer.Argument(help="Images or folders.")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the processed PNGs.")] = None,
    manifest: Annotated[Path | None, typer.Option(help="Manifest from `agegender dataset`.")] = None,
    split: Annotated[SplitName | None, typer.Option(help="Split of the manifest.")] = None,
    preview: Annotated[Path | None, typer.Option(help="Save a figure of the stages (PNG).")] = None,
    preview_count: Annotated[int, typer.Option(min=1, max=32, help="Images in the preview.")] = 4,
    grayscale: Annotated[bool, typer.Option(help="Convert to grayscale.")] = D.grayscale,
    blur: Annotated[bool, typer.Option(help="Gaussian blur.")] = D.blur,
    blur_kernel: Annotated[int, typer.Option(min=1, max=255, help="Blur kernel size (odd).")] = D.blur_kernel,
    blur_sigma: Annotated[float, typer.Option(min=0.0, callback=o.finite,
                                                 help="Blur sigma (0: from the kernel size).")] = D.blur_sigma,
    clahe: Annotated[bool, typer.Option(help="CLAHE contrast equalisation.")] = D.clahe,
    clahe_clip: Annotated[float, typer.Option(callback=o.positive, help="CLAHE clip limit.")] = D.clahe_clip,
    clahe_tile: Annotated[int, typer.Option(min=1, max=256, help="CLAHE tile grid size.")] = D.clahe_tile,
    gabor: Annotated[bool, typer.Option(help="Gabor filter.")] = D.gabor,
    gabor_kernel: Annotated[int, typer.Option(min=1, max=255, help="Gabor kernel size.")] = D.gabor_kernel,
    gabor_sigma: Annotated[float, typer.Option(callback=o.positive, help="Gabor sigma.")] = D.gabor_sigma,
    gabor_theta: Annotated[float, typer.Option(callback=o.finite, help="Gabor orientation (radians).")] = D.gabor_theta,
    gabor_lambda: Annotated[float, typer.Option(callback=o.positive, help="Gabor wavelength.")] = D.gabor_lambda,
    gabor_gamma: Annotated[float, typer.Option(callback=o.positive, help="Gabor aspect ratio.")] = D.gabor_gamma,
    gabor_psi: Annotated[float, typer.Option(callback=o.finite, help="Gabor phase offset.")] = D.gabor_psi,
    as_json: o.Json = False,
) -> None:
    """Grayscale, Gaussian blur 5x5, CLAHE and Gabor filter, each switchable; writes PNGs and/or a preview."""
    from agegender_cli import service

    if out is None and preview is None:
        raise typer.BadParameter("give --out DIR and/or --preview FILE.png", param_hint="--out")
    if blur_kernel < 1 or blur_kernel % 2 == 0:
        raise typer.BadParameter("must be a positive odd number", param_hint="--blur-kernel")
    cfg = PreprocessConfig(
        grayscale, blur, blur_kernel, blur_sigma, clahe, clahe_clip, clahe_tile, gabor, gabor_kernel,
        gabor_sigma, gabor_theta, gabor_lambda, gabor_gamma, gabor_psi,
    )
    result = service.run_preprocess(
        cfg, list(inputs or []), out, manifest=manifest, split=split, preview=preview,
        preview_count=preview_count, reporter=RichReporter(),
    )
    if "out" in result:
        stderr.print(f"{result['written']:,} of {plural(result['n_images'], 'image')} written to {result['out']}",
                     highlight=False, soft_wrap=True)
    if as_json:
        print_json(result)
        if result["failed"]:
            raise typer.Exit(1)
        return
    if "preview" in result:
        stdout.print(f"preview: {result['preview']}")
    for failure in result["failed"]:
        errors.print(f"[red]failed[/] {failure['error']}", highlight=False)
    if result["failed"]:
        raise typer.Exit(1)
