"""run/stack.json: atomic writes, stale files, pid reuse, guarded removal."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from lockgate.stack import state as state_file
from lockgate.stack.process import is_running, start_time


def sample(tmp_path, **kwargs) -> state_file.StackState:
    st = state_file.StackState.new(
        tmp_path, http_url="http://127.0.0.1:8080", ports={"http": 8080}, **kwargs
    )
    st.components = [
        state_file.ComponentInfo(
            "ledger", 123, {"kind": "grpc", "target": "127.0.0.1:1", "service": ""},
            "grpc://127.0.0.1:1", "/x/ledger.log", 2,
        )
    ]
    return st


def test_round_trip_and_no_temporary_files_left(tmp_path):
    path = tmp_path / "run" / "stack.json"
    written = sample(tmp_path)
    state_file.write(path, written)
    loaded = state_file.read(path)
    assert loaded == written
    assert loaded.pid == os.getpid()
    assert loaded.state == state_file.STARTING
    assert loaded.components[0].restarts == 2
    assert loaded.components[0].health["kind"] == "grpc"
    assert loaded.ports == {"http": 8080}
    assert sorted(p.name for p in path.parent.iterdir()) == ["stack.json"]


def test_missing_file_is_none_and_corrupt_file_is_an_error(tmp_path):
    path = tmp_path / "stack.json"
    assert state_file.read(path) is None
    path.write_text("{not json")
    with pytest.raises(state_file.StateError):
        state_file.read(path)
    assert state_file.read_running(path) is None


def test_state_of_a_dead_supervisor_is_stale(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    path = tmp_path / "stack.json"
    st = sample(tmp_path)
    st.pid, st.pid_start = int(done.stdout), None
    state_file.write(path, st)
    assert state_file.read(path) is not None
    assert state_file.read_running(path) is None


def test_reused_pid_is_not_our_supervisor(tmp_path):
    path = tmp_path / "stack.json"
    st = sample(tmp_path)
    assert st.alive()
    st.pid_start = (st.pid_start or 0) + 1  # same pid, different process start
    state_file.write(path, st)
    assert state_file.read_running(path) is None


def test_remove_only_removes_its_own_file(tmp_path):
    path = tmp_path / "stack.json"
    state_file.write(path, sample(tmp_path))
    state_file.remove(path, pid=os.getpid() + 1)
    assert path.exists()
    state_file.remove(path, pid=os.getpid())
    assert not path.exists()
    state_file.remove(path)  # already gone: fine


def test_is_running_sees_zombies_as_dead():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = start_time(proc.pid)
    while True:  # exited but not reaped: a zombie
        with open(f"/proc/{proc.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.01)
    assert not is_running(proc.pid, started)
    proc.wait()
    assert not is_running(proc.pid)
    assert is_running(os.getpid(), start_time(os.getpid()))
