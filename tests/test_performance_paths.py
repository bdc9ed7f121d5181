"""The fast paths: the feature cache, parallel featurization and vector sets on disk."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch
from aetk_core.audio import map_in_order
from conftest import write_wav

import aetk
from aetk import synth
from aetk.components.normalizer import Standardizer
from aetk.data.cache import FeatureCache, featurizer_key
from aetk.data.clips import StandardizedClips, VectorSet
from aetk.data.features import featurize_file, map_files
from aetk_builtins.mel_db import MelDb


@pytest.fixture
def clips_folder(tmp_path):
    rng = np.random.default_rng(0)
    for index in range(8):
        write_wav(tmp_path / "clips" / f"normal_{index}.wav", synth.normal_clip(rng, seconds=0.5))
    return tmp_path / "clips"


#: The autoencoder preset at a size that fits in a second (a trained model reads its clips'
#: features several times: for training, for the scorer, for the threshold).
SMALL_AE = [
    "featurizer.n_mels=16",
    "featurizer.n_fft=256",
    "featurizer.hop_length=128",
    "model.hidden=[8]",
    "model.bottleneck=2",
    "training.epochs=2",
]


def count_decodes(monkeypatch) -> list:
    from aetk.data import cache as cache_module

    decoded = []
    original = cache_module.read_audio

    def counting(*args, **kwargs):
        decoded.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(cache_module, "read_audio", counting)
    return decoded


def test_refitting_reads_features_from_the_cache(clips_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("AETK_CACHE_DIR", str(tmp_path / "cache"))
    decoded = count_decodes(monkeypatch)
    first = aetk.fit(clips_folder)
    assert len(decoded) == 8
    second = aetk.fit(clips_folder, scorer="knn", set=["scorer.k=2"])
    assert len(decoded) == 8  # nothing decoded again
    assert first.training["data_fingerprint"] == second.training["data_fingerprint"]
    entries = list((tmp_path / "cache" / "features").rglob("*.features"))
    assert len(entries) == 8


def test_a_changed_file_is_featurized_again(clips_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("AETK_CACHE_DIR", str(tmp_path / "cache"))
    decoded = count_decodes(monkeypatch)
    aetk.fit(clips_folder)
    changed = clips_folder / "normal_3.wav"
    write_wav(changed, synth.normal_clip(np.random.default_rng(99), seconds=0.5))
    aetk.fit(clips_folder)
    assert decoded[8:] == [changed]


def test_another_featurizer_does_not_read_stale_features(clips_folder, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    path = next(clips_folder.iterdir())
    small, _ = cache.features(MelDb(n_mels=16, target_length=0, frames=1), path)
    large, _ = cache.features(MelDb(n_mels=32, target_length=0, frames=1), path)
    assert small.shape[2] == 16 and large.shape[2] == 32
    assert featurizer_key(MelDb(n_mels=16)) != featurizer_key(MelDb(n_mels=32))
    assert featurizer_key(MelDb(n_mels=16)) == featurizer_key(MelDb(n_mels=16))


def test_cached_features_equal_fresh_ones_and_are_memory_mapped(clips_folder, tmp_path):
    featurizer = MelDb(target_length=0, frames=3, n_mels=16, n_fft=256, hop_length=128)
    cache = FeatureCache(tmp_path / "cache")
    path = next(clips_folder.iterdir())
    _, digest = cache.features(featurizer, path)
    cached, again = cache.features(featurizer, path)
    assert digest == again
    assert torch.equal(cached, featurize_file(featurizer, path))
    (entry,) = (tmp_path / "cache").rglob("*.features")
    assert mapped_from(cached, entry)


def mapped_from(tensor: torch.Tensor, file) -> bool:
    """Whether the tensor's memory is a mapping of ``file`` (Linux's /proc/self/maps)."""
    from pathlib import Path

    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("memory mappings are only inspected on Linux")
    address = tensor.data_ptr()
    for line in maps.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5] == str(file):
            start, end = (int(value, 16) for value in fields[0].split("-"))
            if start <= address < end:
                return True
    return False


def test_a_damaged_cache_entry_is_computed_again(clips_folder, tmp_path):
    featurizer = MelDb(target_length=0, frames=1)
    cache = FeatureCache(tmp_path / "cache")
    path = next(clips_folder.iterdir())
    expected = cache.features(featurizer, path)[0].clone()  # not a view of the file damaged next
    (entry,) = (tmp_path / "cache").rglob("*.features")
    entry.write_bytes(b"garbage")
    again, _ = cache.features(featurizer, path)
    assert torch.equal(again, expected)
    entry.write_bytes(entry.read_bytes()[:-8])  # cut short, as by a full disk
    again, _ = cache.features(featurizer, path)
    assert torch.equal(again, expected)


def test_a_cache_entry_is_one_file_holding_its_checksum_and_recording(clips_folder, tmp_path):
    from aetk.data.cache import checked_entry

    cache = FeatureCache(tmp_path / "cache")
    path = next(clips_folder.iterdir())
    entry, length, _, recording = cache.store(MelDb(target_length=0, frames=1), path)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == [entry]
    values, kept = checked_entry(entry)
    assert len(values) == length and kept.as_dict() == recording.as_dict()
    assert values.data_ptr() % 64 == 0  # aligned where it is mapped


def test_entries_of_an_earlier_cache_format_are_evicted_first(
    clips_folder, tmp_path, cli, monkeypatch
):
    from aetk.data.cache import entries, evict, usage

    root = tmp_path / "cache"
    cache = FeatureCache(root)
    for path in sorted(clips_folder.iterdir())[:2]:
        cache.store(MelDb(target_length=0, frames=1), path)
    old = root / "features" / "0123456789abcdef01234567" / "ab"
    old.mkdir(parents=True)
    for name in ("ab12.npy", "ab12.sha256", "ab12.recording.json"):
        (old / name).write_bytes(b"x" * 1000)
        os.utime(old / name, (1, 1))  # written long ago by an earlier aetk
    current = entries(root)
    count, size, earlier = usage(root)
    assert count == 2 and size == sum(p.stat().st_size for p in current) + 3000
    assert earlier == 3000
    monkeypatch.setenv("AETK_CACHE_DIR", str(root))
    said = cli("cache", "info").stdout
    assert "2 entries" in said and "3.0 kB of it are an earlier aetk's entries" in said
    assert evict(root, size - 3000) == 0  # only the earlier format's files went
    assert not any(old.iterdir()) and entries(root) == current


def test_a_fit_survives_another_process_emptying_the_cache_under_it(
    clips_folder, tmp_path, monkeypatch
):
    """A fit reads its clips' cached features again and again, minutes apart: another fit's
    eviction or an ``aetk cache clear`` in between had ended it in a FileNotFoundError. Its
    entries are pinned in a folder of its own, which neither touches."""
    from aetk.data.cache import clear, evict
    from aetk.fitting import stages

    root = tmp_path / "cache"
    monkeypatch.setenv("AETK_CACHE_DIR", str(root))
    undisturbed = aetk.fit(clips_folder, preset="autoencoder", set=SMALL_AE)
    real = stages.fit_scorer

    def emptied_first(*args, **kwargs):
        evict(root, 0)
        assert clear(root) == 0  # evicted already; the fit's own pins stay
        return real(*args, **kwargs)

    monkeypatch.setattr(stages, "fit_scorer", emptied_first)
    disturbed = aetk.fit(clips_folder, preset="autoencoder", set=SMALL_AE)
    np.testing.assert_array_equal(
        disturbed.calibration.normal_scores, undisturbed.calibration.normal_scores
    )
    assert not any((root / "work").iterdir())  # the fit's own folder went with it


def test_a_full_disk_under_the_cache_and_the_training_vectors_costs_nothing_but_memory(
    clips_folder, tmp_path, monkeypatch
):
    """The feature cache and the training vectors' file are conveniences: on a full disk a fit
    had ended in an OSError traceback (and a write into a mapped file on a full disk kills the
    process). It now says so once for each and fits the same detector in memory."""
    import errno
    import warnings

    from aetk.data import cache as cache_module
    from aetk.data import clips as clips_module

    monkeypatch.setenv("AETK_CACHE_DIR", str(tmp_path / "cache"))
    expected = aetk.fit(clips_folder, preset="autoencoder", set=SMALL_AE)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setenv("AETK_CACHE_DIR", str(tmp_path / "another"))
    monkeypatch.setattr(cache_module, "_write_entry", full)
    monkeypatch.setattr(clips_module.os, "posix_fallocate", full, raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # as the command line shows them: each said once
        found = aetk.fit(clips_folder, preset="autoencoder", set=SMALL_AE)
    said = [str(w.message) for w in caught if "No space left on device" in str(w.message)]
    assert len(said) == 2, said
    assert "this run keeps its features in memory" in said[0]
    assert "they are held in memory" in said[1]
    np.testing.assert_array_equal(
        found.calibration.normal_scores, expected.calibration.normal_scores
    )
    assert not list((tmp_path / "another").rglob("*.features"))


def test_work_folders_of_killed_processes_are_removed_and_no_others(tmp_path):
    import socket

    from aetk.data.cache import clear

    root = tmp_path / "cache"
    cache = FeatureCache(root)
    mine = cache.scratch
    dead = subprocess_pid_that_ended()
    host = socket.gethostname()
    killed = root / "work" / f"{dead}+{host}+abc"
    elsewhere = root / "work" / f"{dead}+another-host+abc"
    for folder in (killed, elsewhere):
        folder.mkdir()
    clear(root)
    assert not killed.exists()
    assert elsewhere.exists() and mine.exists()
    cache.close()
    assert not mine.exists()


def subprocess_pid_that_ended() -> int:
    import subprocess
    import sys

    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(process.stdout)


def test_cache_off_leaves_nothing_behind(clips_folder, monkeypatch, tmp_path):
    monkeypatch.setenv("AETK_CACHE", "0")
    with FeatureCache.from_environment() as cache:
        root = cache.root
        cache.features(MelDb(target_length=0, frames=1), next(clips_folder.iterdir()))
        assert any(root.rglob("*.features"))
    assert not root.exists()
    aetk.fit(clips_folder)  # works without a cache


def test_map_files_keeps_order_and_returns_errors(tmp_path):
    paths = [tmp_path / f"{i}.wav" for i in range(20)]

    def work(path):
        if path.stem == "7":
            raise aetk.AudioError("bad", path)
        return int(path.stem) * 2

    for workers in (1, 3):
        results = list(map_files(work, paths, workers=workers))
        assert [path for path, _ in results] == paths
        assert isinstance(results[7][1], aetk.AudioError)
        assert [value for _, value in results if not isinstance(value, Exception)] == [
            i * 2 for i in range(20) if i != 7
        ]
    assert torch.get_num_threads() >= 1


def test_each_worker_thread_runs_torch_on_one_thread(tmp_path, monkeypatch):
    # torch.set_num_threads holds for the calling thread only (MKL's setting is per thread):
    # every worker must make it before its first file, or its products run on every core.
    limited = set()
    set_num_threads = torch.set_num_threads

    def record(count):
        if count == 1:
            limited.add(threading.get_ident())
        set_num_threads(count)

    monkeypatch.setattr(torch, "set_num_threads", record)
    paths = [tmp_path / f"{i}.wav" for i in range(12)]
    results = list(map_files(lambda path: threading.get_ident() in limited, paths, workers=3))
    assert len(results) == 12 and all(worker_limited for _, worker_limited in results)
    prepared: set[int] = set()
    results = list(
        map_in_order(
            lambda item: threading.get_ident() in prepared,
            range(12),
            3,
            initializer=lambda: prepared.add(threading.get_ident()),
        )
    )
    assert results == [True] * 12


def test_parallel_and_serial_fits_are_identical(clips_folder, monkeypatch):
    monkeypatch.setenv("AETK_WORKERS", "1")
    serial = aetk.fit(clips_folder, preset="autoencoder", epochs=2, set=["featurizer.n_mels=32"])
    monkeypatch.setenv("AETK_WORKERS", "2")
    parallel = aetk.fit(clips_folder, preset="autoencoder", epochs=2, set=["featurizer.n_mels=32"])
    for name, tensor in serial.model.module_.state_dict().items():
        assert torch.equal(tensor, parallel.model.module_.state_dict()[name]), name
    monkeypatch.setenv("AETK_WORKERS", "none")
    with pytest.raises(aetk.ConfigError, match="AETK_WORKERS"):
        aetk.fit(clips_folder)


def test_vector_set_reads_standardised_rows_from_disk(tmp_path):
    clips = [torch.randn(5, 3) + i for i in range(4)]
    normalizer = Standardizer().fit(clips)
    vectors = VectorSet(clips, normalizer, tmp_path / "tmp")
    everything = normalizer.transform(torch.cat(clips))
    assert len(vectors) == 20 and vectors.shape == (20, 3)
    torch.testing.assert_close(vectors[2:9], everything[2:9])
    torch.testing.assert_close(vectors[torch.tensor([12, 3, 7])], everything[[3, 7, 12]])
    assert len(list((tmp_path / "tmp").iterdir())) == 1
    vectors.close()
    assert list((tmp_path / "tmp").iterdir()) == []
    standardised = StandardizedClips(clips, normalizer)
    torch.testing.assert_close(standardised[1], normalizer.transform(clips[1]))
    assert len(standardised) == 4 and len(list(standardised)) == 4


def test_standardizer_statistics_match_streaming_and_whole():
    clips = [torch.randn(50, 4) * (i + 1) for i in range(5)]
    whole = Standardizer().fit(torch.cat(clips))
    streamed = Standardizer().fit(clips)
    torch.testing.assert_close(whole.mean_, streamed.mean_)
    torch.testing.assert_close(whole.std_, streamed.std_)


def test_knn_vector_references_are_a_bounded_uniform_sample():
    from aetk_builtins.identity import IdentityModel
    from aetk_builtins.knn import KnnScorer

    model = IdentityModel().initialize((2,))
    clips = [torch.full((100, 2), float(i)) for i in range(10)]  # clip i's vectors are all i
    scorer = KnnScorer(pooling="vector", max_reference=200).fit(model, clips[:8], clips[8:])
    assert scorer.reference_.shape == (200, 2)
    counts = torch.bincount(scorer.reference_[:, 0].round().long(), minlength=10)
    assert counts.min() >= 8 and counts.max() <= 35  # about 20 from each clip


def test_long_passes_release_freed_memory(monkeypatch):
    from aetk.data import memory

    calls = []
    monkeypatch.setattr(memory, "release_freed_memory", lambda: calls.append(1))
    assert list(memory.trimmed(range(130), every=64)) == list(range(130))
    assert len(calls) == 2


@pytest.fixture
def walked(monkeypatch) -> list[str]:
    """Every folder walked in search of recordings from now on, in order."""
    import aetk_core.audio

    folders: list[str] = []
    walk = aetk_core.audio.walked_audio

    def counting_walk(top, *args, **kwargs):
        folders.append(str(top))
        return walk(top, *args, **kwargs)

    monkeypatch.setattr(aetk_core.audio, "walked_audio", counting_walk)
    return folders


def test_fit_walks_the_folder_once(clips_folder, cli, walked, tmp_path):
    fitted = cli("fit", clips_folder, "-o", tmp_path / "d.aetk", "--set", "scorer.pooling=clip")
    assert fitted.code == 0, fitted.stderr
    assert walked == [str(clips_folder)]
    for command in (["score"], ["evaluate"], ["report", "-o", str(tmp_path / "r.html")]):
        walked.clear()
        assert cli(*command, clips_folder, "-d", tmp_path / "d.aetk").code == 0
        assert walked == [str(clips_folder)], command


def test_a_fleet_fit_walks_its_folder_once(cli, tmp_path, walked):
    from aetk import synth

    for index, machine in enumerate(("a", "b")):
        synth.write_dataset(
            tmp_path,
            train=4,
            test_normal=0,
            test_per_anomaly=0,
            seconds=0.3,
            seed=index,
            fleet_machine=machine,
        )
    walked.clear()  # counted from here
    folder = tmp_path / "train"
    fitted = cli("fit", folder, "--machines", "folders", "-o", tmp_path / "f.aetk", "--json")
    assert fitted.code == 0, fitted.stderr
    assert walked == [str(folder)]
    # Scored, evaluated and reported on, each recording routed to its machine: walked once.
    for command in (["score"], ["evaluate"], ["report", "-o", str(tmp_path / "r.html")]):
        walked.clear()
        assert cli(*command, folder, "-d", tmp_path / "f.aetk").code == 0
        assert walked == [str(folder)], command
