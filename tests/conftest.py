"""Shared fixtures: short synthetic clips, tiny fit settings, and a CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import venv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

from aetk import synth

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

#: Settings that make a fit take a second or two: short frame-context vectors, a tiny network.
TINY_SETTINGS = (
    "featurizer.n_mels=16",
    "featurizer.n_fft=256",
    "featurizer.hop_length=128",
    "featurizer.frames=3",
    "model.hidden=[16]",
    "model.bottleneck=4",
    "training.epochs=3",
    "training.batch_size=64",
)
#: aetk.fit(..., **TINY): the autoencoder preset at a tiny size.
TINY = {"preset": "autoencoder", "set": list(TINY_SETTINGS)}
#: The same on the command line.
TINY_ARGS = ["--preset", "autoencoder", *(arg for s in TINY_SETTINGS for arg in ("--set", s))]


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, samples, rate, subtype=subtype)
    return path


@pytest.fixture(scope="session", autouse=True)
def feature_cache(tmp_path_factory) -> Path:
    """The suite's feature cache lives in a temporary folder, never in the user's own."""
    folder = tmp_path_factory.mktemp("cache")
    os.environ["AETK_CACHE_DIR"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def machine_sounds(tmp_path_factory) -> dict[str, list[Path]]:
    """A small synthetic set: 12 normal training clips; 6 normal and 8 faulty test clips."""
    folder = tmp_path_factory.mktemp("sounds")
    return synth.write_dataset(
        folder, train=12, test_normal=6, test_per_anomaly=2, seconds=0.5, seed=3
    )


@pytest.fixture(scope="session")
def fitted(machine_sounds, tmp_path_factory):
    """A detector fitted on ``machine_sounds`` with ``TINY`` settings, saved to disk."""
    import aetk

    detector = aetk.fit(machine_sounds["train"][0].parent, **TINY)
    path = detector.save(tmp_path_factory.mktemp("detector") / "detector.aetk")
    return detector, path


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


#: The synthetic fleet's machines (``fleet_folders``).
FLEET_MACHINES = ("fan-01", "pump-01", "pump-02")


def wait_for(check, seconds: float = 60.0, every: float = 0.2):
    """``check()``'s first true value, asked every ``every`` seconds; fails the test after
    ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {seconds:g} s")


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict]]]:
    """A webhook on 127.0.0.1 that takes every POST (204) and keeps its JSON, for the block:
    its URL and the events it took."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    taken: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            taken.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", taken
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def runtime_python(tmp_path_factory) -> Path:
    """A fresh virtual environment with only ./runtime installed (numpy, soundfile,
    onnxruntime); ``AETK_RUNTIME_PYTHON`` names one made earlier."""
    given = os.environ.get("AETK_RUNTIME_PYTHON")
    if given:
        return Path(given)
    folder = tmp_path_factory.mktemp("runtime-venv")
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(REPO / "core"), str(REPO / "runtime")],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return python


def runtime_score(runtime_python: Path, paths: list, detector: Path, *options: str):
    """``aetk-runtime score PATHS -d DETECTOR --json OPTIONS`` in the runtime's environment
    (``DETECTOR``: an exported file, or the folder of a fleet's)."""
    script = str(Path(runtime_python).parent / "aetk-runtime")
    return subprocess.run(
        [script, "score", *map(str, paths), "-d", str(detector), "--json", *options],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def fleet_folders(tmp_path_factory) -> Path:
    """Three machines, each its own synthetic sound (another pitch and harmonics, another seed),
    as ``train/MACHINE/...`` and ``test/MACHINE/...``."""
    from aetk import synth

    root = tmp_path_factory.mktemp("fleet")
    for index, machine in enumerate(FLEET_MACHINES):
        synth.write_dataset(
            root,
            train=8,
            test_normal=3,
            test_per_anomaly=1,
            seconds=0.5,
            machine=synth.Machine(fundamental=90.0 + 60 * index, harmonics=6 + 3 * index),
            seed=20 + index,
            fleet_machine=machine,
        )
    return root


def write_uneven_fleet(root: Path, test_normal: int = 0) -> None:
    """A fleet of machine ``big`` (6 training clips) and machine ``small`` (2: too few to be
    judged alone), under ``root/train/`` (and ``test_normal`` clips each under ``root/test/``)."""
    from aetk import synth

    for index, (machine, count) in enumerate((("big", 6), ("small", 2))):
        synth.write_dataset(
            root,
            train=count,
            test_normal=test_normal,
            test_per_anomaly=0,
            seconds=0.4,
            seed=index,
            fleet_machine=machine,
        )


#: The rate of the recording-chain fixture's recordings.
RATE = 16000


@pytest.fixture(scope="session")
def chain(tmp_path_factory):
    """A detector fitted on 12 clean 16-kHz mono clips of machine ``id_00`` (by name), and
    one test recording per way of not matching it: ``<name>.wav`` for each recording check
    (``codec.ogg`` for the codec's),
    ``low-passed.wav`` for a spectrum that ends at 5 kHz (``band-limit`` at the training rate),
    ``normal_id_02_0000.wav`` for the machine check."""
    from scipy.signal import resample_poly

    import aetk

    folder = tmp_path_factory.mktemp("chain")
    rng = np.random.default_rng(0)
    (folder / "train").mkdir()
    for index in range(12):
        clip = synth.normal_clip(rng, 2.0)
        soundfile.write(folder / "train" / f"normal_id_00_{index:04d}.wav", clip, RATE)
    detector = aetk.fit(folder / "train")
    clean = synth.normal_clip(rng, 2.0)
    tests = folder / "test"
    tests.mkdir()
    recordings = {
        "clean": (clean, RATE),
        "band-limit": (resample_poly(clean, 1, 2), RATE // 2),
        "gain": (clean * 0.01, RATE),
        "clipping": (np.clip(clean * 30, -1, 1), RATE),
        "channels": (np.stack([clean, clean], axis=1), RATE),
        "dc-offset": (clean * 0.5 + 0.1, RATE),
        "duration": (clean[: RATE // 2], RATE),
        "duration-long": (synth.normal_clip(rng, 5.0), RATE),  # scored whole, more than twice
        "dropout": (np.concatenate([clean[:RATE], np.zeros(RATE // 10), clean[RATE:]]), RATE),
    }
    spectrum = np.fft.rfft(clean)
    spectrum[np.fft.rfftfreq(len(clean), 1 / RATE) > 5000] = 0
    recordings["low-passed"] = (np.fft.irfft(spectrum, len(clean)), RATE)
    recordings["quantization"] = (clean, RATE)
    for name, (samples, rate) in recordings.items():
        eight_bit = name == "quantization"  # the others 16-bit, as the training recordings
        soundfile.write(tests / f"{name}.wav", samples, rate, "PCM_U8" if eight_bit else None)
    soundfile.write(tests / "codec.ogg", clean, RATE, "VORBIS")
    soundfile.write(tests / "normal_id_02_0000.wav", clean, RATE)
    return detector, detector.save(folder / "d.aetk"), tests


@pytest.fixture
def cli(capsys):
    """Run ``aetk`` in this process: ``cli("score", "x.wav")`` → :class:`CliResult`."""
    from aetk.cli import run
    from aetk.cli.console import show_warnings_as_lines

    def invoke(*args: str) -> CliResult:
        show_warnings_as_lines()
        capsys.readouterr()
        code = run([str(arg) for arg in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


def ctrl_c_as_in_a_terminal() -> None:
    """``preexec_fn`` of a process a test stops with SIGINT: Ctrl-C's default disposition, as a
    terminal gives it. A test run started as a background job inherits SIGINT ignored, and
    Python then never raises KeyboardInterrupt, whatever aetk does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_aetk(
    *args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 600
) -> CliResult:
    """Run the installed ``aetk`` in a fresh interpreter (entry points, imports, exit status)."""
    completed = subprocess.run(
        [sys.executable, "-m", "aetk", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def make_distribution(
    site: Path,
    name: str,
    module_source: str,
    entry_points: dict[str, str],
    version: str = "1.0",
    twins: dict[str, str] | None = None,
) -> Path:
    """A throw-away installed distribution: ``module.py`` plus ``.dist-info`` with entry points
    (``entry_points`` in the group ``aetk``; ``twins``, torch-free featurizers, in the group
    ``aetk_core.featurizers``).

    Put ``site`` on ``sys.path`` (or ``PYTHONPATH``) and importlib.metadata finds it as it
    finds anything pip installed.
    """
    site.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    (site / f"{module}.py").write_text(textwrap.dedent(module_source))
    info = site / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    groups = {"aetk": entry_points, "aetk_core.featurizers": twins or {}}
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in points.items())
            for group, points in groups.items()
            if points
        )
    )
    return site


@pytest.fixture
def failing_detector_writes(monkeypatch):
    """``fail(exception)``: from then on, writing a detector file raises ``exception`` after its
    first 100 bytes are written (a full disk, a Ctrl-C in the middle of the write)."""
    import contextlib

    from aetk.detect import detector_file

    real = detector_file.atomic_file

    def fail(exception: BaseException) -> None:
        @contextlib.contextmanager
        def failing(path, durable=True):
            with real(path, durable) as handle:

                class Failing:
                    def write(self, data):
                        handle.write(data[:100])
                        raise exception

                yield Failing()

        monkeypatch.setattr(detector_file, "atomic_file", failing)

    return fail


@pytest.fixture
def fresh_plugins():
    """Each test that changes which plugins are visible gets its own plugin host."""
    from aetk.plugin import host as plugins

    previous = plugins.set_host(None)
    yield plugins
    plugins.set_host(previous)


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """The default detector fitted on 16 synthetic 2-s normal clips, and its saved file."""
    import aetk

    folder = tmp_path_factory.mktemp("watch")
    train = synth.write_dataset(
        folder / "sounds", train=16, test_normal=0, test_per_anomaly=0, seconds=2.0, seed=3
    )["train"]
    detector = aetk.fit(train)
    return detector, detector.save(folder / "d.aetk")


def browser(folder: Path):
    """A headless Chromium driven by Selenium, its profile in ``folder`` (a test's ``tmp_path``,
    which pytest clears away; a profile is 2 MB), or the reason there is none."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
    except ImportError:
        return None, "selenium is not installed (pip install selenium)"
    if not chromium or not driver:
        return (
            None,
            "chromium and chromedriver are not installed (apt-get install chromium "
            "chromium-driver)",
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        f"--user-data-dir={folder / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=driver)
    return webdriver.Chrome(options=options, service=service), None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (metrics, the dashboard)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
