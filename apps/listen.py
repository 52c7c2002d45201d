"""Addresses a cmlite server listens on (the camera's page, Triton): parsing them, loopback or not, and what
to say when one cannot be bound. A bare port means loopback; anything else is asked for explicitly."""
from __future__ import annotations

import errno
import ipaddress
import socket

from cmlite.runtimes.errors import CmliteError

WILDCARDS = ("0.0.0.0", "::", "")  # "every address of this machine"


def bind_error(host: str, port: int, e: OSError) -> CmliteError:
    """What went wrong with --serve HOST:PORT, and the fix: the port, or the host."""
    where = f"cannot serve on {host}:{port}: {e.strerror or e}"
    if e.errno == errno.EADDRINUSE:
        return CmliteError(f"{where} (the port is in use: pick another with --serve {host}:PORT, or 0 for a free one)")
    if e.errno == errno.EACCES:
        return CmliteError(f"{where} (ports below 1024 need root: pick one above, e.g. --serve {host}:8080)")
    if isinstance(e, socket.gaierror) or e.errno == errno.EADDRNOTAVAIL:
        return CmliteError(f"{where} ({host} is not an address of this machine: give one of its addresses, "
                           f"0.0.0.0 for every address, or leave the host out for 127.0.0.1)")
    return CmliteError(f"{where} (pick another address or port with --serve HOST:PORT)")


def parse_address(text: str, flag: str = "--serve") -> tuple[str, int]:
    """HOST:PORT, :PORT or PORT (loopback unless a host is named); port 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CmliteError(f"{flag} {text!r}: expected HOST:PORT or PORT, e.g. 8080 or 0.0.0.0:8080 (the port "
                          f"0-65535; 0 picks a free one)")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_address_free(address: str) -> None:
    """--serve's address taken for a moment and let go: a port in use, or a host that is not this machine's, is
    said before the model loads (port 0, any free one, always is)."""
    host, port = parse_address(address)
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no conflict
            s.bind((host, port))
    except OSError as e:
        raise bind_error(host, port, e) from None
