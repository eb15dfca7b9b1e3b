"""`supervisor.nice`: the supervisor sets each process's scheduling priority when it starts it."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import pytest

from titan.config import DEFAULT_NICE, ConfigError, load_config, nice_for
from titan.harness import eventually, start_engine

NICE = '[supervisor]\nnice = { core = -4, "gateway.*" = 2, nats = 3, bridge = 1 }\n'


def niceness(pid: int, tid: int | None = None) -> int:
    """Field 19 of /proc/<pid>/stat (of one thread with ``tid``)."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid is not None else f"/proc/{pid}/stat"
    return int(Path(path).read_text().rsplit(")", 1)[1].split()[16])


def thread_niceness(pid: int) -> set[int]:
    return {niceness(pid, int(t)) for t in os.listdir(f"/proc/{pid}/task")}


def nats_pid(supervisor_pid: int) -> int:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if "(nats-server)" in stat and int(stat.rsplit(")", 1)[1].split()[1]) == supervisor_pid:
                return int(entry)
    raise AssertionError("no nats-server child of the supervisor")


def test_exact_names_win_over_patterns_and_unnamed_processes_keep_theirs() -> None:
    table = {"gateway.*": 2, "gateway.paper": -1, "core": -5}
    assert nice_for(table, "gateway.paper") == -1
    assert nice_for(table, "gateway.bybit") == 2
    assert nice_for(table, "core") == -5
    assert nice_for(table, "bridge") is None
    assert load_config(None).supervisor.nice == DEFAULT_NICE


def test_out_of_range_values_and_unknown_names_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[supervisor]\nnice = { core = -21, "gatway.*" = 1, nats = 20 }\n')
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    text = str(err.value)
    assert "supervisor.nice.core must be -20..19 (got -21)" in text
    assert "supervisor.nice.nats must be -20..19 (got 20)" in text
    assert "'gatway.*' names no process" in text


def test_started_processes_get_their_niceness_and_a_restarted_core_too(tmp_path: Path) -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    engine = start_engine(tmp_path, extra=NICE)
    try:
        pids = engine.pids()
        privileged = os.geteuid() == 0

        def expected(value: int) -> int:  # lowering niceness needs CAP_SYS_NICE; raising it does not
            return value if privileged or value >= base else base

        assert niceness(pids["gateway.paper"]) == expected(2)
        assert niceness(pids["bridge"]) == expected(1)
        assert niceness(nats_pid(engine.proc.pid)) == expected(3)
        assert niceness(pids["ingress"]) == base  # not named in this table
        assert thread_niceness(pids["core"]) == {expected(-4)}  # the journal's fsync thread too
        if not privileged:
            log = engine.log_path.read_text()
            assert log.count("supervisor.nice: cannot set") == 1, log
        os.kill(pids["core"], signal.SIGKILL)
        restarted = eventually(
            lambda: engine.pids().get("core") not in (None, pids["core"]) and engine.pids(), 60
        )
        assert thread_niceness(restarted["core"]) == {expected(-4)}
    finally:
        assert engine.stop() == 0


def test_without_the_privilege_one_warning_and_the_processes_run_on(monkeypatch: pytest.MonkeyPatch) -> None:
    import titan.procs.supervisor as supervisor

    def denied(which: int, who: int, value: int) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    warnings: list[str] = []

    class Log:
        def warning(self, msg: str, *args: object) -> None:
            warnings.append(msg % args)

    sup = supervisor.Supervisor(load_config(None))
    sup.log = Log()  # type: ignore[assignment]  # records warnings instead of logging them
    monkeypatch.setattr(os, "setpriority", denied)
    sup.apply_nice("core", os.getpid())
    sup.apply_nice("gateway.paper", os.getpid())
    sup.apply_nice("bridge", os.getpid())  # not in the default table: not even tried
    assert warnings == [
        "supervisor.nice: cannot set core's niceness to -5 (Permission denied); processes keep the default"
    ]
