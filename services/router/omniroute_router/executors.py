"""The router's executor stubs: the shared pool (one place for how executors are reached)."""

from omniroute.executor_pool import ExecutorPool

__all__ = ["ExecutorPool"]
