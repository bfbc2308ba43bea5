"""A generated corpus of malformed INVITEs (field x anomaly), and sending it to a SIP port.

Every header and every SDP line of a well-formed INVITE is damaged in each of a set of ways
(overlong, empty, NUL, bad escapes, wrong types, truncations, ...); the request line and the
framing get their own cases. Deterministic: the same corpus every run, so a failure names a
case that can be sent again. Used by tests/test_hostile_sip.py and `./run fuzz`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# A number no account has: each INVITE that gets through is refused (404) at once, so the
# corpus tests the parsers and the slot accounting without filling the pool with calls.
CALLEE = "+3225550000"


def invite(port: int, local_port: int, n: int, callee: str = CALLEE) -> tuple[list[str], str]:
    """(request line + headers, SDP) of a well-formed INVITE; `n` makes its ids unique."""
    branch = f"z9hG4bKfz{n}x{time.monotonic_ns()}"
    headers = [
        f"INVITE sip:{callee}@127.0.0.1:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:+32470000001@127.0.0.1>;tag=fz{n}",
        f"To: <sip:{callee}@127.0.0.1>",
        f"Call-ID: fuzz-{n}-{time.monotonic_ns()}@127.0.0.1",
        "CSeq: 1 INVITE",
        f"Contact: <sip:fuzz@127.0.0.1:{local_port}>",
        "Content-Type: application/sdp",
        "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS",
        "Supported: replaces, timer",
        "User-Agent: fuzz",
    ]
    sdp = "\r\n".join(
        [
            "v=0",
            f"o=fuzz {n} 1 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            f"m=audio {40000 + 2 * (n % 1000)} RTP/AVP 8 0 101",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "a=sendrecv",
        ]
    )
    return headers, sdp + "\r\n"


def _anomalies() -> list[tuple[str, Callable[[str, str], str]]]:
    """(name, f(name part, value part) -> new value)."""

    def keep(_k: str, v: str) -> str:
        return v

    return [
        ("overlong-5000", lambda _k, v: v + "A" * 5000),
        ("overlong-1200", lambda _k, v: v + "9" * 1200),
        ("overlong-300", lambda _k, v: v + "x" * 300),
        ("empty", lambda _k, _v: ""),
        ("nul", lambda _k, v: v[: len(v) // 2] + "\0" + v[len(v) // 2 :]),
        ("bad-escape", lambda _k, v: v + "%zz%4"),
        ("percent-nul", lambda _k, v: v.replace("@", "%00@") if "@" in v else v + "%00"),
        ("negative", lambda _k, _v: "-1"),
        ("huge-number", lambda _k, _v: "99999999999999999999999999"),
        ("word-for-number", lambda _k, _v: "seventy"),
        ("truncated", lambda _k, v: v[: max(1, len(v) // 3)]),
        ("only-spaces", lambda _k, _v: "   "),
        ("crlf-in-value", lambda _k, v: v + "\r\n\r\nINVITE sip:x@y SIP/2.0"),
        ("unicode", lambda _k, v: v + "\u202e\ufeff\U0001f4de"),
        ("binary", lambda _k, v: v + "\x01\x02\x7f\x1b[31m"),
        ("angle-unbalanced", lambda _k, v: "<" + v),
        ("quotes-unbalanced", lambda _k, v: '"' + v),
        ("many-params", lambda _k, v: v + "".join(f";p{i}={i}" for i in range(200))),
        ("semicolons", lambda _k, v: v + ";;;;;=;="),
        ("ipv6-garbage", lambda _k, v: v.replace("127.0.0.1", "[::ffff:zz]")),
        ("port-overflow", lambda _k, v: v.replace(":", ":99999", 1) if ":" in v else v),
        ("overlong-250", lambda _k, v: v + "b" * 250),
        ("overlong-260", lambda _k, v: v + "c" * 260),
        ("overlong-2000", lambda _k, v: v + "d" * 2000),
        ("overlong-3500", lambda _k, v: v + "e" * 3500),
        ("overlong-4100", lambda _k, v: v + "f" * 4100),
        ("overlong-9000", lambda _k, v: v + "g" * 9000),
        ("tab", lambda _k, v: v.replace(" ", "\t") + "\t"),
        ("leading-comma", lambda _k, v: ", , " + v),
        ("nested-brackets", lambda _k, v: "<" * 50 + v + ">" * 50),
        ("other-scheme", lambda _k, v: v.replace("sip:", "xyz:") if "sip:" in v else "tel:" + v),
        ("sql", lambda _k, v: v + "' OR 1=1--"),
        ("format-string", lambda _k, v: v + "%s%s%n%x%d"),
        ("same", keep),  # the header repeated (see below), value unchanged
    ]


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes


def _assemble(headers: list[str], sdp: str, content_length: int | None = None) -> bytes:
    body = sdp.encode("utf-8", "surrogatepass")
    length = len(body) if content_length is None else content_length
    head = "\r\n".join([*headers, f"Content-Length: {length}"]) + "\r\n\r\n"
    return head.encode("utf-8", "surrogatepass") + body


def corpus(port: int, local_port: int) -> Iterator[Case]:
    """At least 2,000 malformed INVITEs for the SIP port `port`, replies to `local_port`."""
    n = 0
    anomalies = _anomalies()
    base_headers, base_sdp = invite(port, local_port, 0)
    # Every header (request line included) x every anomaly x where it hits: the value, the
    # name (the method, for the request line), or a parameter added to the value.
    for index in range(len(base_headers)):
        for name, damage in anomalies:
            for where in ("value", "name", "param"):
                if name == "same" and where != "value":
                    continue
                n += 1
                headers, sdp = invite(port, local_port, n)
                line = headers[index]
                if index == 0:
                    method, _, rest = line.partition(" ")
                    uri, _, version = rest.rpartition(" ")
                    if where == "value":
                        uri = damage("uri", uri)
                    elif where == "name":
                        method = damage("method", method)
                    else:
                        uri += ";x=" + damage("x", "v")
                    headers[0] = f"{method} {uri} {version}"
                else:
                    key, _, value = line.partition(": ")
                    if name == "same":
                        headers.insert(index, line)
                    elif where == "value":
                        headers[index] = f"{key}: {damage(key, value)}"
                    elif where == "name":
                        headers[index] = f"{damage(key, key)}: {value}"
                    else:
                        headers[index] = f"{key}: {value};x={damage('x', 'v')}"
                label = line.split(":")[0].split(" ")[0]
                yield Case(f"{label}/{where}/{name}", _assemble(headers, sdp))
    # Every SDP line x every anomaly, on the whole value, the type letter or one field.
    sdp_lines = base_sdp.rstrip("\r\n").split("\r\n")
    for index in range(len(sdp_lines)):
        for name, damage in anomalies:
            for where in ("value", "name", "field"):
                if name == "same" and where != "value":
                    continue
                n += 1
                headers, sdp = invite(port, local_port, n)
                lines = sdp.rstrip("\r\n").split("\r\n")
                key, _, value = lines[index].partition("=")
                if name == "same":
                    lines.insert(index, lines[index])
                elif where == "value":
                    lines[index] = f"{key}={damage(key, value)}"
                elif where == "name":
                    lines[index] = f"{damage(key, key)}={value}"
                else:
                    fields = value.split(" ")
                    fields[-1] = damage(key, fields[-1])
                    lines[index] = f"{key}={' '.join(fields)}"
                yield Case(
                    f"sdp-{key}/{where}/{name}", _assemble(headers, "\r\n".join(lines) + "\r\n")
                )
    # Framing: Content-Length lies, truncated datagrams, missing pieces.
    for name, cl in (("cl-short", 10), ("cl-long", 5000), ("cl-negative", -5), ("cl-zero", 0)):
        for _ in range(5):
            n += 1
            headers, sdp = invite(port, local_port, n)
            yield Case(f"framing/{name}", _assemble(headers, sdp, cl))
    whole = _assemble(*invite(port, local_port, n + 1))
    for cut in range(20, len(whole), max(1, len(whole) // 40)):
        n += 1
        yield Case(f"framing/truncated-at-{cut}", whole[:cut])
    for index in range(1, len(base_headers)):
        n += 1
        headers, sdp = invite(port, local_port, n)
        missing = headers.pop(index).split(":")[0]
        yield Case(f"framing/missing-{missing}", _assemble(headers, sdp))
    for name, data in (
        ("lf-only", _assemble(*invite(port, local_port, n + 2)).replace(b"\r\n", b"\n")),
        (
            "no-blank-line",
            _assemble(*invite(port, local_port, n + 3)).replace(b"\r\n\r\n", b"\r\n"),
        ),
        ("garbage", bytes(range(256)) * 4),
        ("empty-datagram", b"\r\n\r\n"),
    ):
        yield Case(f"framing/{name}", data)


@dataclass
class FuzzReport:
    sent: int = 0
    answered: int = 0
    server_errors: int = 0  # 5xx answers other than 503 from a full or draining node
    by_status: dict[str, int] | None = None


# The headers and SDP lines whose damage once left worker slots taken at the edge (Request-URI,
# Via, Call-ID, CSeq, Contact, SDP connection and media lines) and the framing cases: every
# case of these is in the test suite's subset (tests/test_hostile_sip.py), about 780.
REPRESENTATIVE = (
    "INVITE/",
    "Via/",
    "Call-ID/",
    "CSeq/",
    "Contact/",
    "sdp-c/",
    "sdp-m/",
    "framing/",
)


def representative(case: Case) -> bool:
    return case.name.startswith(REPRESENTATIVE)


def send_corpus(
    port: int,
    cases: Iterator[Case] | None = None,
    *,
    pace: float = 0.002,
    src: str = "127.0.0.1",
    select: Callable[[Case], bool] | None = None,
) -> FuzzReport:
    """Send every case from one UDP socket; collect the first line of whatever comes back,
    ACK nothing (a real attacker does not either). Paced so the edge's flood limit does not
    decide the outcome for the later cases (loopback is exempt from pike anyway)."""
    report = FuzzReport(by_status={})
    assert report.by_status is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((src, 0))
        sock.setblocking(False)
        local_port = sock.getsockname()[1]
        for case in cases if cases is not None else corpus(port, local_port):
            if select is not None and not select(case):
                continue
            try:
                sock.sendto(case.data[:65000], (src if src != "0.0.0.0" else "127.0.0.1", port))
            except OSError:
                continue
            report.sent += 1
            time.sleep(pace)
            _drain(sock, report)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            _drain(sock, report)
            time.sleep(0.05)
    return report


def _drain(sock: socket.socket, report: FuzzReport) -> None:
    assert report.by_status is not None
    while True:
        try:
            data = sock.recv(65535)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        first = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        parts = first.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("SIP/2.0"):
            continue
        status = parts[1]
        report.answered += 1
        report.by_status[status] = report.by_status.get(status, 0) + 1
        if status.startswith("5") and status != "503":
            report.server_errors += 1
