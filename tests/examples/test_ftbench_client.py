"""The scripted FT-Bench client (examples/clients/ftbench_client.py).

Fast tests: the results table, JSON and Markdown on recorded driver summaries; the server's environment; and two
short stdio sessions that need no training (the mini suite as the server lists it; unknown tasks failing one by
one with a non-zero exit). Slow tests: a real search over stdio on one mini task with the smallest budget, and
Ctrl-C stopping a running driver.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

REPO = Path(__file__).resolve().parents[2]
CLIENT_PATH = REPO / "examples" / "clients" / "ftbench_client.py"

# Summaries as get_autonomous_status returned them once the driver was done (trex_mcp/agents/driver.py _summary).
RECORDED: list[dict[str, Any]] = [
    {"tree_id": "a" * 32, "task": "ftbench/mini/sentiment", "metric": "accuracy", "base_validation": 0.48,
     "best_validation": 0.93, "base_test": 0.5, "test": 0.91, "normalised_gain": 0.9111, "rounds": 4, "runs": 15,
     "wall_s": 201.3, "device_hours": 0.0, "train_tokens": 812000, "llm_tokens": 0, "best_node": 3,
     "report": "/tmp/home/reports/aaaa.html"},
    {"tree_id": "b" * 32, "task": "ftbench/mini/notes", "metric": "rouge1", "base_validation": 0.0123,
     "best_validation": 0.7, "base_test": 0.011, "test": 0.69, "normalised_gain": 0.7636, "rounds": 4, "runs": 15,
     "wall_s": 250.0, "device_hours": 0.0, "train_tokens": 900000, "llm_tokens": 0, "best_node": 2,
     "report": None},
]


def recorded_results(fc: ModuleType) -> list[Any]:
    done = [fc.result_from_summary(s["task"], s, wall_s=s["wall_s"] + 4.0) for s in RECORDED]
    failed = fc.TaskResult(task="ftbench/mini/ordering", status="failed", wall_s=12.5,
                           error="create_tree: the | pipe\nand a newline")
    return [*done, failed]


def test_a_recorded_summary_becomes_a_row_with_the_client_measured_wall_time(fc: ModuleType) -> None:
    row = fc.result_from_summary("ftbench/mini/sentiment", RECORDED[0], wall_s=205.25)
    assert (row.task, row.status, row.metric, row.base_test, row.test, row.rounds) == (
        "ftbench/mini/sentiment", "done", "accuracy", 0.5, 0.91, 4)
    assert row.best_validation == 0.93 and row.normalised_gain == 0.9111 and row.wall_s == 205.25
    assert row.beats_base is True
    assert fc.result_from_summary("x", RECORDED[0]).wall_s == 201.3  # the driver's figure when the client has none


def test_the_table_has_one_aligned_line_per_task_and_names_each_failure(fc: ModuleType) -> None:
    table = fc.format_table(recorded_results(fc))
    lines = table.splitlines()
    assert lines[0].split() == ["task", "metric", "base", "(val)", "best", "(val)", "base", "(test)", "test",
                                "norm.", "gain", "rounds", "wall", "(s)", "status"]
    assert set(lines[1]) <= {"-", " "}
    sentiment = lines[2].split()
    assert sentiment == ["ftbench/mini/sentiment", "accuracy", "0.4800", "0.9300", "0.5000", "0.9100", "0.9111", "4",
                         "205", "done"]
    assert lines[4].split()[0] == "ftbench/mini/ordering" and lines[4].split()[-1] == "failed"
    assert lines[4].split()[1:8] == ["n/a"] * 7 and lines[4].split()[8] == "12"
    # Columns line up: every 'test' cell ends where the header's 'test' ends.
    end = lines[0].index(" test ") + len(" test")
    assert all(line[end - 1] != " " for line in lines[2:5])
    assert lines[5:] == ["ftbench/mini/ordering: failed: create_tree: the | pipe and a newline"]


def test_markdown_is_a_pipe_table_with_the_command_and_escaped_failures(fc: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "deep" / "results.md"
    fc.write_text_atomic(out, fc.format_markdown(recorded_results(fc), command="python x.py --rounds 4"))
    text = out.read_text()
    lines = text.splitlines()
    assert lines[0].startswith("| task | metric | base (val) |") and lines[0].count("|") == 11
    assert lines[1] == "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    assert lines[2] == ("| ftbench/mini/sentiment | accuracy | 0.4800 | 0.9300 | 0.5000 | 0.9100 | 0.9111 | 4 | 205 "
                        "| done |")
    assert all(line.count("|") == 11 for line in lines[:5])
    assert "Command: `python x.py --rounds 4`" in text
    assert "- `ftbench/mini/ordering` (failed): create_tree: the \\| pipe and a newline" in text
    assert [p.name for p in out.parent.iterdir()] == ["results.md"]  # no temporary file left behind


def test_json_holds_every_row_the_options_and_the_failed_tasks(fc: ModuleType, tmp_path: Path) -> None:
    doc = fc.results_document(recorded_results(fc), options={"rounds": 4, "runs_per_round": 3},
                              command="python x.py", started_at=1.0, total_wall_s=470.0)
    out = tmp_path / "results.json"
    fc.write_text_atomic(out, json.dumps(doc))
    loaded = json.loads(out.read_text())
    assert loaded["options"] == {"rounds": 4, "runs_per_round": 3} and loaded["total_wall_s"] == 470.0
    assert [t["task"] for t in loaded["tasks"]] == ["ftbench/mini/sentiment", "ftbench/mini/notes",
                                                    "ftbench/mini/ordering"]
    assert loaded["tasks"][0]["test"] == 0.91 and loaded["tasks"][0]["beats_base"] is True
    assert loaded["tasks"][2]["beats_base"] is None and loaded["tasks"][2]["error"].startswith("create_tree")
    assert loaded["failed"] == ["ftbench/mini/ordering"]


def test_the_server_gets_only_the_forwarded_environment_and_hf_token_only_when_set(fc: ModuleType,
                                                                                    tmp_path: Path) -> None:
    parent = {"PATH": "/bin", "HOME": "/home/u", "SECRET_DB_PASSWORD": "x", "TREX_LLM_MODEL": "m",
              "TREX_LLM_API_KEY": "k", "HF_TOKEN": "", "OMP_NUM_THREADS": "2"}
    env = fc.child_env(parent, home=tmp_path, offline=True)
    assert "SECRET_DB_PASSWORD" not in env and "HF_TOKEN" not in env
    assert env["TREX_HOME"] == str(tmp_path) and env["TREX_LLM_MODEL"] == "m" and env["OMP_NUM_THREADS"] == "2"
    assert env["HF_HUB_OFFLINE"] == env["HF_DATASETS_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"
    assert fc.child_env({**parent, "HF_TOKEN": "hf_x"}, home=None, offline=False)["HF_TOKEN"] == "hf_x"
    args = fc.build_parser().parse_args(["--home", str(tmp_path), "--capacity", "1", "--data-root", "/data"])
    params = fc.server_parameters(args, environ=parent)
    assert params.args[params.args.index("--home"):] == ["--home", str(tmp_path), "--data-root", "/data",
                                                         "--capacity", "1", "--warm-worker", "--log-level",
                                                         "WARNING"]
    cold = fc.build_parser().parse_args(["--cold-workers"])
    assert "--warm-worker" not in fc.server_parameters(cold, environ=parent).args
    assert params.env == fc.child_env(parent, home=tmp_path, offline=False)


def test_budget_flags_out_of_the_servers_bounds_are_usage_errors(fc: ModuleType) -> None:
    parser = fc.build_parser()
    for argv in (["--rounds", "21"], ["--runs-per-round", "0"], ["--samples-per-round", "50001"]):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(argv)
        assert exc.value.code == 2
    args = parser.parse_args([])
    assert (args.tasks, args.rounds, args.runs_per_round, args.policy, args.planner) == (None, 4, 3, "uct",
                                                                                         "heuristic")


# ---------------------------------------------------------------------------------------------- over stdio


def test_the_default_suite_is_the_mini_tasks_the_server_lists(fc: ModuleType, trex_home: Path) -> None:
    args = fc.build_parser().parse_args(["--home", str(trex_home), "--offline"])
    params = fc.server_parameters(args)

    async def listed() -> list[str]:
        with anyio.fail_after(60):
            return await fc.list_suite(params, errlog, mini=True)  # type: ignore[no-any-return]

    with (trex_home.parent / "server.log").open("w") as errlog:
        names = anyio.run(listed)
    assert names == ["ftbench/mini/hallmarks", "ftbench/mini/notes", "ftbench/mini/ordering", "ftbench/mini/sentiment"]


def test_failed_tasks_do_not_stop_the_others_and_the_exit_status_names_them(fc: ModuleType, trex_home: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    json_path, md_path = trex_home.parent / "r.json", trex_home.parent / "r.md"
    rc = fc.main(["--home", str(trex_home), "--offline", "--tasks", "ftbench/mini/nope", "mini/sentimnt",
                  "--rounds", "1", "--runs-per-round", "1", "--poll-s", "0.2", "--json", str(json_path),
                  "--markdown", str(md_path), "--server-log", str(trex_home.parent / "server.log")],
                 stdout=out, stderr=err)
    assert rc == 1
    doc = json.loads(json_path.read_text())
    assert doc["failed"] == ["ftbench/mini/nope", "mini/sentimnt"]
    assert "did you mean 'ftbench/mini/notes'" in doc["tasks"][0]["error"]
    assert "ftbench/mini/sentiment" in doc["tasks"][1]["error"]
    assert "failed: ftbench/mini/nope, mini/sentimnt" in err.getvalue()
    assert "ftbench/mini/nope" in out.getvalue() and "ftbench/mini/nope" in md_path.read_text()


# ---------------------------------------------------------------------------------------------- real searches


def _client_env(home: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "TREX_HOME": str(home), "PYTHONPATH": path}


@pytest.mark.slow
def test_one_mini_task_runs_end_to_end_over_stdio_with_the_smallest_budget(fc: ModuleType, trex_home: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    json_path = trex_home.parent / "r.json"
    started = time.monotonic()
    rc = fc.main(["--home", str(trex_home), "--offline", "--tasks", "ftbench/mini/sentiment", "--rounds", "1",
                  "--runs-per-round", "1", "--poll-s", "0.5", "--task-timeout", "600", "--json", str(json_path),
                  "--server-log", str(trex_home.parent / "server.log")], stdout=out, stderr=err)
    wall = time.monotonic() - started
    server_log = (trex_home.parent / "server.log").read_text()[-3000:]
    assert rc == 0, f"{err.getvalue()[-3000:]}\n--- server stderr ---\n{server_log}"
    row = json.loads(json_path.read_text())["tasks"][0]
    assert row["status"] == "done" and row["rounds"] == 1 and row["metric"] == "accuracy"
    assert row["test"] is not None and row["base_test"] is not None and row["best_validation"] is not None
    assert row["wall_s"] <= wall
    assert "ftbench/mini/sentiment: running" in err.getvalue()
    assert "ftbench/mini/sentiment" in out.getvalue().splitlines()[2]


@pytest.mark.slow
def test_ctrl_c_stops_the_running_driver_and_exits_130(trex_home: Path) -> None:
    log = trex_home.parent / "client.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, str(CLIENT_PATH), "--home", str(trex_home), "--offline",
                                 "--tasks", "ftbench/mini/sentiment", "--rounds", "1", "--runs-per-round", "1",
                                 "--poll-s", "0.2", "--server-log", str(trex_home.parent / "server.log")],
                                stdout=subprocess.PIPE, stderr=stderr, env=_client_env(trex_home), cwd=REPO)
        try:
            deadline = time.monotonic() + 120
            while "ftbench/mini/sentiment: running" not in log.read_text():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)  # polling a file another process writes; bounded by the deadline
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=150)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert rc == 130, text
    assert "stopping the running driver" in text and "ftbench/mini/sentiment: stopped" in text
