"""Folders scored in forked worker processes (aetk_core.processes): the same results as in
one process, errors that reach the caller, and no process left behind however the run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from aetk_core.processes import scored_in_processes
from conftest import ctrl_c_as_in_a_terminal

import aetk

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="aetk forks workers on Linux only")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")  # a zombie has stopped; only its exit status waits to be read


#: Run in a fresh interpreter: the test process may hold other tests' threads, where aetk
#: rightly declines to fork.
_IN_PROCESSES_AND_HERE = textwrap.dedent(
    """
    import json, os, sys
    import aetk
    from aetk_core import processes

    os.environ["AETK_WORKERS"] = "2"
    files = sys.argv[2:]
    assert processes.forking_pays(len(files), 2)
    forked = []
    fork = processes.scored_in_processes

    def counted(score_part, part, *args):
        forked.append(len(part))
        return fork(score_part, part, *args)

    processes.scored_in_processes = counted
    detector = aetk.Detector.load(sys.argv[1])
    in_processes = [r.as_dict() for r in detector.score(files, segment=0.25)]
    processes.forking_pays = lambda files, workers: False
    here = [r.as_dict() for r in detector.score(files, segment=0.25)]
    print(json.dumps({"forked": forked, "in_processes": in_processes, "here": here}))
    """
)


def test_a_folder_scored_in_processes_equals_one_scored_in_this_process(
    fitted, machine_sounds, tmp_path
):
    _, detector_path = fitted
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    files = [*machine_sounds["test"][:7], broken, *machine_sounds["test"][7:]]
    ran = subprocess.run(
        [sys.executable, "-c", _IN_PROCESSES_AND_HERE, str(detector_path), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout)
    assert found["forked"] == [len(files)]  # forked once, and not when told it does not pay
    assert found["in_processes"] == found["here"]
    assert [row["path"] for row in found["here"]] == [str(f) for f in files]
    assert found["here"][7]["error"] is not None and found["here"][6]["error"] is None


_WHERE_FORKING_PAYS = textwrap.dedent(
    """
    import threading
    from pathlib import Path
    from aetk_core import processes
    from aetk_core.processes import forking_pays, scored_in_processes

    assert forking_pays(100, 2)
    assert not forking_pays(100, 1)  # AETK_WORKERS=1
    assert not forking_pays(processes.MIN_FILES - 1, 2)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    assert not forking_pays(100, 2)  # its locks would stay held in the children
    stop.set()
    other.join()
    inside = list(scored_in_processes(lambda part: [forking_pays(100, 2)], [Path("a")], 2))
    assert inside == [False]  # a worker never forks workers of its own
    """
)


def test_forking_is_left_where_it_is_unsafe_or_does_not_pay():
    ran = subprocess.run(
        [sys.executable, "-c", _WHERE_FORKING_PAYS], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr


def test_parts_come_back_in_order_and_an_error_in_a_worker_reaches_the_caller():
    files = [Path(f"{index:03d}.wav") for index in range(50)]

    def names(part: list[Path]) -> list[str]:
        time.sleep(0.01 if part[0].name == "000.wav" else 0)  # the first part finishes last
        return [path.name for path in part]

    assert list(scored_in_processes(names, files, 3)) == [path.name for path in files]

    def refuses(part: list[Path]) -> list[str]:
        if Path("030.wav") in part:
            raise aetk.ConfigError("a scorer refused 030.wav")
        return names(part)

    with pytest.raises(aetk.ConfigError, match=r"a scorer refused 030\.wav"):
        list(scored_in_processes(refuses, files, 2))


_REUSED_BUFFERS = textwrap.dedent(
    """
    import resource
    from pathlib import Path
    import numpy as np
    from aetk_core.processes import scored_in_processes

    def faults(part):
        # A part's buffers: 40 MB taken and freed together, 5 times, counted after the first.
        np.ones(10 << 20, dtype=np.float32)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            held = [np.ones(1 << 20, dtype=np.float32) for _ in range(10)]
            del held
        return [resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before]

    print(*scored_in_processes(faults, [Path("a")], 2))
    """
)


def test_workers_keep_freed_buffers_for_the_next_part():
    # By glibc's default such memory goes back to the system when freed, and its 10,240 pages
    # are faulted in again every time (a fresh interpreter: nothing has tuned glibc yet).
    ran = subprocess.run(
        [sys.executable, "-c", _REUSED_BUFFERS], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    assert int(ran.stdout) < 10_240


@pytest.mark.parametrize("count", [1, 9, 40, 1000])
def test_parts_shrink_towards_the_end_so_the_workers_finish_together(count):
    from aetk_core.processes import MAX_PART_FILES, _parts

    files = [Path(str(index)) for index in range(count)]
    sizes = [len(part) for part in _parts(files, 2)]
    assert [path for part in _parts(files, 2) for path in part] == files
    assert max(sizes) <= MAX_PART_FILES
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[-1] == 1  # the last part is one file, whatever the first ones were
    if count == 1000:
        assert sizes[0] == MAX_PART_FILES and len(sizes) < 100


@pytest.mark.skipif(
    not os.path.isdir("/proc/self/task"),
    reason="Linux lists a process's threads in /proc/self/task",
)
def test_threads_that_featurized_files_have_ended_when_their_map_returns():
    """A joined thread can still be running its native thread-local destructors, MKL's among
    them, under MKL's allocator lock: a worker forked then spun forever in its first FFT. So
    map_in_order returns only once the operating system no longer lists its threads (right
    after a join they were still listed about one time in five)."""
    import threading

    from aetk_core.audio import map_in_order

    def square(value: int) -> tuple[int, int]:
        return value * value, threading.get_native_id()

    for _ in range(100):
        results = list(map_in_order(square, range(8), 2))
        assert [squared for squared, _ in results] == [value * value for value in range(8)]
        threads = {thread for _, thread in results}
        assert not any(os.path.exists(f"/proc/self/task/{tid}") for tid in threads)


def test_workers_see_the_parents_objects_frozen_and_the_parent_gets_its_collector_back():
    """A worker's garbage collections must not walk (and so copy) the objects it inherited;
    after the run the parent's objects are collectable again, and a caller's own freeze is
    left as it was."""
    import gc

    files = [Path(f"{index:03d}.wav") for index in range(4)]

    def frozen_in_worker(part: list[Path]) -> list[int]:
        return [gc.get_freeze_count()] * len(part)

    assert gc.get_freeze_count() == 0
    counts = list(scored_in_processes(frozen_in_worker, files, 2))
    assert len(counts) == 4 and min(counts) > 1000
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        theirs = gc.get_freeze_count()
        since = [{} for _ in range(10_000)]  # the caller's objects made after its freeze
        list(scored_in_processes(frozen_in_worker, files, 2))
        # Neither thawed nor frozen further (frozen objects that die leave the count, too).
        assert theirs - 1000 < gc.get_freeze_count() <= theirs
        assert len(since) == 10_000
    finally:
        gc.unfreeze()


def test_a_worker_that_dies_ends_the_run_with_one_line():
    def dies(part: list[Path]) -> list[str]:
        if Path("7") in part:
            os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer does
        return [path.name for path in part]

    with pytest.raises(aetk.AetkError, match="a scoring process died before it finished"):
        list(scored_in_processes(dies, [Path(str(index)) for index in range(40)], 2))


_SLOW_RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from aetk_core.processes import scored_in_processes

    def slow(part):
        # One write of the whole line: two workers' print() calls could interleave their text
        # and their newlines ("partpart").
        sys.stdout.write("part\\n")
        sys.stdout.flush()
        time.sleep(float(sys.argv[1]))
        return part

    print(len(list(scored_in_processes(slow, [Path(str(i)) for i in range(64)], 2))))
    """
)


def _start_slow_run(seconds: float) -> tuple[subprocess.Popen, list[int]]:
    run = subprocess.Popen(
        [sys.executable, "-c", _SLOW_RUN, str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=ctrl_c_as_in_a_terminal,
    )
    assert run.stdout is not None and run.stdout.readline() == "part\n"  # a worker is at work
    workers = _children(run.pid)
    assert len(workers) == 2
    return run, workers


def test_ctrl_c_stops_the_run_and_its_workers_without_their_tracebacks():
    run, workers = _start_slow_run(0.3)
    os.killpg(run.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
    _, stderr = run.communicate(timeout=30)
    assert run.returncode != 0
    assert stderr.count("Traceback") == 1 and stderr.rstrip().endswith("KeyboardInterrupt")
    assert all(_gone(worker) for worker in workers)


def test_workers_of_a_killed_run_do_not_outlive_it():
    run, workers = _start_slow_run(60)
    run.kill()
    run.wait(timeout=30)
    deadline = time.monotonic() + 10
    while not all(_gone(worker) for worker in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(worker) for worker in workers)
