"""aetk report: a self-contained HTML page, checked as text and in a real headless browser."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from conftest import TINY_ARGS, browser

from aetk import synth


@pytest.fixture(scope="module")
def report(machine_sounds, tmp_path_factory):
    """A report on the synthetic test clips (labels in their names) plus one unreadable file.

    The detector is fitted for a 25 % false-alarm rate, so that its twelve normal clips set a
    threshold below their largest score and the report has several flagged clips to explain."""
    from aetk.cli import run

    folder = tmp_path_factory.mktemp("report")
    detector = folder / "detector.aetk"
    fit = ["fit", str(machine_sounds["train"][0].parent), "-o", str(detector), *TINY_ARGS]
    assert run([*fit, "--false-alarm-rate", "0.25"]) == 0
    broken = folder / "broken.wav"
    broken.write_bytes(b"not audio at all")
    output = folder / "report.html"
    code = run(
        [
            "report",
            str(machine_sounds["test"][0].parent),
            str(broken),
            "-d",
            str(detector),
            "-o",
            str(output),
            "--top",
            "2",
        ]
    )
    assert code == 0
    return output


def images(page: str) -> list[tuple[str, bytes]]:
    found = re.findall(r"<img alt='([^']*)' src='data:image/png;base64,([^']*)'>", page)
    return [(alt, base64.b64decode(data)) for alt, data in found]


def test_report_has_every_section(report, machine_sounds):
    page = report.read_text()
    for heading in ("Detector", "Verdicts", "Against the labels", "Where the anomalies are"):
        assert f"<h2>{heading}</h2>" in page
    assert page.count("<tr><td class=number>") == len(machine_sounds["test"])
    assert "broken.wav" in page and "not a readable audio file" in page
    alts = [alt for alt, _ in images(page)]
    # The summary and its plots lead, then the explained cases, the detector, and the table.
    assert alts[:2] == ["ROC curve", "score histogram"]
    assert alts.index("loss curves") > max(
        index for index, alt in enumerate(alts) if alt.startswith("explanation of ")
    )
    order = [page.index(f"<section id={name}>") for name in ("summary", "explained", "verdicts")]
    assert order == sorted(order)
    explained = page[page.index("<section id=explained>") : page.index("<h2>Detector</h2>")]
    top = explained.split("<h2>Normal recordings it flagged</h2>")[0]
    top = top.split("<h2>Anomalous recordings it missed</h2>")[0]
    assert top.count("alt='explanation of ") == 2
    assert "http://" not in page and "https://" not in page  # self-contained


def test_summary_counts_the_verdicts_against_the_labels(report):
    page = report.read_text()
    (found,) = re.findall(
        r"Against the labels: (\d+) normal (recordings?) flagged, (\d+) anomalous (recordings?) "
        r"missed",
        page,
    )
    for count, noun in (found[:2], found[2:]):
        assert noun == ("recording" if count == "1" else "recordings")
    rows = re.findall(
        r"<span class=(?:normal|anomalous)>(normal|anomaly)</span></td><td>(\w+)<", page
    )
    assert len(rows) > 2
    flagged = sum(verdict == "anomaly" and label == "normal" for verdict, label in rows)
    missed = sum(verdict == "normal" and label == "anomaly" for verdict, label in rows)
    assert (int(found[0]), int(found[2])) == (flagged, missed)


def test_every_embedded_image_is_a_decodable_png(report):
    import matplotlib.image

    for alt, data in images(report.read_text()):
        assert data[:8] == b"\x89PNG\r\n\x1a\n", alt
        pixels = matplotlib.image.imread(io.BytesIO(data), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100, alt


def test_scores_are_sorted_and_match_aetk_score(report, machine_sounds):
    page = report.read_text()
    scores = [float(value) for value in re.findall(r"<td class=number>([0-9.e+-]+)</td><td>", page)]
    assert scores == sorted(scores, reverse=True)
    assert len(scores) == len(machine_sounds["test"])


def test_report_counts_its_progress_through_scoring_then_explaining(fitted, machine_sounds):
    from aetk.eval.report import build_report

    detector, path = fitted
    files = machine_sounds["test"]
    calls: list[tuple[int, int]] = []
    page = build_report(
        detector, files, detector_path=path, top=2, progress=lambda *call: calls.append(call)
    )
    explained = page.count("<section class=file>")
    assert explained >= 1
    assert [done for done, _ in calls] == list(range(1, len(files) + explained + 1))
    assert {total for done, total in calls if done <= len(files)} == {len(files)}
    assert calls[-1] == (len(files) + explained, len(files) + explained)


def test_report_without_audio_is_a_usage_error(cli, fitted, tmp_path):
    _, detector = fitted
    result = cli("report", tmp_path, "-d", detector, "-o", tmp_path / "r.html")
    assert result.code == 2 and "no audio files found" in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_report_with_a_scorer_that_cannot_localize(cli, machine_sounds, tmp_path):
    detector = tmp_path / "latent.aetk"
    fit = cli(
        "fit", machine_sounds["train"][0].parent, "-o", detector, *TINY_ARGS, "--scorer", "knn"
    )
    assert fit.code == 0, fit.stderr
    assert (
        cli("report", *machine_sounds["test"][:3], "-d", detector, "-o", tmp_path / "r.html").code
        == 0
    )
    assert "cannot localize" in (tmp_path / "r.html").read_text()


def test_report_loads_in_a_real_browser(report, tmp_path):
    driver, reason = browser(tmp_path)
    if driver is None:
        pytest.skip(f"browser check skipped: {reason}")
    try:
        driver.get(report.as_uri())
        assert driver.execute_script("return document.readyState") == "complete"
        assert driver.title == "aetk report"
        decoded = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
        )
        assert len(decoded) >= 5
        for alt, complete, width in decoded:
            assert complete and width > 0, f"image {alt!r} did not decode"
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], errors
        # The layout, as a person sees it: the summary on the first screen, the long table
        # folded away at the end, and sortable when opened.
        driver.set_window_size(1280, 900)
        screenshot = report.parent / "report.png"
        assert driver.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000
        tops = driver.execute_script(
            "return ['summary', 'explained', 'verdicts'].map("
            "id => document.getElementById(id).getBoundingClientRect().top)"
        )
        assert tops[0] < 900 and tops == sorted(tops)
        assert driver.execute_script("return document.querySelector('details').open") is False
        driver.execute_script("document.querySelector('details').open = true")
        header = driver.find_element("xpath", "//table[@class='sortable']//th[text()='score']")
        header.click()
        first = driver.execute_script(
            "return parseFloat(document.querySelector('table.sortable tbody tr')"
            ".cells[2].textContent)"
        )
        scores = driver.execute_script(
            "return Array.from(document.querySelectorAll('table.sortable tbody tr'))"
            ".map(r => parseFloat(r.cells[2].textContent)).filter(v => !isNaN(v))"
        )
        assert first == min(scores)
    finally:
        driver.quit()


def test_report_on_silence_explains_the_whole_clip(cli, fitted, tmp_path):
    _, detector = fitted
    from conftest import write_wav

    write_wav(tmp_path / "silence.wav", np.zeros(8000, np.float32))
    write_wav(tmp_path / "normal.wav", synth.normal_clip(np.random.default_rng(1), seconds=0.5))
    assert cli("report", tmp_path, "-d", detector, "-o", tmp_path / "r.html").code == 0
    page = (tmp_path / "r.html").read_text()
    assert "<h3>silence.wav</h3>" in page


def test_the_score_histogram_names_unlabelled_scores_recordings_not_normal(
    cli, fitted, tmp_path, monkeypatch
):
    """A report of recordings without labels draws every score in one group: calling it
    "normal" would contradict the verdicts beside it."""
    from conftest import write_wav

    from aetk.eval import plots

    def legend(figure) -> list[str]:
        return [text.get_text() for text in figure.axes[0].get_legend().get_texts()]

    unlabelled = plots.score_histogram([0.7, 1.3, 2.2], [], 1.0, "scores", labelled=False)
    assert legend(unlabelled) == ["recordings (3)", "threshold 1"]
    labelled = plots.score_histogram([0.7, 0.8], [2.2], 1.0, "scores")
    assert legend(labelled) == ["normal (2)", "anomalous (1)", "threshold 1"]

    drawn = []
    real = plots.score_histogram

    def spied(*arguments, **keywords):
        figure = real(*arguments, **keywords)
        drawn.append(legend(figure))
        return figure

    monkeypatch.setattr(plots, "score_histogram", spied)
    for index in range(2):  # names that hold no label
        write_wav(tmp_path / f"pump_{index}.wav", synth.normal_clip(np.random.default_rng(index)))
    assert cli("report", tmp_path, "-d", fitted[1], "-o", tmp_path / "r.html").code == 0
    assert [names[0] for names in drawn] == ["recordings (2)"]


def test_the_score_histogram_counts_whole_clips():
    """A few clips make bars of one or two: the count axis is marked in whole clips."""
    from aetk.eval import plots

    figure = plots.score_histogram([0.7, 0.8, 0.8, 1.1], [1.3, 2.2], 1.0, "scores")
    ticks = figure.axes[0].get_yticks()
    assert len(ticks) >= 2 and np.all(ticks == np.round(ticks))
