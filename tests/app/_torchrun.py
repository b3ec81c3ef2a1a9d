"""Run a script under ``torch.distributed.run`` with 2 gloo processes on this machine."""

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(script: str, tmp: Path, name: str, *args: str, timeout: int):
    """Write ``script`` to ``tmp/name`` and run it with 2 processes (loopback only).

    The script gets ``tmp`` and then ``args`` as its arguments. Returns the completed
    process; a non-zero exit fails the calling test with the tail of both streams.
    """
    path = tmp / name
    path.write_text(textwrap.dedent(script))
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", MASTER_ADDR="127.0.0.1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
           "--master-addr=127.0.0.1", f"--master-port={free_port()}", str(path), str(tmp), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc
