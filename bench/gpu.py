"""Training speed of the `seed` preset (the text's 451 M-parameter improved autoencoder on
2-channel whole-clip Mel/dB images) on the machine's accelerator: clips per second and the
fraction of the accelerator's peak that the training reaches.

    ./dev python bench/gpu.py                        # 500 synthetic clips, 3 epochs, device auto
    ./dev python bench/gpu.py --peak-tflops 989      # state the peak if the device is not known

Training FLOPs per clip are 6 × the parameter count (a multiply-add per weight forward, two
backward): the network is Linear layers, whose BatchNorm and activations add little. The first
epoch (start-up, memory allocation) is left out of the rate. Precision is bf16 autocast on a GPU
that supports it (the `auto` setting), fp32 otherwise. On a machine without a GPU it runs a
reduced model on the CPU, which only checks that the benchmark works. Writes
bench/results/gpu.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

import aetk
from aetk import synth

HERE = Path(__file__).resolve().parent

#: Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, by device-name token.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L4": 121.0}


def peak_tflops(device_name: str) -> float | None:
    return next((peak for token, peak in PEAK_BF16_TFLOPS.items() if token in device_name), None)


def main(argv: list[str] | None = None) -> int:
    import soundfile
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", aetk.AetkWarning)
    cuda = torch.cuda.is_available()
    device_name = torch.cuda.get_device_name(0) if cuda else "CPU (no GPU: a smoke run)"
    settings = [f"training.epochs={args.epochs}", "training.val_fraction=0.1"]
    clips = args.clips
    if not cuda:
        settings += ["model.hidden=[256, 64]", "model.bottleneck=16"]
        clips = min(clips, 50)
    epochs: list[float] = []

    class Timer(aetk.FitObserver):
        def on_epoch(self, report):
            epochs.append(report.seconds)
            print(f"  epoch {report.epoch}: {report.seconds:.2f} s", flush=True)

    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        for index in range(clips):
            clip = synth.normal_clip(rng, seconds=100_000 / 16_000)
            soundfile.write(
                Path(folder) / f"normal_{index:05d}.wav", np.stack([clip, clip]).T, 16_000
            )
        detector = aetk.fit(folder, preset="seed", set=settings, observer=Timer())
    parameters = sum(p.numel() for p in detector.model.module_.parameters())
    trained = detector.training["train_files"]
    steady = epochs[1:] or epochs
    clips_per_second = trained * len(steady) / sum(steady)
    achieved = 6 * parameters * clips_per_second / 1e12
    peak = args.peak_tflops or (peak_tflops(device_name) if cuda else None)
    result = {
        "device": device_name,
        "precision": "bf16 autocast" if cuda and torch.cuda.is_bf16_supported() else "fp32",
        "parameters": parameters,
        "training_clips": trained,
        "epoch_seconds": epochs,
        "clips_per_second": clips_per_second,
        "achieved_tflops": achieved,
        "peak_tflops": peak,
        "fraction_of_peak": achieved / peak if peak else None,
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 1e9 if cuda else None,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(result, indent=2) + "\n")
    share = f", {100 * result['fraction_of_peak']:.0f} % of {peak:.0f}" if peak else ""
    print(
        f"{device_name}: {parameters:,} parameters, {clips_per_second:.1f} clips/s, "
        f"{achieved:.1f} TFLOP/s{share}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
