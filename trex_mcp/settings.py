"""One typed Settings object for the whole server.

Settings come from constructor arguments (the CLI builds them) and, for a few operator-level values, from
environment variables prefixed `TREX_`. Secrets (HF_TOKEN, LLM API keys, the HTTP bearer token) are read from
the environment only and are never echoed back: `Settings.public_view()` is what tools may show.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


def default_home() -> Path:
    """The trex home: `$TREX_HOME`, else `~/.trex`."""
    env = os.environ.get("TREX_HOME")
    return Path(env).expanduser() if env else Path.home() / ".trex"


class Settings(BaseModel):
    """Server configuration. Paths are absolute once the object exists."""

    model_config = ConfigDict(extra="forbid")

    home: Path = Field(default_factory=default_home, description="Root for the store, caches, runs and models.")
    data_roots: list[Path] = Field(default_factory=list,
                                   description="Folders from which recipes may read local files "
                                   "(the trex home and the shipped FT-Bench data are always allowed).")
    executor: Literal["local", "ray"] = Field("local", description="Job backend.")
    ray_address: str | None = Field(None, description="Ray cluster address when executor is 'ray'.")
    capacity: int | None = Field(None, ge=1, le=64,
                                 description="Concurrent training runs; default: visible GPUs, or 1 on CPU.")
    run_timeout_s: float = Field(3600.0, gt=0, le=7 * 24 * 3600, description="Wall-clock limit per run.")
    heartbeat_s: float = Field(10.0, gt=0, le=600, description="Worker heartbeat interval.")
    max_retry: int = Field(3, ge=0, le=10, description="Retries of a crashed or stale run.")
    planner: Literal["heuristic", "llm"] = Field("heuristic", description="Planner for autonomous mode.")
    policy: Literal["uct", "greedy", "random"] = Field("uct", description="Tree policy for autonomous mode.")
    llm_base_url: str | None = Field(None, description="OpenAI-compatible endpoint for the llm planner.")
    llm_model: str | None = Field(None, description="Model name for the llm planner.")
    http_host: str = Field("127.0.0.1", description="Bind address of the streamable HTTP transport.")
    http_port: int = Field(8765, ge=1, le=65535, description="Port of the streamable HTTP transport.")
    allowed_hosts: list[str] = Field(default_factory=list, description="Host headers accepted off loopback.")
    auth_token: SecretStr | None = Field(None, description="Bearer token required off loopback (env TREX_AUTH_TOKEN).")
    allow_unsafe_code: bool = Field(False, description="Operator opt-in for tasks that execute model output.")
    warm_worker: bool = Field(False, description="Keep one spare CPU worker with torch/TRL imported for the next run "
                              "(saves ~10 s of imports per run; costs ~1 GB while idle). On by default in "
                              "autonomous mode.")

    def model_post_init(self, __context: Any) -> None:
        self.home = self.home.expanduser().resolve()
        self.data_roots = [p.expanduser().resolve() for p in self.data_roots]
        if self.auth_token is None and os.environ.get("TREX_AUTH_TOKEN"):
            self.auth_token = SecretStr(os.environ["TREX_AUTH_TOKEN"])

    @property
    def store_path(self) -> Path:
        """The SQLite file of the tree store."""
        return self.home / "trex.sqlite3"

    @property
    def runs_dir(self) -> Path:
        """Per-run folders (spec, logs, checkpoints, adapter)."""
        return self.home / "runs"

    @property
    def datasets_dir(self) -> Path:
        """Materialised recipe datasets, keyed by content hash."""
        return self.home / "datasets"

    @property
    def models_dir(self) -> Path:
        """Built `tiny:` models and other local model caches."""
        return self.home / "models"

    @property
    def cache_dir(self) -> Path:
        """diskcache folders (research answers, evaluation results)."""
        return self.home / "cache"

    @property
    def reports_dir(self) -> Path:
        """HTML reports."""
        return self.home / "reports"

    def allowed_data_roots(self) -> list[Path]:
        """Every folder a recipe may read from: configured roots, the trex home, shipped FT-Bench data."""
        import ftbench

        return [*self.data_roots, self.home, Path(ftbench.__file__).resolve().parent / "data"]

    def ensure_dirs(self) -> None:
        """Create the home layout (idempotent)."""
        for path in (self.home, self.runs_dir, self.datasets_dir, self.models_dir, self.cache_dir, self.reports_dir):
            path.mkdir(parents=True, exist_ok=True)

    def public_view(self) -> dict[str, Any]:
        """Settings safe to show a client: no secrets."""
        data = self.model_dump(mode="json", exclude={"auth_token"})
        data["auth_enabled"] = self.auth_token is not None
        return data
