"""LocalBackend: process groups, signals, scrubbed env, log tails, device detection, safe re-attach."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from trex_mcp.execution.backends.base import Backend, BackendError
from trex_mcp.execution.backends.local import (
    LocalBackend,
    detect_devices,
    launch_argv,
    redact,
    scrub_env,
    tail_lines,
)

CHILD = Path(__file__).parent / "children" / "fake_worker.py"


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # zombies still count for killpg; look for a live member
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
    return False


def write_spec(run_dir: Path, shared: Path, mode: str, run_id: str = "r1", heartbeat_s: float = 0.2) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = run_dir / "spec.json"
    spec.write_text(json.dumps({"run_id": run_id, "run_dir": str(run_dir), "models_dir": str(shared),
                                "task_name": f"child:{mode}", "heartbeat_s": heartbeat_s}))
    return spec


@pytest.fixture
def backend() -> LocalBackend:
    return LocalBackend(devices=[])


def test_local_backend_satisfies_the_backend_protocol(backend: LocalBackend) -> None:
    assert isinstance(backend, Backend)


def test_job_runs_in_its_own_process_group_with_output_in_train_log(tmp_path: Path, backend: LocalBackend) -> None:
    spec = write_spec(tmp_path / "run", tmp_path / "shared", "ok")
    info = backend.submit("r1", [sys.executable, str(CHILD), str(spec)], tmp_path / "run", {})
    assert info.pgid == info.pid and info.pgid != os.getpgid(0)
    wait_until(lambda: not backend.poll(info.handle).alive, what="child exit")
    assert backend.poll(info.handle).returncode == 0
    assert "fake worker" in "\n".join(backend.logs(tmp_path / "run", 10))
    assert (tmp_path / "run" / "result.json").is_file()


def test_cancel_terminates_then_kills_the_whole_group_including_grandchildren(tmp_path: Path,
                                                                                backend: LocalBackend) -> None:
    shared = tmp_path / "shared"
    spec = write_spec(tmp_path / "run", shared, "spawn")
    info = backend.submit("r1", [sys.executable, str(CHILD), str(spec)], tmp_path / "run", {})
    wait_until(lambda: (shared / "grandchild-r1").exists() and (shared / "ready-r1").exists(), what="grandchild")
    grandchild = int((shared / "grandchild-r1").read_text())
    assert pid_alive(grandchild)
    t0 = time.monotonic()
    backend.cancel(info.handle, grace_s=0.5)  # the child ignores SIGTERM: only SIGKILL stops it
    assert time.monotonic() - t0 < 0.5, "cancel must not wait for the grace period"
    wait_until(lambda: not backend.poll(info.handle).alive, timeout_s=5, what="SIGKILL after grace")
    assert time.monotonic() - t0 >= 0.4
    assert backend.poll(info.handle).returncode == -signal.SIGKILL
    wait_until(lambda: not group_alive(info.pgid), timeout_s=5, what="process group gone")
    assert not pid_alive(grandchild)


def test_leftover_group_members_are_killed_when_the_leader_exits(tmp_path: Path, backend: LocalBackend) -> None:
    script = tmp_path / "leader.py"
    script.write_text("import subprocess, sys\n"
                      "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                      "open(sys.argv[1], 'w').write(str(p.pid))\n")
    pid_file = tmp_path / "grandchild.pid"
    info = backend.submit("r1", [sys.executable, str(script), str(pid_file)], tmp_path / "run", {})
    wait_until(lambda: not backend.poll(info.handle).alive, what="leader exit")
    grandchild = int(pid_file.read_text())
    wait_until(lambda: not pid_alive(grandchild), timeout_s=5, what="orphan killed")


def test_a_missing_executable_raises_backend_error(tmp_path: Path, backend: LocalBackend) -> None:
    with pytest.raises(BackendError, match="could not start"):
        backend.submit("r1", [str(tmp_path / "no-such-program")], tmp_path / "run", {})
    with pytest.raises(BackendError, match="argv"):
        backend.submit("r1", [], tmp_path / "run", {})


def test_child_environment_has_no_secrets_but_keeps_hf_token(tmp_path: Path, backend: LocalBackend,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-openai-123456")
    monkeypatch.setenv("TREX_AUTH_TOKEN", "canary-bearer-123456")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "canary-aws-123456")
    monkeypatch.setenv("HF_TOKEN", "hf_canary_token_123456")
    shared = tmp_path / "shared"
    spec = write_spec(tmp_path / "run", shared, "secrets")
    info = backend.submit("r1", [sys.executable, str(CHILD), str(spec)], tmp_path / "run", {"EXTRA": "1"})
    wait_until(lambda: not backend.poll(info.handle).alive, what="child exit")
    names = set(json.loads((shared / "env-r1.json").read_text()))
    assert {"OPENAI_API_KEY", "TREX_AUTH_TOKEN", "AWS_SECRET_ACCESS_KEY"}.isdisjoint(names)
    assert {"HF_TOKEN", "EXTRA", "PATH", "TOKENIZERS_PARALLELISM", "PYTHONUNBUFFERED"} <= names
    tail = "\n".join(backend.logs(tmp_path / "run", 50))
    assert "hf_canary_token_123456" not in tail and "***" in tail


def test_scrub_env_keeps_harmless_names_that_contain_token_like_words() -> None:
    env = {"TOKENIZERS_PARALLELISM": "false", "PATH": "/bin", "GITHUB_TOKEN": "x", "MY_API_KEY": "x",
           "DB_PASSWORD": "x", "HF_TOKEN": "hf", "HUGGING_FACE_HUB_TOKEN": "x", "OPENAI_APIKEY": "x"}
    assert scrub_env(env) == {"TOKENIZERS_PARALLELISM": "false", "PATH": "/bin", "HF_TOKEN": "hf"}


def test_redact_masks_secret_values_only() -> None:
    env = {"HF_TOKEN": "hf_abcdefgh", "OPENAI_API_KEY": "sk-12345678", "HOME": "/root/home"}
    assert redact("a hf_abcdefgh b sk-12345678 c /root/home", env) == "a *** b *** c /root/home"


def test_tail_lines_reads_only_the_end_of_a_long_file(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("".join(f"line {i}\n" for i in range(20_000)))
    assert tail_lines(log, 3) == ["line 19997", "line 19998", "line 19999"]
    assert tail_lines(tmp_path / "missing.log", 3) == []


@pytest.mark.parametrize(("visible", "expected"), [
    ("0,1", ["0", "1"]), ("", []), ("-1", []), ("2", ["2"]), ("GPU-abc,GPU-def", ["GPU-abc", "GPU-def"]),
    ("0,-1,1", ["0"]),
])
def test_devices_come_from_cuda_visible_devices_when_set(visible: str, expected: list[str]) -> None:
    assert detect_devices({"CUDA_VISIBLE_DEVICES": visible}) == expected


def test_devices_come_from_nvidia_smi_without_importing_torch(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-1)'\n"
                    "echo '  MIG 1g.18gb Device 0: (UUID: MIG-1)'\necho 'GPU 1: NVIDIA H200 (UUID: GPU-2)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert detect_devices({}) == ["0", "1"]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert detect_devices({}) == []


def test_capacity_is_gpu_slots_never_oversubscribed_or_the_cpu_setting() -> None:
    assert LocalBackend(devices=[]).capacity() == 1
    assert LocalBackend(devices=[], capacity=3).capacity() == 3
    assert LocalBackend(devices=["0", "1", "2", "3"]).capacity() == 4
    assert LocalBackend(devices=["0", "1", "2", "3"], capacity=8).capacity() == 4
    assert LocalBackend(devices=["0", "1", "2", "3"], capacity=2).capacity() == 2
    assert LocalBackend(devices=["0", "1", "2", "3"], gpus_per_run=2).capacity() == 2


def test_several_devices_launch_through_accelerate_and_option_like_paths_are_refused() -> None:
    worker = [sys.executable, "-m", "trex_mcp.execution.worker"]
    assert launch_argv(worker, Path("/r/spec.json"), 1) == [*worker, "/r/spec.json"]
    argv = launch_argv(worker, Path("/r/spec.json"), 2)
    assert argv[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert argv[argv.index("--num_processes") + 1] == "2" and "--multi_gpu" in argv
    assert argv[-3:] == ["-m", "trex_mcp.execution.worker", "/r/spec.json"]
    with pytest.raises(BackendError, match="must not start with '-'"):
        launch_argv(worker, Path("--output=/etc/x"), 1)


def test_shell_metacharacters_in_paths_have_no_side_effect(tmp_path: Path, backend: LocalBackend) -> None:
    canary = tmp_path / "CANARY"
    run_dir = tmp_path / f"run;touch {canary};$(touch {canary})`touch {canary}`"
    spec = write_spec(run_dir, tmp_path / "shared", "ok")
    info = backend.submit("r1", [sys.executable, str(CHILD), str(spec)], run_dir, {})
    wait_until(lambda: not backend.poll(info.handle).alive, what="child exit")
    assert backend.poll(info.handle).returncode == 0
    assert not canary.exists()


def test_attach_adopts_only_the_same_live_process(tmp_path: Path, backend: LocalBackend) -> None:
    spec = write_spec(tmp_path / "run", tmp_path / "shared", "loop")
    info = backend.submit("r1", [sys.executable, str(CHILD), str(spec)], tmp_path / "run", {})
    job = info.to_job()
    # Right after fork the child's command line is still the parent's; attach checks it, so wait for the exec.
    cmdline = Path(f"/proc/{job['pid']}/cmdline")
    wait_until(lambda: str(job["cmd_marker"]) in cmdline.read_bytes().decode(errors="replace"), what="child exec")
    other = LocalBackend(devices=[])  # a fresh backend, as after a server restart
    try:
        assert other.attach(job) and other.poll(job["handle"]).alive
        assert not other.attach({**job, "handle": "h2", "start_ticks": job["start_ticks"] + 1})  # recycled pid
        assert not other.attach({**job, "handle": "h3", "cmd_marker": "/other/spec.json"})
        assert not other.attach({**job, "handle": "h4", "pgid": job["pgid"] + 1})
        assert not other.attach({**job, "handle": "h5", "boot_id": "another-boot"})
        assert not other.attach({"handle": "h6"})
        other.cancel(job["handle"], grace_s=2.0)
        wait_until(lambda: not other.poll(job["handle"]).alive, what="attached job stopped")
    finally:
        backend.kill(info.handle)
    wait_until(lambda: not backend.poll(info.handle).alive, what="child reaped")
    assert not LocalBackend(devices=[]).attach(job)  # gone: never re-attached


def test_attach_never_signals_an_unrelated_process_that_reused_a_pid(tmp_path: Path) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        fake_job = {"handle": "h", "pid": stranger.pid, "pgid": stranger.pid, "start_ticks": 1,
                    "cmd_marker": "/runs/x/spec.json"}
        backend = LocalBackend(devices=[])
        assert not backend.attach(fake_job)
        backend.cancel("h", grace_s=0)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait(5)


def test_a_warm_spare_runs_the_module_like_python_m_with_the_run_env_and_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = tmp_path / "pkg"
    probe.mkdir()
    (probe / "warmprobe.py").write_text(
        "import json, os, sys\n"
        "print('probe running')\n"
        "json.dump({'argv': sys.argv[1:], 'cwd': os.getcwd(), 'extra': os.environ.get('EXTRA'),\n"
        "           'preloaded': 'colorsys' in sys.modules, 'main': __name__}, open(sys.argv[1], 'w'))\n"
        "sys.exit(3)\n")
    monkeypatch.setenv("PYTHONPATH", str(probe))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-warm-123456")
    backend = LocalBackend(devices=[], warm_module="warmprobe", preload=("colorsys",))
    backend.prewarm()
    try:
        # a job that arrives while the spare is still importing runs all the same
        early = backend.submit("r0", [sys.executable, "-m", "warmprobe", str(tmp_path / "o0.json")],
                               tmp_path / "run0", {})
        assert early.identity["warm"] is True
        wait_until(lambda: not backend.poll(early.handle).alive, what="early job exit")
        assert json.loads((tmp_path / "o0.json").read_text())["main"] == "__main__"
        wait_until(lambda: backend.warm_ready(0.05), what="next spare ready")
        out = tmp_path / "out.json"
        run_dir = tmp_path / "run"
        info = backend.submit("r1", [sys.executable, "-m", "warmprobe", str(out)], run_dir, {"EXTRA": "yes"})
        assert info.identity["warm"] is True
        wait_until(lambda: not backend.poll(info.handle).alive, what="warm job exit")
        assert backend.poll(info.handle).returncode == 3
        seen = json.loads(out.read_text())
        assert seen == {"argv": [str(out)], "cwd": str(run_dir), "extra": "yes", "preloaded": True,
                        "main": "__main__"}
        assert "probe running" in (run_dir / "train.log").read_text()
        # the next job gets a fresh spare; a job needing device pinning always starts cold
        second = backend.submit("r2", [sys.executable, "-m", "warmprobe", str(tmp_path / "o2.json")],
                                tmp_path / "run2", {"CUDA_VISIBLE_DEVICES": "0"})
        assert second.identity["warm"] is False
        wait_until(lambda: not backend.poll(second.handle).alive, what="cold job exit")
    finally:
        backend.close()


def test_a_warm_job_can_be_reattached_and_close_stops_the_idle_spare(tmp_path: Path) -> None:
    backend = LocalBackend(devices=[], warm_module="http.server", preload=())
    backend.prewarm()
    info = backend.submit("r1", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "0"],
                          tmp_path / "run", {})
    next_spare = backend._spare._proc  # type: ignore[union-attr]  # spawned for the next job
    try:
        assert info.identity["warm"] is True and info.identity["cmd_marker"].startswith("trex-warm-")
        assert next_spare is not None and next_spare.pid != info.pid
        fresh = LocalBackend(devices=[])
        assert fresh.attach(info.to_job())
        fresh.cancel(info.handle, grace_s=2.0)
        wait_until(lambda: not backend.poll(info.handle).alive, what="warm job cancelled")
    finally:
        backend.kill(info.handle)
        backend.close()
    assert next_spare.poll() is not None, "close() must stop the idle spare"
