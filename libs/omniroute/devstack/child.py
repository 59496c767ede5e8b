"""`python -m omniroute.devstack.child <parent pid> <cpus> <module> [args…]`: run a service module
as `python -m <module> [args…]` would, after what the devstack wants of each of its children:
to die with the process that started it and, for benchmarks, to run on a set of CPUs.
`… <cpus> --exec <program> [args…]` does the same for any program (LiteLLM's proxy in the
benchmark): the settings are made, then the program replaces this process (both survive exec).

Why not a `preexec_fn`: with one, `subprocess` forks the parent (instead of vfork) and runs
Python in the child before the exec. When the parent is a process whose gRPC is running (a test
session, a benchmark driver), gRPC's fork handlers start its event-engine poller again in that
child, and `close_fds` then closes the poller's epoll descriptor before the exec: the child
aborts with "epoll_wait error: Bad file descriptor" (measured: 5–8 starts in 200 with a busy
gRPC channel in the parent; 0 in 200 without a preexec_fn). Here the same settings are made
after the exec, in a fresh process where nothing of the parent's gRPC exists."""

from __future__ import annotations

import os
import runpy
import signal
import sys

PR_SET_PDEATHSIG = 1
EXEC = "--exec"   # in the module's place: a program follows (no module name starts with "-")


def command(module: str, *args: str, cpus: set[int] | None = None) -> list[str]:
    """The command line that starts `module` as a child of this process."""
    cpu_list = ",".join(str(cpu) for cpu in sorted(cpus)) if cpus else "-"
    return [sys.executable, "-m", __name__, str(os.getpid()), cpu_list, module, *args]


def program_command(program: str, *args: str, cpus: set[int] | None = None) -> list[str]:
    """The command line that starts the executable `program` as a child of this process."""
    return command(EXEC, program, *args, cpus=cpus)


def die_with_parent(parent_pid: int) -> None:
    """Linux: SIGTERM when the parent dies (no orphans). If it died before this ran, go now."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        return
    if os.getppid() != parent_pid:
        raise SystemExit(f"the process that started this one ({parent_pid}) is gone")


def main() -> None:
    parent_pid, cpu_list, module, *args = sys.argv[1:]
    die_with_parent(int(parent_pid))
    if cpu_list != "-":
        os.sched_setaffinity(0, {int(cpu) for cpu in cpu_list.split(",")})
    if module == EXEC:
        os.execv(args[0], args)
    sys.argv = [module, *args]   # run_module puts the module's own path in argv[0], as -m does
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
