#!/usr/bin/env python3
"""A tcptwin DUT adapter over the namespace kernel's own sockets (docs/dut-protocol.md).

It is the protocol's reference: every request becomes the system call the kernel DUT
makes, with the same raw bytes (sockaddrs and option values through libc, so a
malformed one reaches the kernel as it is), and every reply carries the call's value or
its errno by name. `tcptwin run --dut kernel --vs exec:...` with it must agree with the
kernel on every case; a stack's adapter keeps this shape and swaps the calls.
"""

import ctypes
import errno
import json
import os
import select
import sys
import time

LIBC = ctypes.CDLL(None, use_errno=True)
MSG_NOSIGNAL = 0x4000
AF_INET, AF_INET6, SOCK_STREAM, SOCK_CLOEXEC = 2, 10, 1, 0o2000000
FAMILIES = {"AF_INET": AF_INET, "AF_INET6": AF_INET6}
F_GETFL, F_SETFL, O_NONBLOCK = 3, 4, 0o4000

STEPS = ["socket", "nonblocking", "setsockopt", "getsockopt", "bind", "connect",
         "poll", "send", "recv", "close", "wait_ms"]
SOCKOPTS = ["TCP_MAXSEG", "TCP_NODELAY", "TCP_SYNCNT", "TCP_WINDOW_CLAMP", "TCP_QUICKACK",
            "TCP_USER_TIMEOUT", "TCP_FASTOPEN_CONNECT", "TCP_RTO_MAX_MS", "SO_RCVBUF",
            "SO_SNDBUF", "SO_SNDTIMEO", "SO_ERROR", "IP_TOS", "IP_TTL", "IP_OPTIONS",
            "IP_BIND_ADDRESS_NO_PORT", "IPV6_V6ONLY", "IPV6_TCLASS", "IPV6_UNICAST_HOPS"]


class Failed(Exception):
    """A call returned -1: its errno."""


def check(rc):
    if rc < 0:
        raise Failed(ctypes.get_errno())
    return rc


def padded(data):
    """At least a sockaddr_storage behind the pointer, as the kernel DUT passes."""
    return ctypes.create_string_buffer(data, max(len(data), 128))


class Socket:
    def __init__(self):
        self.fd = -1

    def socket(self, req):
        family = FAMILIES[req.get("family", "AF_INET")]
        self.fd = check(LIBC.socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0))
        return {"ret": self.fd}

    def nonblocking(self, req):
        flags = check(LIBC.fcntl(self.fd, F_GETFL))
        flags = flags | O_NONBLOCK if req["on"] else flags & ~O_NONBLOCK
        return {"ret": check(LIBC.fcntl(self.fd, F_SETFL, flags))}

    def setsockopt(self, req):
        value = bytes.fromhex(req["value"])
        buf = ctypes.create_string_buffer(value, len(value))
        return {"ret": check(LIBC.setsockopt(self.fd, req["level"], req["name"], buf, len(value)))}

    def getsockopt(self, req):
        value, size = ctypes.c_int(0), ctypes.c_uint(4)
        check(LIBC.getsockopt(self.fd, req["level"], req["name"], ctypes.byref(value),
                              ctypes.byref(size)))
        return {"ret": 0, "value": value.value}

    def bind(self, req):
        addr = bytes.fromhex(req["addr"])
        return {"ret": check(LIBC.bind(self.fd, padded(addr), len(addr)))}

    def connect(self, req):
        addr = bytes.fromhex(req["addr"])
        return {"ret": check(LIBC.connect(self.fd, padded(addr), len(addr)))}

    def poll(self, req):
        poller = select.poll()
        poller.register(self.fd, req["events"])
        timeout = req["timeout_ms"]
        events = poller.poll(None if timeout < 0 else timeout)
        return {"ret": events[0][1] if events else 0}

    def send(self, req):
        data = bytes.fromhex(req["data"])
        return {"ret": check(LIBC.send(self.fd, data, len(data), MSG_NOSIGNAL))}

    def recv(self, req):
        buf = ctypes.create_string_buffer(max(req["max"], 1))
        return {"ret": check(LIBC.recv(self.fd, buf, req["max"], 0))}

    def close(self, _req):
        check(LIBC.close(self.fd))
        self.fd = -1
        return {"ret": 0}

    def wait(self, req):
        time.sleep(req["ms"] / 1000)
        return {"ret": 0}


def main():
    sock = Socket()
    out = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "hello":
            reply = {"protocol": 1, "name": "kernel-sockets", "version": os.uname().release,
                     "address": "kernel", "steps": STEPS, "sockopts": SOCKOPTS,
                     "families": list(FAMILIES)}
        elif op == "setup":
            # The namespace's kernel holds the address already; nothing to bring up.
            reply = {"ret": 0}
        elif op == "finish":
            return
        else:
            try:
                reply = getattr(sock, op)(req)
            except Failed as failed:
                reply = {"errno": errno.errorcode.get(failed.args[0], "EIO")}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
