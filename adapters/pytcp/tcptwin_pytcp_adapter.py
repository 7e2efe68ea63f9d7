#!/usr/bin/env python3
"""A tcptwin DUT adapter for PyTCP 2.7.6 (docs/dut-protocol.md).

PyTCP (https://github.com/ccie18643/PyTCP, PyPI `pytcp`) is a TCP/IP stack in pure Python.
Its own start-up (`pytcp.TcpIpStack`) opens a TAP device and then claims its addresses
with ARP probes, DHCP, IPv6 DAD, MLD reports and a router solicitation; none of that may
reach tcptwin's wire, where every frame is compared. So this adapter brings the stack up
itself, from the same pieces `TcpIpStack.__init__`/`start()` use:

  * the frame I/O is an AF_PACKET socket on the namespace's `eth0` instead of a TAP fd:
    PyTCP's `RxRing.start(fd)` and `TxRing.start(fd)` only ever `select`, `os.read(fd,
    2048)` and `os.write(fd, frame)` on the descriptor they are given, which a bound
    packet socket serves exactly like a TAP (one whole Ethernet frame per call);
  * the MAC goes in through `PacketHandler.assign_mac_address`, the MTU through
    `config.TAP_MTU` (what PyTCP derives its MSS and fragmentation from), and the
    IPv4 address/prefix straight into `PacketHandler.ip4_host`, which is where
    `PacketHandler._create_stack_ip4_addressing` puts it once its ARP probing (three
    probes and 3-6 s of sleeps, then an announcement) finds no conflict: the probing is
    skipped, nothing else about the address differs;
  * on an IPv6 network (an `inet6` case: `setup` carries IPv6 addresses) the address
    goes straight into `PacketHandler.ip6_host` and its solicited-node group and
    ff02::1 into `ip6_multicast`/`mac_multicast`, which is what `_assign_ip6_host` and
    `_assign_ip6_multicast` do after a clean ND DAD, less the DAD's neighbour
    solicitation and the MLD report each join sends; no link-local address is made
    (`config.IP6_LLA_AUTOCONFIG`) and no router solicited (`IP6_GUA_AUTOCONFIG`), like
    the kernel DUT, which has neither; IPv4 is then off;
  * on an IPv4 network IPv6 is off (`config.IP6_SUPPORT`); DHCP is off
    (`config.IP4_HOST_DHCP`); `acquire_ip6_addresses`/`acquire_ip4_addresses` are not
    called at all; no gateway is set (the peer is on-link);
  * PyTCP's logger `print()`s to stdout: stdout (fd 1) is moved to stderr before PyTCP
    is imported, and the protocol is written to a private duplicate of the original fd 1.
    Logging is off unless the adapter is started with `--log` (then it goes to stderr).

Requests map onto PyTCP's BSD-like socket API (`pytcp.lib.socket.socket()` returning a
`pytcp.protocols.tcp.socket.TcpSocket`): socket -> `socket(AF_INET4, SOCK_STREAM)`
(`socket(AF_INET6, SOCK_STREAM)` when the request's `family` is AF_INET6; PyTCP has no
v4-mapped addresses, so a v4-mapped case gets PyTCP's own answer for one),
bind -> `TcpSocket.bind((addr, port))`, connect -> `TcpSocket.connect((addr, port))`
(blocking: PyTCP has no other kind), send -> `TcpSocket.send(data)`, recv ->
`TcpSocket.recv(max)` (blocking), close -> `TcpSocket.close()`. PyTCP has no
nonblocking mode, no poll and no socket options at all, so `hello` lists neither those
steps nor any option: such cases are `unsupported` rather than faked here.

Errors: PyTCP raises Python exceptions, mostly OSError subclasses built from a message
alone ("[Errno 111] Connection refused - [...]", so `.errno` is None). The errno is read
from that "[Errno N]" text, else from the class (ConnectionRefusedError, TimeoutError,
BrokenPipeError), else from a message that is the start of a strerror text (PyTCP's
"send(): Destination address requir" is EDESTADDRREQ's). What has no Linux errno, e.g.
`gaierror` "[Errno -2] Name or service not known" (EAI_NONAME, PyTCP's answer when no
source address fits the destination) or an AssertionError inside PyTCP (close() of a
socket that never connected), is answered as `{"error": ...}` with the exception named:
tcptwin logs it as EIO with that text. Nothing is translated into what Linux would say.
"""

import ctypes
import errno
import json
import os
import re
import socket as pysocket
import struct
import sys
import time
import traceback

# The protocol stream: a private copy of the stdout tcptwin reads. fd 1 and sys.stdout
# then point at stderr, so nothing PyTCP prints (its logger uses print()) can reach the
# protocol.
PROTO = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

LOG = "--log" in sys.argv[1:]

# Linux constants (the protocol carries Linux layouts and numbers).
AF_INET, AF_INET6 = 2, 10
ETH_P_ALL = 0x0003
SOL_PACKET, PACKET_IGNORE_OUTGOING = 263, 23
PR_SET_PDEATHSIG, SIGKILL = 1, 9

# What PyTCP's API can express (see the module docstring).
STEPS = ["socket", "bind", "connect", "send", "recv", "close", "wait_ms"]
SOCKOPTS = []


def pytcp_version():
    try:
        from importlib.metadata import version
        return version("pytcp")
    except Exception:  # noqa: BLE001 - only for the report
        return ""


class NoErrno(Exception):
    """A call failed in a way that has no Linux errno: answered as `error`."""


ERRNO_CLASSES = (
    (ConnectionRefusedError, errno.ECONNREFUSED),
    (ConnectionResetError, errno.ECONNRESET),
    (ConnectionAbortedError, errno.ECONNABORTED),
    (BrokenPipeError, errno.EPIPE),
    (TimeoutError, errno.ETIMEDOUT),
)


def errno_name(exc):
    """The Linux errno name PyTCP's exception carries, or None when it carries none."""
    number = exc.errno if isinstance(exc, OSError) and isinstance(exc.errno, int) else None
    if number is None:
        # PyTCP: OSError("[Errno 98] Address already in use - [...]"), one argument.
        match = re.match(r"\s*\[Errno (-?\d+)\]", str(exc))
        if match:
            number = int(match.group(1))
    if number is not None:
        # Negative numbers are getaddrinfo's EAI_* codes (gaierror): no errno.
        return errno.errorcode.get(number) if number > 0 else None
    if isinstance(exc, OSError):
        for cls, value in ERRNO_CLASSES:
            if isinstance(exc, cls):
                return errno.errorcode[value]
        # PyTCP: OSError("send(): Destination address requir") - a cut strerror text.
        text = str(exc).split(":", 1)[-1].strip().lower()
        if len(text) >= 8:
            for value, name in errno.errorcode.items():
                if os.strerror(value).lower().startswith(text):
                    return name
    return None


def described(exc):
    """The exception and, for a bare one (PyTCP's asserts), the PyTCP line that raised it."""
    text = f"PyTCP raised {type(exc).__name__}"
    if str(exc):
        text += f": {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = last.filename.split("site-packages/")[-1]
        text += f" (at {where}:{last.lineno} in {last.name}: {(last.line or '').strip()})"
    return text


def decode_sockaddr(hexstr):
    """A raw Linux `struct sockaddr` as the (address, port) tuple PyTCP's calls take.

    PyTCP never sees a family or a length: its socket's family was fixed by `socket` and
    its calls take a tuple. So only what the bytes hold is decoded (an address of the
    other family is passed on as its text, and PyTCP itself answers what its socket does
    with it; a v4-mapped one as `::ffff:a.b.c.d`); bytes too short to hold an address,
    or another family, have no tuple form at all.
    """
    raw = bytes.fromhex(hexstr)
    if len(raw) < 2:
        raise NoErrno(f"sockaddr of {len(raw)} bytes has no family, so no (address, port) "
                      "form for PyTCP's API")
    family = struct.unpack("=H", raw[:2])[0]
    if family == AF_INET and len(raw) >= 8:
        port = struct.unpack("!H", raw[2:4])[0]
        return pysocket.inet_ntop(pysocket.AF_INET, raw[4:8]), port
    if family == AF_INET6 and len(raw) >= 24:
        port = struct.unpack("!H", raw[2:4])[0]
        return pysocket.inet_ntop(pysocket.AF_INET6, raw[8:24]), port
    raise NoErrno(f"sockaddr family {family}, {len(raw)} bytes, has no (address, port) "
                  "form for PyTCP's API")


class Stack:
    """PyTCP brought up on eth0 through an AF_PACKET socket (see the module docstring)."""

    def __init__(self, req):
        from pytcp import config

        # The case's network is IPv6 when its addresses are (setup's peer always is one).
        ipv6 = ":" in req["peer"]
        config.LOG_CHANEL = set(config.LOG_CHANEL) if LOG else set()
        config.IP6_SUPPORT = ipv6
        config.IP6_LLA_AUTOCONFIG = False
        config.IP6_GUA_AUTOCONFIG = False
        config.IP4_SUPPORT = not ipv6
        config.IP4_HOST_DHCP = False
        # The interface MTU: PyTCP's MSS (TcpSession._rcv_mss = TAP_MTU - 40), IPv4
        # fragmentation and the TX ring's frame limit all come from it.
        config.TAP_MTU = int(req["mtu"])
        config.MAC_ADDRESS = req["mac"]

        # Importing pytcp.lib.stack builds PyTCP's subsystem singletons (Timer, RxRing,
        # TxRing, ArpCache, NdCache, PacketHandler); none starts a thread yet.
        from pytcp.lib import stack
        from pytcp.lib.ip4_address import Ip4Host
        from pytcp.lib.ip6_address import Ip6Address, Ip6Host
        from pytcp.lib.mac_address import MacAddress

        self.stack = stack
        handler = stack.packet_handler
        handler.assign_mac_address(MacAddress(req["mac"]))
        if ipv6:
            # What acquire_ip6_addresses() and _assign_ip6_host() do after a clean ND DAD,
            # without the DAD and without _assign_ip6_multicast()'s MLD report per group.
            groups = [Ip6Address("ff02::1")]
            if req.get("address"):
                host = Ip6Host(f"{req['address']}/{req['prefix_len']}")
                handler.ip6_host.append(host)
                groups.append(host.address.solicited_node_multicast)
            for group in groups:
                handler.ip6_multicast.append(group)
                handler.mac_multicast.append(group.multicast_mac)
        elif req.get("address"):
            # What _create_stack_ip4_addressing() does after a clean ARP DAD, without it.
            handler.ip4_host.append(Ip4Host(f"{req['address']}/{req['prefix_len']}"))

        # The NIC: a packet socket on eth0 that reads every frame arriving there (the
        # kernel side of eth0 has another MAC, so PyTCP's own MAC filter in _phrx_ether
        # decides, as on a TAP) and not the frames it sends itself.
        self.nic = pysocket.socket(pysocket.AF_PACKET, pysocket.SOCK_RAW,
                                   pysocket.htons(ETH_P_ALL))
        self.nic.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        self.nic.bind((req["interface"], ETH_P_ALL))

        # TcpIpStack.start() without the address acquisition (done above), and with only
        # the neighbour cache of the network's family; each start() spawns its thread and
        # sleeps 0.1 s.
        stack.timer.start()
        if ipv6:
            stack.nd_cache.start()
        else:
            stack.arp_cache.start()
        stack.rx_ring.start(self.nic.fileno())
        stack.tx_ring.start(self.nic.fileno())
        stack.packet_handler.start()


class Adapter:
    """One case: the stack and the current socket."""

    def __init__(self):
        self.stack = None
        self.sock = None
        self.fd = 2  # fake descriptor numbers for the log (not compared)

    def setup(self, req):
        self.stack = Stack(req)
        return {"ret": 0}

    def socket(self, req):
        # pytcp.lib.socket.socket(): a TcpSocket(AF_INET4 or AF_INET6); it cannot fail.
        from pytcp.lib import socket as pytcp_socket
        family = {"AF_INET": pytcp_socket.AF_INET4,
                  "AF_INET6": pytcp_socket.AF_INET6}[req.get("family", "AF_INET")]
        self.sock = pytcp_socket.socket(family, pytcp_socket.SOCK_STREAM)
        self.fd += 1
        return {"ret": self.fd}

    def bind(self, req):
        # TcpSocket.bind((address, port)): port 0 picks one from EPHEMERAL_PORT_RANGE.
        self.sock.bind(decode_sockaddr(req["addr"]))
        return {"ret": 0}

    def connect(self, req):
        # TcpSocket.connect((address, port)) sends the SYN through TcpSession.connect()
        # and blocks on its semaphore until ESTABLISHED, a refusing RST, or PyTCP's own
        # retransmission limit (PACKET_RETRANSMIT_MAX_COUNT) runs out.
        self.sock.connect(decode_sockaddr(req["addr"]))
        return {"ret": 0}

    def send(self, req):
        # TcpSocket.send(data) -> TcpSession.send(): appends to the TX buffer and returns
        # its length (PyTCP's buffer has no limit), EPIPE outside ESTABLISHED/CLOSE_WAIT.
        return {"ret": self.sock.send(bytes.fromhex(req["data"]))}

    def recv(self, req):
        # TcpSocket.recv(max) -> TcpSession.receive(): blocks until data or the peer's
        # FIN (then b""); PyTCP has no receive timeout.
        return {"ret": len(self.sock.recv(req["max"]))}

    def close(self, _req):
        # TcpSocket.close() -> TcpSession.close(): the CLOSE event for PyTCP's FSM; the
        # FIN goes out from its timer thread once the TX buffer is empty. The object is
        # kept: a later call on it gets PyTCP's own answer.
        self.sock.close()
        return {"ret": 0}

    def wait(self, req):
        # PyTCP runs in its own threads (timer, RX, TX, packet handler): just sleep.
        time.sleep(req["ms"] / 1000)
        return {"ret": 0}


def answer(adapter, req):
    op = req["op"]
    if op == "hello":
        return {"protocol": 1, "name": "pytcp", "version": pytcp_version(),
                "address": "interface", "steps": STEPS, "sockopts": SOCKOPTS,
                "families": ["AF_INET", "AF_INET6"]}
    handler = getattr(adapter, op, None) if op in ("setup", "socket", "bind", "connect",
                                                    "send", "recv", "close",
                                                    "wait") else None
    if handler is None:
        return {"error": f"the PyTCP adapter has no {op!r} request (not in its hello)"}
    if op not in ("setup", "socket", "wait") and adapter.sock is None:
        return {"error": f"{op}: no socket is open in the adapter"}
    try:
        return handler(req)
    except NoErrno as exc:
        return {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - PyTCP's failures, reported as they are
        if op == "setup":
            raise
        name = errno_name(exc)
        if name:
            print(f"tcptwin-pytcp: {op}: {described(exc)} -> {name}", file=sys.stderr)
            return {"errno": name}
        return {"error": described(exc)}


def main():
    # One process: PyTCP's threads live in it; tcptwin kills the process group anyway.
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, SIGKILL)
    except Exception:  # noqa: BLE001
        pass
    adapter = Adapter()
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if req.get("op") == "finish":
            break
        try:
            reply = answer(adapter, req)
        except Exception as exc:  # noqa: BLE001 - setup failed: say so and stop
            PROTO.write(json.dumps({"error": f"setup: {type(exc).__name__}: {exc}"}) + "\n")
            PROTO.flush()
            sys.stderr.flush()
            os._exit(1)
        PROTO.write(json.dumps(reply) + "\n")
        PROTO.flush()
    # PyTCP's threads are not daemons and only stop through each subsystem's stop(),
    # which sleeps 0.1 s apiece: leave at once instead.
    sys.stderr.flush()
    PROTO.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
