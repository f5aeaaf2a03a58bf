"""Which addresses processes listen on, read from /proc (no tools needed)."""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _listening() -> dict[int, tuple[str, int]]:
    """socket inode -> (address, port) of every listening TCP socket."""
    out = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], int(parts[9])
            if state != "0A":  # LISTEN
                continue
            addr_hex, port_hex = local.split(":")
            raw = bytes.fromhex(addr_hex)
            if family == socket.AF_INET:
                addr = socket.inet_ntop(family, struct.pack("<I", struct.unpack(">I", raw)[0]))
            else:
                words = struct.unpack(">4I", raw)
                addr = socket.inet_ntop(family, struct.pack("<4I", *words))
            out[inode] = (addr, int(port_hex, 16))
    return out


def listening_addresses(pids: list[int]) -> list[tuple[str, int]]:
    sockets = _listening()
    found = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = int(target[8:-1])
                if inode in sockets:
                    found.append(sockets[inode])
    return found


def is_loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def listening_everywhere() -> set[tuple[str, int]]:
    """Every (address, port) any process on this machine listens on."""
    return set(listening_addresses([int(p) for p in os.listdir("/proc") if p.isdigit()]))


def run_watching(fn: Callable[[], T]) -> tuple[T, set[tuple[str, int]]]:
    """``fn()`` in a thread, and every listening socket that appeared while it ran (polled)."""
    before = listening_everywhere()
    out: list[T] = []
    failed: list[BaseException] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 - raised again below, in the caller's thread
            failed.append(exc)

    job = threading.Thread(target=target)
    job.start()
    seen: set[tuple[str, int]] = set()
    while job.is_alive():
        seen |= listening_everywhere()
        time.sleep(0.1)
    job.join()
    if failed:
        raise failed[0]
    return out[0], seen - before
