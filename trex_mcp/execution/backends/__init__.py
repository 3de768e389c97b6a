"""Job backends: how a run's worker process is started, watched, stopped and re-attached."""

from trex_mcp.execution.backends.base import Backend, BackendError, JobInfo, ProcessStatus
from trex_mcp.execution.backends.local import LocalBackend

__all__ = ["Backend", "BackendError", "JobInfo", "LocalBackend", "ProcessStatus"]
