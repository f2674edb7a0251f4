#!/usr/bin/python3
"""
An independent HTTP/2 peer for the conformance suite (test/http2/conformance.test.ts).

It drives the gateway's h2c listener at the frame level with Debian's python3-h2 stack (hyperframe builds and
parses frames, hpack encodes and decodes header blocks), so the engine under test is checked against an
implementation it shares no code with. Malformed frames, which hyperframe refuses to build, are written as raw
bytes. Each case opens its own connection, sends what its RFC requirement is about, then synchronises with a PING
(everything the engine answered to the case comes before the PING's ACK, since it processes frames in order) and,
when the connection is still up, makes one ordinary gRPC call on it (the "probe"). Expectations live in the
TypeScript test; this script only reports what came back.

Usage:  /usr/bin/python3 h2-peer.py --list
        echo '{"host": "127.0.0.1", "port": 9081, "cases": ["name", ...] | null, "hold_path": "/..."}' | h2-peer.py
Output: JSON on stdout: {"results": {case name: report}}; a report is
        {"frames": [{phase, type, flags, stream, ...}], "marks": {label: frame index}, "closed": bool,
         "probe": {"stream", "status", "grpc_status", "rst", "goaway"} | null, "error": str | null, "ms": int}
"""
import json
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from hpack import Decoder, Encoder
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    ExtensionFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ERROR_NAMES = {
    0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR", 0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED", 0x6: "FRAME_SIZE_ERROR", 0x7: "REFUSED_STREAM",
    0x8: "CANCEL", 0x9: "COMPRESSION_ERROR", 0xA: "CONNECT_ERROR", 0xB: "ENHANCE_YOUR_CALM",
    0xC: "INADEQUATE_SECURITY", 0xD: "HTTP_1_1_REQUIRED",
}
TYPE_NAMES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS", 5: "PUSH_PROMISE",
              6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE", 9: "CONTINUATION"}
# Frame types by number, for raw frames.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
SAY_HELLO = "/helloworld.Greeter/SayHello"
SYNC_TIMEOUT = 3.0
STREAM_TIMEOUT = 5.0
HOLD_PATH = "/conformance.Hold/Call"


# ---- encoding helpers ---------------------------------------------------------------------------------------------

def raw_frame(ftype, flags, stream, payload=b""):
    """A frame as bytes, whatever its content (RFC 9113 §4.1): for the malformed ones."""
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def hpack_int(value, prefix_bits, pattern):
    """RFC 7541 §5.1."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([pattern | value])
    out = [pattern | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_str(data, huffman=False):
    """RFC 7541 §5.2, raw or Huffman-coded."""
    if isinstance(data, str):
        data = data.encode("latin1")
    if huffman:
        data = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode(data)
        return hpack_int(len(data), 7, 0x80) + data
    return hpack_int(len(data), 7, 0x00) + data


def literal(name, value, huffman=False):
    """Literal header field without indexing, new name (RFC 7541 §6.2.2): leaves the dynamic table alone, so a
    block of these can be sent any number of times and the peers' tables stay in step."""
    return b"\x00" + hpack_str(name, huffman) + hpack_str(value, huffman)


def literal_block(headers, huffman=False):
    return b"".join(literal(n, v, huffman) for n, v in headers)


def grpc_message(payload):
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def hello_request(name):
    """helloworld.HelloRequest {name}: field 1, length-delimited."""
    data = name.encode() if isinstance(name, str) else name
    length = len(data)
    varint = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        varint.append(byte | (0x80 if length else 0))
        if not length:
            break
    return grpc_message(b"\x0a" + bytes(varint) + data)


def request_headers(path=SAY_HELLO, extra=()):
    return [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "conformance"),
            ("content-type", "application/grpc"), ("te", "trailers")] + list(extra)


# ---- the peer -----------------------------------------------------------------------------------------------------

class Closed(Exception):
    pass


class Peer:
    def __init__(self, host, port, hold_path):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.hold_path = hold_path
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.buffer = b""
        self.frames = []
        self.marks = {}
        self.phase = "handshake"
        self.closed = False
        self.highest = 0
        self.block = None  # (record, stream, fragments) of a header block in progress from the server
        self.auto_window = True
        self.conn_owed = 0
        self.stream_owed = {}
        self.ping_count = 0

    # -- sending --
    def send(self, data):
        if isinstance(data, Frame):
            data = data.serialize()
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def use(self, stream):
        self.highest = max(self.highest, stream)
        return stream

    def next_stream(self):
        return self.use(self.highest + 2 if self.highest else 1)

    def frames_for_block(self, stream, block, end_stream, max_size=16384, extra_flags=0):
        """HEADERS (+ CONTINUATION) carrying `block`, cut at max_size."""
        out = []
        chunks = [block[i:i + max_size] for i in range(0, len(block), max_size)] or [b""]
        for i, chunk in enumerate(chunks):
            flags = END_HEADERS if i == len(chunks) - 1 else 0
            if i == 0:
                flags |= (END_STREAM if end_stream else 0) | extra_flags
                out.append(raw_frame(HEADERS, flags, stream, chunk))
            else:
                out.append(raw_frame(CONTINUATION, flags, stream, chunk))
        return b"".join(out)

    def encode(self, headers):
        return self.encoder.encode(headers)

    def headers(self, stream, headers, end_stream=False, block=None):
        """HEADERS with our HPACK encoder (dynamic table in step with the gateway's), or a given block."""
        self.use(stream)
        self.send(self.frames_for_block(stream, self.encode(headers) if block is None else block, end_stream))

    def data(self, stream, payload, end_stream=False, flags=0):
        self.send(raw_frame(DATA, flags | (END_STREAM if end_stream else 0), stream, payload))

    def request(self, stream=None, name="conformance", path=SAY_HELLO, extra=(), end=True):
        """An ordinary unary gRPC call: HEADERS, then the message with END_STREAM."""
        stream = stream or self.next_stream()
        self.headers(stream, request_headers(path, extra))
        if end:
            self.data(stream, hello_request(name), end_stream=True)
        return stream

    def mark(self, label):
        self.marks[label] = len(self.frames)

    # -- receiving --
    def read_frame(self, deadline):
        while True:
            if len(self.buffer) >= 9:
                length = int.from_bytes(self.buffer[:3], "big")
                if len(self.buffer) >= 9 + length:
                    header, body = self.buffer[:9], self.buffer[9:9 + length]
                    self.buffer = self.buffer[9 + length:]
                    return self.on_frame(header, body)
            if self.closed:
                raise Closed()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError()
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError()
            except OSError:
                chunk = b""
            self.buffer += chunk
            if not chunk:
                self.closed = True
                if len(self.buffer) < 9:
                    raise Closed()

    def on_frame(self, header, body):
        ftype = header[3]
        flags = header[4]
        stream = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
        rec = {"phase": self.phase, "type": TYPE_NAMES.get(ftype, "0x%02x" % ftype), "flags": flags,
               "stream": stream, "length": len(body)}
        try:
            frame, _ = Frame.parse_frame_header(memoryview(header))
            frame.parse_body(memoryview(body))
        except Exception as err:  # a frame hyperframe finds malformed: report it as such
            rec["malformed"] = str(err)
            frame = None
        if isinstance(frame, DataFrame):
            rec["data_length"] = len(frame.data)
            self.owe(stream, frame.flow_controlled_length)
        elif isinstance(frame, (HeadersFrame, ContinuationFrame)):
            if isinstance(frame, HeadersFrame):
                self.block = (rec, stream, [bytes(frame.data)])
                rec["block_first_byte"] = frame.data[0] if len(frame.data) else None
            elif self.block is not None:
                self.block[2].append(bytes(frame.data))
            if flags & END_HEADERS and self.block is not None:
                first, _, parts = self.block
                self.block = None
                try:
                    first["headers"] = [[n, v] for n, v in self.decoder.decode(b"".join(parts), raw=False)]
                except Exception as err:
                    first["hpack_error"] = repr(err)
        elif isinstance(frame, RstStreamFrame):
            rec["error"] = ERROR_NAMES.get(frame.error_code, frame.error_code)
        elif isinstance(frame, GoAwayFrame):
            rec["error"] = ERROR_NAMES.get(frame.error_code, frame.error_code)
            rec["last_stream"] = frame.last_stream_id
            rec["debug"] = bytes(frame.additional_data).decode("utf8", "replace")
        elif isinstance(frame, SettingsFrame):
            rec["settings"] = {str(k): v for k, v in frame.settings.items()}
            if not flags & ACK:
                self.send(raw_frame(SETTINGS, ACK, 0))
        elif isinstance(frame, PingFrame):
            rec["opaque"] = bytes(frame.opaque_data).hex()
        elif isinstance(frame, WindowUpdateFrame):
            rec["increment"] = frame.window_increment
        self.frames.append(rec)
        return rec

    def owe(self, stream, length):
        """Gives the gateway its DATA credit back (both windows), unless a flow-control case manages it."""
        if not self.auto_window or length == 0:
            return
        self.conn_owed += length
        self.stream_owed[stream] = self.stream_owed.get(stream, 0) + length
        if self.conn_owed >= 16384:
            self.send(raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self.conn_owed)))
            self.conn_owed = 0
        if self.stream_owed[stream] >= 16384:
            self.send(raw_frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", self.stream_owed[stream])))
            self.stream_owed[stream] = 0

    def collect(self, until, timeout=SYNC_TIMEOUT, label="collect"):
        """Reads frames until `until(frame)` is true; returns that frame, or None when the connection ended (a
        GOAWAY also ends it: the rest is read until the socket closes) or the time ran out."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                rec = self.read_frame(deadline)
                if until(rec):
                    return rec
                if rec["type"] == "GOAWAY" and rec.get("error") != "NO_ERROR":
                    self.drain(deadline)
                    return None
        except Closed:
            return None
        except TimeoutError:
            self.frames.append({"phase": self.phase, "type": "TIMEOUT", "flags": 0, "stream": -1, "length": 0, "label": label})
            return None

    def drain(self, deadline):
        """After an error GOAWAY: read to the end, to see the connection close."""
        try:
            while True:
                self.read_frame(min(deadline, time.monotonic() + 1.5))
        except (Closed, TimeoutError):
            pass

    def handshake(self, settings=None, send_preface=True):
        """Preface and SETTINGS (RFC 9113 §3.4), then wait for the gateway's SETTINGS (ACKed by on_frame)."""
        if send_preface:
            self.send(PREFACE + SettingsFrame(0, settings=settings or {}).serialize())
        self.collect(lambda f: f["type"] == "SETTINGS" and not f["flags"] & ACK, label="server SETTINGS")
        self.phase = "case"

    def sync(self, label="sync"):
        """PING and wait for its ACK: everything the gateway wrote about earlier frames is in by then."""
        self.ping_count += 1
        opaque = b"sync%04d" % self.ping_count
        self.send(PingFrame(0, opaque_data=opaque))
        return self.collect(lambda f: f["type"] == "PING" and f["flags"] & ACK and f.get("opaque") == opaque.hex(),
                            label=label) is not None

    def wait_stream(self, stream, timeout=STREAM_TIMEOUT, label=None):
        """Until the stream ends (END_STREAM from the gateway, or RST_STREAM), or the connection does."""
        def ended(f):
            return f["stream"] == stream and (f["type"] == "RST_STREAM" or
                                              (f["type"] in ("DATA", "HEADERS") and f["flags"] & END_STREAM))
        return self.collect(ended, timeout, label or "stream %d" % stream)

    def stream_result(self, stream, since=0):
        """What one call got: :status, grpc-status, a reset code, DATA bytes."""
        status = grpc_status = rst = None
        data = 0
        for f in self.frames[since:]:
            if f["stream"] != stream:
                continue
            if f["type"] == "HEADERS":
                for n, v in f.get("headers", []):
                    if n == ":status":
                        status = int(v)
                    elif n == "grpc-status":
                        grpc_status = int(v)
            elif f["type"] == "RST_STREAM":
                rst = f["error"]
            elif f["type"] == "DATA":
                data += f["data_length"]
        return {"stream": stream, "status": status, "grpc_status": grpc_status, "rst": rst, "data": data}

    def goaway(self):
        for f in self.frames:
            if f["type"] == "GOAWAY":
                return f
        return None

    def probe(self, extra=()):
        """An ordinary call on the same connection: it must succeed after anything that was not a connection error."""
        self.phase = "probe"
        stream = self.request(extra=extra)
        since = len(self.frames)
        self.wait_stream(stream, label="probe")
        result = self.stream_result(stream, since)
        result["goaway"] = self.goaway() is not None
        return result

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---- the cases ----------------------------------------------------------------------------------------------------
# Each case sends what its requirement is about. It returns None (sync + probe follow) or a dict:
#   {"sync": False}   the case already waited for what it needed
#   {"probe": False}  no ordinary call afterwards (the case leaves the connection in a state where one cannot work)
#   {"probe_extra": [...]} extra request headers for the probe (HPACK table checks)

CASES = {}


def case(fn):
    CASES[fn.__name__.replace("_", "-")] = fn
    return fn


def wait_open_call(p, stream):
    """A call whose response is delayed, so its stream stays half-closed (remote) on the gateway for a while."""
    p.request(stream, extra=[("x-greeter-delay-ms", "800")])


def hold_open(p, stream, path=SAY_HELLO):
    """HEADERS without END_STREAM: the upstream waits for the message, the stream stays open."""
    p.headers(stream, request_headers(path))


# §3 Starting HTTP/2 ---------------------------------------------------------------------------------------------

@case
def preface_valid(p):
    p.handshake()
    p.collect(lambda f: f["type"] == "SETTINGS" and f["flags"] & ACK, label="SETTINGS ACK")


@case
def preface_invalid(p):
    p.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + SettingsFrame(0).serialize())
    p.phase = "case"
    p.collect(lambda f: False, label="close")
    return {"sync": False, "probe": False}


@case
def preface_first_frame_not_settings(p):
    p.send(PREFACE + PingFrame(0, opaque_data=b"12345678").serialize())
    p.phase = "case"
    p.collect(lambda f: False, label="close")
    return {"sync": False}


@case
def preface_in_pieces(p):
    for i in range(len(PREFACE)):
        p.send(PREFACE[i:i + 1])
        time.sleep(0.002)
    p.send(SettingsFrame(0).serialize())
    p.handshake(send_preface=False)


# §4 Frames --------------------------------------------------------------------------------------------------------

@case
def frame_unknown_type_ignored(p):
    p.handshake()
    p.send(raw_frame(0xFE, 0, 0, b"ignored") + raw_frame(0xFE, 0xFF, 1, b"on an idle stream"))


@case
def frame_unknown_flags_ignored(p):
    p.handshake()
    p.send(raw_frame(PING, 0xFE, 0, b"flagged!"))
    p.collect(lambda f: f["type"] == "PING" and f["flags"] & ACK, label="PING ACK")
    # HEADERS: 0x2, 0x10, 0x40, 0x80 are undefined; DATA: everything but END_STREAM and PADDED.
    p.use(1)
    p.send(p.frames_for_block(1, p.encode(request_headers()), False, extra_flags=0x2 | 0x10 | 0x40 | 0x80))
    p.data(1, hello_request("x"), flags=END_STREAM | 0x2 | 0x4 | 0x10 | 0x20 | 0x40 | 0x80)
    p.wait_stream(1)


@case
def frame_reserved_bit_ignored(p):
    p.handshake()
    p.use(1)
    p.send(p.frames_for_block(1 | 0x80000000, p.encode(request_headers()), False))
    p.send(raw_frame(DATA, END_STREAM, 1 | 0x80000000, hello_request("r")))
    p.wait_stream(1)


@case
def frame_data_max_size_accepted(p):
    p.handshake()
    p.use(1)
    p.headers(1, request_headers())
    message = hello_request("m" * 16376)
    assert len(message) == 16384, len(message)
    p.data(1, message, end_stream=True)
    p.wait_stream(1)


@case
def frame_response_respects_max_frame_size(p):
    p.handshake()
    p.use(1)
    p.headers(1, request_headers())
    message = hello_request("b" * 20000)
    p.data(1, message[:16384])
    p.data(1, message[16384:], end_stream=True)
    p.wait_stream(1)


@case
def frame_data_too_large(p):
    p.handshake()
    p.use(1)
    p.headers(1, request_headers())
    p.data(1, b"\x00" * 16385, end_stream=True)


@case
def frame_headers_too_large(p):
    p.handshake()
    p.use(1)
    block = p.encode(request_headers()) + literal("x-pad", "p" * 16400)
    p.send(raw_frame(HEADERS, END_HEADERS | END_STREAM, 1, block))


@case
def frame_settings_too_large(p):
    p.handshake()
    p.send(raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 0xF0, 1) * 2731))  # 16386 octets


@case
def frame_invalid_header_block(p):
    p.handshake()
    p.use(1)
    # A literal whose name claims 100 octets in a 5-octet block.
    p.send(raw_frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x00\x64abc"))


@case
def frame_priority_inside_header_block(p):
    p.handshake()
    block = p.encode(request_headers())
    p.use(1)
    p.send(raw_frame(HEADERS, 0, 1, block[:5]) + PriorityFrame(1, depends_on=0, stream_weight=16).serialize() +
           raw_frame(CONTINUATION, END_HEADERS, 1, block[5:]))


@case
def frame_headers_other_stream_inside_header_block(p):
    p.handshake()
    block = p.encode(request_headers())
    p.use(3)
    p.send(raw_frame(HEADERS, 0, 1, block[:5]) + raw_frame(HEADERS, END_HEADERS | END_STREAM, 3, block))


# §5 Streams and multiplexing ------------------------------------------------------------------------------------

@case
def stream_idle_data(p):
    p.handshake()
    p.data(1, hello_request("idle"), end_stream=True)


@case
def stream_idle_rst_stream(p):
    p.handshake()
    p.send(RstStreamFrame(1, error_code=8).serialize())


@case
def stream_idle_window_update(p):
    p.handshake()
    p.send(WindowUpdateFrame(1, window_increment=100).serialize())


@case
def stream_idle_continuation(p):
    p.handshake()
    p.send(raw_frame(CONTINUATION, END_HEADERS, 1, p.encode(request_headers())))


@case
def stream_half_closed_remote_data(p):
    p.handshake()
    wait_open_call(p, 1)
    p.data(1, hello_request("late"), end_stream=True)


@case
def stream_half_closed_remote_headers(p):
    p.handshake()
    wait_open_call(p, 1)
    p.headers(1, [("x-trailer", "late")], end_stream=True)


@case
def stream_closed_by_peer_reset_data(p):
    p.handshake()
    hold_open(p, 1)
    p.sync("opened")
    p.send(RstStreamFrame(1, error_code=8).serialize())
    p.data(1, hello_request("after reset"))


@case
def stream_closed_by_peer_reset_headers(p):
    p.handshake()
    hold_open(p, 1)
    p.sync("opened")
    p.send(RstStreamFrame(1, error_code=8).serialize())
    p.headers(1, [("x-trailer", "after reset")], end_stream=True)


@case
def stream_closed_data(p):
    p.handshake()
    p.request(1)
    p.wait_stream(1)
    p.mark("closed")
    p.data(1, hello_request("closed"), end_stream=True)


@case
def stream_closed_headers(p):
    p.handshake()
    p.request(1)
    p.wait_stream(1)
    p.mark("closed")
    p.headers(1, request_headers(), end_stream=True)


@case
def stream_id_even(p):
    p.handshake()
    p.use(2)
    p.headers(2, request_headers(), end_stream=True)


@case
def stream_id_decreasing(p):
    p.handshake()
    p.request(5)
    p.wait_stream(5)
    p.mark("opened 5")
    p.headers(3, request_headers(), end_stream=True)


@case
def stream_concurrency_refused(p):
    p.handshake()
    limit = next((f["settings"].get("3") for f in p.frames if f["type"] == "SETTINGS" and "settings" in f), None)
    p.marks["limit"] = limit
    for i in range(limit):
        hold_open(p, 1 + 2 * i)
    p.sync("opened")
    p.mark("over")
    over = 1 + 2 * limit
    p.headers(over, request_headers(), end_stream=True)
    p.sync("refused")
    p.mark("released")
    for i in range(limit):
        p.send(RstStreamFrame(1 + 2 * i, error_code=8).serialize())


@case
def stream_headers_self_dependency(p):
    p.handshake()
    p.use(1)
    block = p.encode(request_headers())
    p.send(raw_frame(HEADERS, END_HEADERS | END_STREAM | PRIORITY_FLAG, 1, struct.pack(">IB", 1, 15) + block))


@case
def stream_priority_self_dependency(p):
    p.handshake()
    hold_open(p, 1)
    p.send(PriorityFrame(1, depends_on=1, stream_weight=16).serialize())


@case
def stream_priority_on_idle_ignored(p):
    p.handshake()
    p.send(PriorityFrame(3, depends_on=0, stream_weight=200).serialize())
    p.send(PriorityFrame(7, depends_on=3, stream_weight=1, exclusive=True).serialize())
    p.request(3)
    p.wait_stream(3)


@case
def stream_reset_by_peer_then_continue(p):
    p.handshake()
    hold_open(p, 1)
    p.sync("opened")
    p.send(RstStreamFrame(1, error_code=8).serialize())


@case
def stream_connection_error_closes(p):
    p.handshake()
    p.send(raw_frame(PING, 0, 0, b"123456"))
    p.collect(lambda f: False, label="close")
    return {"sync": False}


@case
def stream_unknown_frame_inside_header_block(p):
    p.handshake()
    block = p.encode(request_headers())
    p.use(1)
    p.send(raw_frame(HEADERS, 0, 1, block[:5]) + raw_frame(0xFE, 0, 1, b"ext") +
           raw_frame(CONTINUATION, END_HEADERS, 1, block[5:]))


@case
def stream_many_sequential_calls(p):
    """Stream ids climb: 20 calls one after the other on one connection all succeed."""
    p.handshake()
    for _ in range(20):
        p.wait_stream(p.request())


# §6 Frame definitions -------------------------------------------------------------------------------------------

@case
def data_stream_zero(p):
    p.handshake()
    p.data(0, b"zero")


@case
def data_invalid_pad_length(p):
    p.handshake()
    p.use(1)
    p.headers(1, request_headers())
    p.data(1, b"\x08abcd", end_stream=True, flags=PADDED)  # 8 octets of padding in a 5-octet frame


@case
def data_padded_accepted(p):
    p.handshake()
    p.use(1)
    p.headers(1, request_headers())
    message = hello_request("padded")
    p.data(1, bytes([20]) + message + b"\x00" * 20, end_stream=True, flags=PADDED)
    p.wait_stream(1)


@case
def headers_stream_zero(p):
    p.handshake()
    p.send(raw_frame(HEADERS, END_HEADERS | END_STREAM, 0, literal_block(request_headers())))


@case
def headers_invalid_pad_length(p):
    p.handshake()
    p.use(1)
    block = literal_block(request_headers())
    p.send(raw_frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 1, bytes([len(block) + 1]) + block))


@case
def headers_padded_with_priority_accepted(p):
    p.handshake()
    p.use(1)
    block = p.encode(request_headers())
    payload = bytes([7]) + struct.pack(">IB", 0x80000000 | 0, 31) + block + b"\x00" * 7
    p.send(raw_frame(HEADERS, END_HEADERS | PADDED | PRIORITY_FLAG, 1, payload))
    p.data(1, hello_request("p"), end_stream=True)
    p.wait_stream(1)


@case
def headers_priority_too_short(p):
    p.handshake()
    p.use(1)
    p.send(raw_frame(HEADERS, END_HEADERS | END_STREAM | PRIORITY_FLAG, 1, b"\x00\x00\x00"))


@case
def priority_stream_zero(p):
    p.handshake()
    p.send(raw_frame(PRIORITY, 0, 0, struct.pack(">IB", 1, 16)))


@case
def priority_bad_length(p):
    p.handshake()
    hold_open(p, 1)
    p.send(raw_frame(PRIORITY, 0, 1, struct.pack(">IBB", 0, 16, 0)))


@case
def priority_on_open_stream_ignored(p):
    p.handshake()
    p.use(1)
    p.headers(1, request_headers())
    p.send(PriorityFrame(1, depends_on=0, stream_weight=255).serialize())
    p.data(1, hello_request("prio"), end_stream=True)
    p.wait_stream(1)


@case
def rst_stream_zero(p):
    p.handshake()
    p.send(raw_frame(RST_STREAM, 0, 0, struct.pack(">I", 8)))


@case
def rst_stream_bad_length(p):
    p.handshake()
    hold_open(p, 1)
    p.send(raw_frame(RST_STREAM, 0, 1, struct.pack(">IB", 8, 0)))


@case
def settings_ack_with_payload(p):
    p.handshake()
    p.send(raw_frame(SETTINGS, ACK, 0, struct.pack(">HI", 3, 100)))


@case
def settings_on_stream(p):
    p.handshake()
    p.send(raw_frame(SETTINGS, 0, 1, struct.pack(">HI", 3, 100)))


@case
def settings_bad_length(p):
    p.handshake()
    p.send(raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 3, 100) + b"\x00\x00\x00"))


@case
def settings_acknowledged(p):
    p.handshake()
    p.sync("preface acknowledged")
    p.mark("sent")
    p.send(SettingsFrame(0, settings={3: 100, 6: 1 << 20}).serialize())


@case
def settings_enable_push_invalid(p):
    p.handshake()
    p.send(raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 2, 2)))


@case
def settings_enable_push_one_accepted(p):
    p.handshake()
    p.send(raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 2, 1)))


@case
def settings_initial_window_too_large(p):
    p.handshake()
    p.send(raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 0x80000000)))


@case
def settings_max_frame_size_too_small(p):
    p.handshake()
    p.send(raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 5, 16383)))


@case
def settings_max_frame_size_too_large(p):
    p.handshake()
    p.send(raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 5, 1 << 24)))


@case
def settings_unknown_ignored(p):
    p.handshake()
    p.send(raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 0xFF, 12345) + struct.pack(">HI", 0x4242, 0xFFFFFFFF)))


def restore_window(p):
    """Back to the default stream window and automatic credit, for the probe."""
    p.auto_window = True
    p.send(raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 65535)))


@case
def settings_values_in_order(p):
    """Two INITIAL_WINDOW_SIZE values in one frame: the last (1) wins, so response DATA comes one octet a frame."""
    p.auto_window = False
    p.handshake()
    p.send(raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 100) + struct.pack(">HI", 4, 1)))
    p.sync("settings")
    p.mark("request")
    stream = p.request()
    p.collect(lambda f: f["type"] == "DATA" and f["stream"] == stream, label="first DATA")
    p.sync("after first DATA")
    p.mark("open window")
    p.send(WindowUpdateFrame(stream, window_increment=1 << 20).serialize())
    p.wait_stream(stream)
    restore_window(p)


@case
def settings_header_table_size_zero(p):
    """We allow no dynamic table for the gateway's responses: its encoder must say so (RFC 7541 §4.2) and never
    index; our decoder refuses anything else."""
    p.decoder.max_allowed_table_size = 0
    p.handshake(settings={1: 0})
    p.sync("acked")
    p.mark("calls")
    for _ in range(3):
        p.wait_stream(p.request())


@case
def ping_ack_echoes_payload(p):
    p.handshake()
    p.mark("ping")
    p.send(PingFrame(0, opaque_data=b"\x01\x02\x03\x04\xfe\xfd\xfc\xfb").serialize())


@case
def ping_ack_not_answered(p):
    p.handshake()
    p.mark("ping")
    p.send(PingFrame(0, opaque_data=b"ackack!!", flags=["ACK"]).serialize())


@case
def ping_on_stream(p):
    p.handshake()
    p.send(raw_frame(PING, 0, 1, b"12345678"))


@case
def ping_bad_length(p):
    p.handshake()
    p.send(raw_frame(PING, 0, 0, b"1234567"))


@case
def goaway_on_stream(p):
    p.handshake()
    p.send(raw_frame(GOAWAY, 0, 1, struct.pack(">II", 0, 0)))


@case
def goaway_in_flight_completes(p):
    p.handshake()
    wait_open_call(p, 1)
    p.send(GoAwayFrame(0, last_stream_id=0, error_code=0).serialize())
    p.wait_stream(1)
    return {"probe": False}


@case
def goaway_bad_length(p):
    p.handshake()
    p.send(raw_frame(GOAWAY, 0, 0, b"\x00\x00\x00\x00"))


@case
def window_update_zero_connection(p):
    p.handshake()
    p.send(raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)))


@case
def window_update_zero_stream(p):
    p.handshake()
    wait_open_call(p, 1)
    p.send(raw_frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0)))


@case
def window_update_bad_length(p):
    p.handshake()
    p.send(raw_frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01"))


@case
def window_update_reserved_bit_ignored(p):
    p.handshake()
    p.send(raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x80000001)))


@case
def window_update_overflow_connection(p):
    p.handshake()
    p.send(WindowUpdateFrame(0, window_increment=0x7FFFFFFF).serialize())


@case
def window_update_overflow_stream(p):
    p.handshake()
    wait_open_call(p, 1)
    p.send(WindowUpdateFrame(1, window_increment=0x7FFFFFFF).serialize())


@case
def window_update_overflow_stream_stepwise(p):
    p.handshake()
    wait_open_call(p, 1)
    p.send(WindowUpdateFrame(1, window_increment=0x40000000).serialize())
    p.send(WindowUpdateFrame(1, window_increment=0x40000000).serialize())


@case
def flow_data_beyond_stream_window(p):
    """The call's upstream never answers (a silent TCP server), so the gateway credits at most what the upstream's
    initial windows let it forward (65,535): 9 × 16 KiB passes the 65,535-octet stream window plus that credit."""
    p.handshake()
    p.use(1)
    p.headers(1, request_headers(p.hold_path))
    body = grpc_message(b"\x00" * (9 * 16384 - 5))
    for i in range(9):
        p.data(1, body[i * 16384:(i + 1) * 16384])


@case
def flow_window_respected(p):
    """SETTINGS_INITIAL_WINDOW_SIZE 0: no DATA until we open the window, then exactly what we allowed."""
    p.auto_window = False
    p.handshake(settings={4: 0})
    p.sync("settings")
    stream = p.request(name="w" * 100)
    p.collect(lambda f: f["type"] == "HEADERS" and f["stream"] == stream, label="response HEADERS")
    time.sleep(0.15)  # the upstream's message reaches the gateway, which must hold it
    p.sync("held")
    p.mark("one")
    p.send(WindowUpdateFrame(stream, window_increment=7).serialize())
    p.collect(lambda f: f["type"] == "DATA" and f["stream"] == stream, label="DATA after +7")
    p.sync("seven")
    p.mark("settings up")
    # §6.9.2: raising INITIAL_WINDOW_SIZE raises the open stream's window by the difference (0 → 10: 10 more).
    p.send(raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 10)))
    p.collect(lambda f: f["type"] == "DATA" and f["stream"] == stream, label="DATA after +10")
    p.sync("ten")
    p.mark("rest")
    p.send(WindowUpdateFrame(stream, window_increment=1 << 20).serialize())
    p.wait_stream(stream)
    restore_window(p)


@case
def flow_negative_window(p):
    """§6.9.2: lowering INITIAL_WINDOW_SIZE below what was used makes the window negative; DATA resumes only
    once WINDOW_UPDATE brings it above zero."""
    p.auto_window = False
    p.handshake(settings={4: 3})
    p.sync("settings")
    stream = p.request(name="n" * 100)
    p.collect(lambda f: f["type"] == "DATA" and f["stream"] == stream, label="first DATA")
    p.sync("used three")
    p.mark("lowered")
    # 1 − 3 = −2; +2 → 0 (nothing may come); +1 → 1 (one octet).
    p.send(raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 1)))
    p.send(WindowUpdateFrame(stream, window_increment=2).serialize())
    p.sync("zero")
    p.mark("plus one")
    p.send(WindowUpdateFrame(stream, window_increment=1).serialize())
    p.collect(lambda f: f["type"] == "DATA" and f["stream"] == stream, label="DATA after +1")
    p.sync("one")
    p.mark("rest")
    p.send(WindowUpdateFrame(stream, window_increment=1 << 20).serialize())
    p.wait_stream(stream)
    restore_window(p)


@case
def continuation_many_frames(p):
    p.handshake()
    p.use(1)
    block = p.encode(request_headers())
    frames = raw_frame(HEADERS, 0, 1, block[:3])
    rest = block[3:]
    while rest:
        chunk, rest = rest[:4], rest[4:]
        frames += raw_frame(CONTINUATION, 0 if rest else END_HEADERS, 1, chunk)
    p.send(frames)
    p.data(1, hello_request("c"), end_stream=True)
    p.wait_stream(1)


@case
def continuation_split_at_every_byte(p):
    """One request block (Huffman strings, multi-octet integers, no indexing, so it is the same block every time)
    cut at every octet into HEADERS + CONTINUATION, and once into one-octet frames: every call succeeds."""
    p.handshake()
    # Raw strings, Huffman strings, and a raw value with a 2-octet length (x-long).
    headers = request_headers()
    block = (literal_block(headers[:4]) +
             literal_block(headers[4:] + [("x-huff", "conformance-huffman-value")], huffman=True) +
             literal_block([("x-long", "v" * 130)]))
    cuts = [[k] for k in range(1, len(block))] + [list(range(1, len(block)))]
    p.marks["block_length"] = len(block)
    streams = []
    for batch in range(0, len(cuts), 8):
        batch_streams = []
        for points in cuts[batch:batch + 8]:
            stream = p.next_stream()
            pieces = [block[a:b] for a, b in zip([0] + points, points + [len(block)])]
            out = raw_frame(HEADERS, 0, stream, pieces[0])
            for i, piece in enumerate(pieces[1:]):
                out += raw_frame(CONTINUATION, END_HEADERS if i == len(pieces) - 2 else 0, stream, piece)
            p.send(out + raw_frame(DATA, END_STREAM, stream, hello_request("split")))
            batch_streams.append(stream)
        for stream in batch_streams:
            if not any(f["stream"] == stream and (f["type"] == "RST_STREAM" or f["flags"] & END_STREAM and
                                                  f["type"] in ("DATA", "HEADERS")) for f in p.frames):
                p.wait_stream(stream)
        streams += batch_streams
    p.marks["streams"] = streams


@case
def continuation_followed_by_data(p):
    p.handshake()
    p.use(1)
    block = p.encode(request_headers())
    p.send(raw_frame(HEADERS, 0, 1, block[:4]) + raw_frame(CONTINUATION, 0, 1, block[4:8]) +
           raw_frame(DATA, 0, 1, hello_request("x")))


@case
def continuation_stream_zero(p):
    p.handshake()
    p.use(1)
    block = p.encode(request_headers())
    p.send(raw_frame(HEADERS, 0, 1, block[:4]) + raw_frame(CONTINUATION, END_HEADERS, 0, block[4:]))


@case
def continuation_other_stream(p):
    p.handshake()
    p.use(3)
    block = p.encode(request_headers())
    p.send(raw_frame(HEADERS, 0, 1, block[:4]) + raw_frame(CONTINUATION, END_HEADERS, 3, block[4:]))


@case
def continuation_after_end_headers(p):
    p.handshake()
    p.use(1)
    block = p.encode(request_headers())
    p.send(raw_frame(HEADERS, END_HEADERS, 1, block) + raw_frame(CONTINUATION, END_HEADERS, 1, literal("x-a", "b")))


@case
def continuation_after_continuation_end_headers(p):
    p.handshake()
    p.use(1)
    block = p.encode(request_headers())
    p.send(raw_frame(HEADERS, 0, 1, block[:4]) + raw_frame(CONTINUATION, END_HEADERS, 1, block[4:]) +
           raw_frame(CONTINUATION, END_HEADERS, 1, literal("x-a", "b")))


@case
def continuation_after_data(p):
    p.handshake()
    p.use(1)
    p.headers(1, request_headers())
    p.data(1, hello_request("x"))
    p.send(raw_frame(CONTINUATION, END_HEADERS, 1, literal("x-a", "b")))


@case
def header_list_too_large(p):
    """A header list above our SETTINGS_MAX_HEADER_LIST_SIZE is refused for its stream alone; the block is still
    decoded, so the entry indexed after the big field is in the gateway's table for the probe that references it."""
    p.handshake()
    limit = next((f["settings"].get("6") for f in p.frames if f["type"] == "SETTINGS" and "settings" in f), 32768)
    p.marks["limit"] = limit
    p.use(1)
    p.headers(1, request_headers(extra=[("x-big", "b" * (limit + 1000)), ("x-sync", "in-table")]), end_stream=True)
    return {"probe_extra": [("x-sync", "in-table")]}


# §7 Error codes -------------------------------------------------------------------------------------------------

@case
def error_code_unknown_rst_stream(p):
    p.handshake()
    hold_open(p, 1)
    p.sync("opened")
    p.send(RstStreamFrame(1, error_code=0xFF).serialize())


@case
def error_code_unknown_goaway(p):
    p.handshake()
    p.send(GoAwayFrame(0, last_stream_id=0, error_code=0xFF).serialize())
    return {"probe": False}


# §8 HTTP semantics ----------------------------------------------------------------------------------------------

def malformed(extra_before=(), extra_after=(), replace=None, drop=(), body=True, content_length=None):
    """A case sending one request with its header list changed (raw literal block: the table is untouched)."""
    def run(p):
        p.handshake()
        headers = [h for h in request_headers() if h[0] not in drop]
        if replace:
            headers = [(n, replace.get(n, v)) for n, v in headers]
        headers = list(extra_before) + headers + list(extra_after)
        p.use(1)
        p.headers(1, None, end_stream=not body, block=literal_block(headers))
        if body:
            p.data(1, hello_request("m"), end_stream=True)
    return run


MALFORMED = {
    "http-uppercase-header-name": malformed(extra_after=[("X-Upper", "1")]),
    "http-header-name-with-space": malformed(extra_after=[("x bad", "1")]),
    "http-header-value-with-newline": malformed(extra_after=[("x-bad", "a\nb")]),
    "http-header-value-with-nul": malformed(extra_after=[("x-bad", "a\x00b")]),
    "http-header-value-leading-space": malformed(extra_after=[("x-bad", " a")]),
    "http-connection-header": malformed(extra_after=[("connection", "keep-alive")]),
    "http-keep-alive-header": malformed(extra_after=[("keep-alive", "timeout=5")]),
    "http-proxy-connection-header": malformed(extra_after=[("proxy-connection", "keep-alive")]),
    "http-transfer-encoding-header": malformed(extra_after=[("transfer-encoding", "chunked")]),
    "http-upgrade-header": malformed(extra_after=[("upgrade", "h2c")]),
    "http-te-not-trailers": malformed(replace={"te": "trailers, deflate"}),
    "http-unknown-pseudo-header": malformed(extra_before=[(":foo", "bar")]),
    "http-response-pseudo-header-in-request": malformed(extra_before=[(":status", "200")]),
    "http-pseudo-header-after-regular": malformed(extra_after=[(":authority", "late")], drop=(":authority",)),
    "http-missing-method": malformed(drop=(":method",)),
    "http-missing-scheme": malformed(drop=(":scheme",)),
    "http-missing-path": malformed(drop=(":path",)),
    "http-empty-path": malformed(replace={":path": ""}),
    "http-duplicate-method": malformed(extra_before=[(":method", "POST")]),
    "http-duplicate-scheme": malformed(extra_before=[(":scheme", "http")]),
    "http-duplicate-path": malformed(extra_before=[(":path", SAY_HELLO)]),
    "http-duplicate-authority": malformed(extra_before=[(":authority", "again")]),
}
for _name, _fn in MALFORMED.items():
    CASES[_name] = _fn


@case
def http_te_trailers_accepted(p):
    p.handshake()
    p.wait_stream(p.request())


@case
def http_content_length_mismatch(p):
    p.handshake()
    p.use(1)
    p.headers(1, request_headers(extra=[("content-length", "100")]))
    p.data(1, hello_request("cl"), end_stream=True)


@case
def http_content_length_mismatch_multiple_data(p):
    p.handshake()
    p.use(1)
    message = hello_request("multi")
    p.headers(1, request_headers(extra=[("content-length", str(len(message) + 1))]))
    p.data(1, message[:4])
    p.data(1, message[4:], end_stream=True)


@case
def http_content_length_exceeded(p):
    p.handshake()
    p.use(1)
    message = hello_request("over")
    p.headers(1, request_headers(extra=[("content-length", str(len(message) - 1))]))
    p.data(1, message, end_stream=True)


@case
def http_content_length_matching(p):
    p.handshake()
    p.use(1)
    message = hello_request("exact")
    p.headers(1, request_headers(extra=[("content-length", str(len(message)))]))
    p.data(1, message[:3])
    p.data(1, message[3:], end_stream=True)
    p.wait_stream(1)


@case
def http_trailers_accepted(p):
    p.handshake()
    p.use(1)
    p.headers(1, request_headers())
    p.data(1, hello_request("t"))
    p.headers(1, [("x-request-trailer", "1")], end_stream=True)
    p.wait_stream(1)


@case
def http_trailers_with_pseudo_header(p):
    p.handshake()
    p.use(1)
    p.headers(1, request_headers())
    p.data(1, hello_request("t"))
    p.headers(1, [(":method", "POST"), ("x-request-trailer", "1")], end_stream=True)


@case
def http_second_headers_without_end_stream(p):
    p.handshake()
    p.use(1)
    p.headers(1, request_headers())
    p.data(1, hello_request("t"))
    p.headers(1, [("x-request-trailer", "1")], end_stream=False)


@case
def http_push_promise_from_client(p):
    p.handshake()
    hold_open(p, 1)
    p.send(raw_frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack(">I", 2) + p.encode(request_headers())))


# RFC 7541 HPACK -------------------------------------------------------------------------------------------------

def hpack_block_case(block_fn):
    def run(p):
        p.handshake()
        p.use(1)
        p.send(raw_frame(HEADERS, END_HEADERS | END_STREAM, 1, block_fn(p)))
    return run


def huffman_value_block(value_bytes):
    """A literal whose value is the given Huffman octets (H bit set), after a valid request list."""
    return literal_block(request_headers()) + b"\x00" + hpack_str("x-huff") + hpack_int(len(value_bytes), 7, 0x80) + value_bytes


HPACK_CASES = {
    "hpack-indexed-zero": lambda p: b"\x80" + literal_block(request_headers()),
    "hpack-indexed-beyond-tables": lambda p: literal_block(request_headers()) + hpack_int(70, 7, 0x80),
    "hpack-literal-name-index-beyond-tables": lambda p: literal_block(request_headers()) + hpack_int(70, 4, 0x00) + hpack_str("v"),
    "hpack-size-update-above-setting": lambda p: hpack_int(4097, 5, 0x20) + literal_block(request_headers()),
    "hpack-size-update-after-field": lambda p: literal_block(request_headers()) + hpack_int(0, 5, 0x20),
    "hpack-huffman-padding-too-long": lambda p: huffman_value_block(b"\x1f\xff"),  # 'a' then 11 one-bits
    "hpack-huffman-padding-zeros": lambda p: huffman_value_block(b"\x18"),  # 'a' then 000
    "hpack-huffman-eos": lambda p: huffman_value_block(b"\xff\xff\xff\xff"),  # EOS (30 ones) inside the string
    "hpack-integer-overflow": lambda p: literal_block(request_headers()) + b"\xff\xff\xff\xff\xff\xff\x0f",
    "hpack-truncated-string": lambda p: literal_block(request_headers()) + b"\x00\x05x-abc\x7f",
}
for _name, _fn in HPACK_CASES.items():
    CASES[_name] = hpack_block_case(_fn)


@case
def hpack_size_updates_at_block_start_accepted(p):
    """Two size updates (0, then 4096) at the start of a block are allowed (RFC 7541 §4.2)."""
    p.handshake()
    p.use(1)
    block = hpack_int(0, 5, 0x20) + hpack_int(4096, 5, 0x20) + literal_block(request_headers())
    p.send(raw_frame(HEADERS, END_HEADERS, 1, block))
    p.data(1, hello_request("size"), end_stream=True)
    p.wait_stream(1)


@case
def hpack_size_update_zero_evicts(p):
    """After a size update to 0 the table is empty: an entry added before it cannot be referenced."""
    p.handshake()
    p.use(1)
    block = literal_block(request_headers()) + b"\x40" + hpack_str("x-entry") + hpack_str("kept")  # incremental
    p.send(raw_frame(HEADERS, END_HEADERS, 1, block))
    p.data(1, hello_request("a"), end_stream=True)
    p.wait_stream(1)
    p.mark("evicted")
    p.use(3)
    block = hpack_int(0, 5, 0x20) + hpack_int(4096, 5, 0x20) + literal_block(request_headers()) + hpack_int(62, 7, 0x80)
    p.send(raw_frame(HEADERS, END_HEADERS | END_STREAM, 3, block))


@case
def hpack_entry_larger_than_table_empties_it(p):
    """§4.4: adding an entry larger than the table empties the table (not an error); the older entry is gone."""
    p.handshake()
    p.use(1)
    block = (literal_block(request_headers()) + b"\x40" + hpack_str("x-small") + hpack_str("1") +
             b"\x40" + hpack_str("x-huge") + hpack_str("h" * 5000))
    p.send(raw_frame(HEADERS, END_HEADERS, 1, block))
    p.data(1, hello_request("a"), end_stream=True)
    p.wait_stream(1)
    p.mark("emptied")
    p.use(3)
    p.send(raw_frame(HEADERS, END_HEADERS | END_STREAM, 3, literal_block(request_headers()) + hpack_int(62, 7, 0x80)))


@case
def hpack_dynamic_table_eviction(p):
    """Requests whose fields churn the 4,096-octet table (python-hpack's encoder indexes and references them):
    every required field comes from the dynamic table more than once after evictions, so a decoder whose
    table is out of step routes nowhere or fails. The gateway's own encoder is checked by our decoder."""
    p.handshake()
    streams = []
    for i in range(16):
        size = [100, 900, 1800, 400, 1500, 60, 2500, 700][i % 8]
        extra = [("x-keep", "constant"), ("x-fill-%d" % (i % 5), chr(97 + i % 26) * size), ("x-seq", str(i))]
        stream = p.request(extra=extra, name="evict-%d" % i)
        p.wait_stream(stream)
        streams.append(stream)
    p.marks["streams"] = streams


@case
def hpack_never_indexed_accepted(p):
    p.handshake()
    p.use(1)
    block = literal_block(request_headers()) + b"\x10" + hpack_str("authorization") + hpack_str("secret", True)
    p.send(raw_frame(HEADERS, END_HEADERS, 1, block))
    p.data(1, hello_request("n"), end_stream=True)
    p.wait_stream(1)


# ---- running ------------------------------------------------------------------------------------------------------

def run_case(name, host, port, hold_path):
    started = time.monotonic()
    p = None
    report = {"frames": [], "marks": {}, "closed": False, "probe": None, "error": None}
    try:
        p = Peer(host, port, hold_path)
        opts = CASES[name](p) or {}
        if opts.get("sync", True) and not p.closed and p.goaway() is None:
            p.phase = "case"
            p.sync()
        if opts.get("probe", True) and not p.closed and p.goaway() is None:
            report["probe"] = p.probe(opts.get("probe_extra", ()))
        if p.goaway() is not None and not p.closed:
            p.drain(time.monotonic() + 2)
    except Exception as err:  # a driver failure is reported, never hidden
        report["error"] = "%s: %s" % (type(err).__name__, err)
    if p is not None:
        report["frames"] = p.frames
        report["marks"] = p.marks
        report["closed"] = p.closed
        p.close()
    report["ms"] = int((time.monotonic() - started) * 1000)
    return name, report


def main():
    if "--list" in sys.argv:
        print(json.dumps(sorted(CASES)))
        return
    spec = json.load(sys.stdin)
    names = spec.get("cases") or sorted(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise SystemExit("unknown cases: %s" % unknown)
    host, port = spec["host"], spec["port"]
    hold_path = spec.get("hold_path", HOLD_PATH)
    with ThreadPoolExecutor(max_workers=spec.get("parallel", 16)) as pool:
        results = dict(pool.map(lambda n: run_case(n, host, port, hold_path), names))
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
