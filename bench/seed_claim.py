"""Check a claim of the method text: on the same data, the baseline autoencoder's training loss
stalls high (~2200 dB²) while the improved one's falls about 10× lower (~200 dB²).

Both models are trained with the `seed` preset exactly (whole-clip Mel/dB images, raw dB features,
the full 451 M-parameter widths, Adam 1e-3, batch 25, 20 epochs), on one channel since the
recordings are mono, from the same initial seed and the same clips.

    ./dev python bench/seed_claim.py                      # lathe: first 100 training clips
    ./dev python bench/seed_claim.py --set mimii_fan_00 --clips 0

Writes bench/results/seed_claim_<set>.json and .png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import aetk
from aetk.data.audio import find_audio_files

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"


def train(files: list[Path], model: str, seed: int) -> list[dict]:
    reports = []

    class Log(aetk.FitObserver):
        def on_epoch(self, report):
            reports.append(
                {"epoch": report.epoch, "train_loss": report.train_loss, "seconds": report.seconds}
            )
            print(
                f"  {model} epoch {report.epoch:>2}: train loss {report.train_loss:10.1f} dB² "
                f"({report.seconds:.1f} s)",
                flush=True,
            )

    aetk.fit(
        files,
        preset="seed",
        model=model,
        seed=seed,
        val_fraction=0.0,
        set=["featurizer.channels=1"],
        observer=Log(),
    )
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--set", default="lathe")
    parser.add_argument("--clips", type=int, default=100, help="first N training clips (0: all)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    folder = args.data / args.set / "train"
    if not folder.is_dir():
        print(f"claim check skipped: no recordings at {folder}")
        return 0
    warnings.simplefilter("ignore", aetk.AetkWarning)
    files = find_audio_files([folder])
    files = files[: args.clips] if args.clips else files
    print(f"{len(files)} clips of {args.set}, seed preset, 20 epochs per model")
    started = time.perf_counter()
    curves = {model: train(files, model, args.seed) for model in ("baseline-ae", "improved-ae")}
    baseline = curves["baseline-ae"][-1]["train_loss"]
    improved = curves["improved-ae"][-1]["train_loss"]
    result = {
        "set": args.set,
        "clips": len(files),
        "seed": args.seed,
        "final_train_loss": {"baseline-ae": baseline, "improved-ae": improved},
        "ratio": baseline / improved,
        "claim": "baseline ~2200 dB², improved ~200 dB² (~10× lower)",
        "curves": curves,
        "seconds": time.perf_counter() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"seed_claim_{args.set}.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(curves, args.out / f"seed_claim_{args.set}.png", f"{args.set}, {len(files)} clips")
    print(
        f"final train loss: baseline-ae {baseline:.1f} dB², improved-ae {improved:.1f} dB², "
        f"ratio {baseline / improved:.1f}×"
    )
    return 0


def _plot(curves: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    for model, reports in curves.items():
        axes.plot(
            [r["epoch"] for r in reports],
            [r["train_loss"] for r in reports],
            marker="o",
            label=model,
        )
    axes.axhline(2200, color="C0", ls=":", lw=1, label="text: baseline ~2200")
    axes.axhline(200, color="C1", ls=":", lw=1, label="text: improved ~200")
    axes.set(
        yscale="log",
        xlabel="epoch",
        ylabel="training loss (dB², log scale)",
        title=f"seed preset, raw dB: {title}",
    )
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
