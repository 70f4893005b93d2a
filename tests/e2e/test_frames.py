"""`lubeck run` against frames pushed by hand over ZeroMQ (docs/protocol.md): the
test plays Mongrel2, binding a PUSH on the send spec and a SUB on the recv spec.
Malformed frames, interleaved with valid JSON and tnetstring requests, must be
dropped (and logged, rate-limited) while every valid request is answered and the
host stays up. Notices are never answered."""
import json
import os
import random
import re
import time

import pytest
import zmq

from conftest import APPS, LUBECK, Process, free_port

SENDER = b"f0f0f0f0-aaaa-4bbb-8ccc-000000000001"
REPLY = re.compile(rb"\A([A-Za-z0-9-]+) (\d+):([0-9 ]*), (.*)\Z", re.S)


# ---- building frames -------------------------------------------------------------

def m2_headers(path, method="GET", query=None, extra=None):
    uri = path + ("?" + query if query else "")
    h = {"PATH": path, "host": "frames.test", "x-forwarded-for": "127.0.0.1"}
    h.update(extra or {})
    h.update({"METHOD": method, "VERSION": "HTTP/1.1", "URI": uri})
    if query:
        h["QUERY"] = query
    h.update({"PATTERN": "/", "URL_SCHEME": "http", "REMOTE_ADDR": "127.0.0.1"})
    return h


def json_frame(conn_id, path, body=b"", sender=SENDER, **kw):
    headers = json.dumps(m2_headers(path, **kw)).encode()
    return b"%s %d %s %d:%s,%d:%s," % (sender, conn_id, path.encode(), len(headers), headers,
                                       len(body), body)


def tn_str(b):
    b = b.encode() if isinstance(b, str) else b
    return b"%d:%s," % (len(b), b)


def tn_value(v):
    if isinstance(v, list):
        payload = b"".join(tn_str(x) for x in v)
        return b"%d:%s]" % (len(payload), payload)
    return tn_str(v)


def tn_dict(d):
    payload = b"".join(tn_str(k) + tn_value(v) for k, v in d.items())
    return b"%d:%s}" % (len(payload), payload)


def tnet_frame(conn_id, path, body=b"", sender=SENDER, **kw):
    return b"%s %d %s %s%s" % (sender, conn_id, path.encode(), tn_dict(m2_headers(path, **kw)),
                               tn_str(body))


# ---- playing Mongrel2 --------------------------------------------------------------

class FakeMongrel2:
    """Binds PUSH and SUB as Mongrel2 does and runs `lubeck run APP` against them."""

    def __init__(self, app="core", extra_args=()):
        self.ctx = zmq.Context()
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.setsockopt(zmq.SNDTIMEO, 5000)
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        send_spec = "tcp://127.0.0.1:%d" % free_port()
        recv_spec = "tcp://127.0.0.1:%d" % free_port()
        self.push.bind(send_spec)
        self.sub.bind(recv_spec)
        self.replies = []          # (conn ids, body) in arrival order
        self.process = Process([LUBECK, "run", os.path.join(APPS, app),
                                "--send", send_spec, "--recv", recv_spec] + list(extra_args))
        self._warm_up()

    def _warm_up(self):
        """Replies sent before the host's PUB has joined our SUB are lost, so
        knock until one comes back."""
        deadline = time.time() + 15
        conn_id = 900000
        while time.time() < deadline:
            assert self.process.proc.poll() is None, "\n".join(self.process.err)
            self.send(json_frame(conn_id, "/"))
            if self.sub.poll(50):
                self.collect([conn_id], timeout=1)
                return
            conn_id += 1
        raise AssertionError("lubeck run never answered:\n" + "\n".join(self.process.err))

    def send(self, frame):
        self.push.send(frame)

    def _read(self, timeout):
        if not self.sub.poll(int(timeout * 1000)):
            return False
        frame = self.sub.recv()
        m = REPLY.match(frame)
        assert m, "reply frame does not follow docs/protocol.md, Reply frames: %r" % frame[:200]
        sender, length, ids, body = m.groups()
        assert sender == SENDER
        assert int(length) == len(ids), frame[:100]
        self.replies.append(([int(i) for i in ids.split()], body))
        return True

    def collect(self, conn_ids, timeout=5):
        """Waits for a non-empty reply to each id; returns id → parsed response."""
        want = set(conn_ids)
        deadline = time.time() + timeout
        while True:
            got = {ids[0]: body for ids, body in self.replies if body and ids[0] in want}
            if set(got) == want:
                return {i: parse_http(b) for i, b in got.items()}
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("no reply for conn ids %s; stderr:\n%s" % (
                    sorted(want - set(got)), "\n".join(self.process.err)))
            self._read(min(left, 0.2))

    def quiet(self, seconds):
        """Reads whatever else arrives for a while."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            self._read(max(0.0, deadline - time.time()))

    def replied_to(self, conn_id):
        return [body for ids, body in self.replies if conn_id in ids]

    def malformed_lines(self):
        return [l for l in self.process.err if "malformed" in l]

    def close(self):
        self.process.stop()
        self.push.close()
        self.sub.close()
        self.ctx.term()


def parse_http(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ", lines[0])
    assert m, lines[0]
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        assert len(body) == int(headers["content-length"])
    return int(m.group(1)), headers, body


@pytest.fixture
def m2():
    fake = FakeMongrel2()
    yield fake
    fake.close()


# ---- valid frames ----------------------------------------------------------------

def test_json_request_is_answered(m2):
    m2.send(json_frame(1, "/users/17"))
    status, headers, body = m2.collect([1])[1]
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["params"] == {"id": "17"}


def test_tnetstring_request_is_answered(m2):
    frame = tnet_frame(2, "/req/echo/a/b/c", body=b"tnet body", method="POST", query="x=1&y=2",
                       extra={"x-rep": ["one", "two"], "x-custom": "cv"})
    assert b"}9:tnet body," in frame
    m2.send(frame)
    status, headers, body = m2.collect([2])[2]
    assert status == 200
    got = json.loads(body)
    assert got["method"] == "POST"
    assert got["path"] == "/req/echo/a/b/c"
    assert got["query"] == "x=1&y=2"
    assert got["uri"] == "/req/echo/a/b/c?x=1&y=2"
    assert got["body"] == "tnet body"
    assert got["sender"] == SENDER.decode()
    assert got["conn_id"] == 2
    assert got["x_rep_list"] == ["one", "two"]
    assert got["x_rep_joined"] == "one, two"
    assert got["x_custom"] == ["cv", "cv", "cv"]
    assert got["params"] == {"a": "a", "rest": "b/c"}


def test_header_values_are_read_leniently_and_unescaped(m2):
    # raw control and non-UTF-8 bytes (as Mongrel2 sends them) and JSON escapes
    weird = b"a\tb\x01\xff\xfe"
    h = json.dumps(m2_headers("/req/header/x-weird")).encode()
    h = h[:-1] + b', "x-weird": "' + weird + b'", "x-esc": "caf\\u00e9 \\"q\\" \\\\ \\/"}'
    m2.send(b"%s 8 /req/header/x-weird %d:%s,0:," % (SENDER, len(h), h))
    status, _, body = m2.collect([8])[8]
    assert status == 200 and body == weird
    h = h.replace(b'"PATH": "/req/header/x-weird"', b'"PATH": "/req/header/x-esc"')
    m2.send(b"%s 9 /req/header/x-esc %d:%s,0:," % (SENDER, len(h), h))
    status, _, body = m2.collect([9])[9]
    assert status == 200 and body == 'café "q" \\ /'.encode()
    t = tnet_frame(10, "/req/header/x-weird", extra={"x-weird": weird})
    m2.send(t)
    status, _, body = m2.collect([10])[10]
    assert status == 200 and body == weird


def test_encoding_is_detected_per_frame(m2):
    frames = {}
    for i in range(10, 30):
        make = json_frame if i % 2 else tnet_frame
        frames[i] = make(i, "/users/%d" % i, extra={"x-enc": "json" if i % 2 else "tnet"})
    order = list(frames)
    random.Random(7).shuffle(order)
    for i in order:
        m2.send(frames[i])
    answers = m2.collect(order)
    for i, (status, _, body) in answers.items():
        assert status == 200
        assert json.loads(body)["params"] == {"id": str(i)}


def test_http10_frame_gets_a_close_frame_after_the_reply(m2):
    headers = m2_headers("/ret/string")
    headers["VERSION"] = "HTTP/1.0"
    h = json.dumps(headers).encode()
    m2.send(b"%s 3 /ret/string %d:%s,0:," % (SENDER, len(h), h))
    status, hdrs, body = m2.collect([3])[3]
    assert status == 200 and body == b"a string" and hdrs["connection"] == "close"
    m2.quiet(0.2)
    assert m2.replied_to(3)[-1] == b""          # the empty body closes (docs/protocol.md)


# ---- malformed frames --------------------------------------------------------------

def malformed_frames():
    good = json_frame(1, "/users/1")
    head_json = json.dumps(m2_headers("/")).encode()
    bad = {
        "garbage": b"garbage",
        "empty message": b"",
        "binary junk": random.Random(3).randbytes(300),
        "truncated in the headers": good[:len(good) // 2],
        "truncated body": good[:-3],
        "cut after the path": SENDER + b" 7 /users/1 ",
        "no path": SENDER + b" 7  12:{\"METHOD\":1},0:,",
        "header length too long": b"%s 7 / %d:%s,0:," % (SENDER, len(head_json) + 7, head_json),
        "header length too short": b"%s 7 / %d:%s,0:," % (SENDER, len(head_json) - 1, head_json),
        "body length wrong": b"%s 7 / %d:%s,5:abc," % (SENDER, len(head_json), head_json),
        "bytes after the body": b"%s 7 / %d:%s,0:,junk" % (SENDER, len(head_json), head_json),
        "huge declared length": b"%s 7 / 999999999:{}," % SENDER,
        "absurd declared length": b"%s 7 / 99999999999999999999999:{},0:," % SENDER,
        "length not a number": b"%s 7 / xx:{},0:," % SENDER,
        "conn id not a number": json_frame(1, "/users/1").replace(b" 1 ", b" abc ", 1),
        "conn id negative": json_frame(1, "/users/1").replace(b" 1 ", b" -1 ", 1),
        "conn id too big": json_frame(1, "/users/1").replace(b" 1 ", b" 99999999999 ", 1),
        "conn id beyond 32 bits": json_frame(1, "/users/1").replace(b" 1 ", b" 4294967296 ", 1),
        "bad sender": json_frame(1, "/users/1", sender=b"not\x00a-uuid"),
    }
    # frames whose conn id can be read: they must not be answered either
    with_ids = {
        "missing METHOD": (501, b'{"PATH":"/users/1","VERSION":"HTTP/1.1"}'),
        "nested JSON": (502, b'{"PATH":"/","METHOD":"GET","x":{"y":"z"}}'),
        "deeply nested JSON": (503, b'{"METHOD":"GET","x":' + b"[" * 5000 + b"]" * 5000 + b"}"),
        "headers not an object": (504, b'["METHOD","GET"]'),
        "unterminated JSON": (505, b'{"METHOD":"GET","PATH":"/'),
        "bad JSON escape": (506, b'{"METHOD":"GET","x":"\\q"}'),
        "lone surrogate": (507, b'{"METHOD":"GET","x":"\\udc00"}'),
        "number as key": (508, b'{1:"GET"}'),
    }
    for name, (conn_id, headers) in with_ids.items():
        bad[name] = b"%s %d /users/1 %d:%s,0:," % (SENDER, conn_id, len(headers), headers)
    tnet_bad = {
        "tnet dict ending in ','": (511, tn_dict({"METHOD": "GET"})[:-1] + b","),
        "tnet wrong inner length": (512, b"15:6:METHOD,9:GET,}"),
        "tnet list of lists": (514, tn_dict({"METHOD": "GET"})[:-1] + b"}"),
    }
    inner_list = tn_value(["a", "b"])
    lists = tn_str("METHOD") + tn_str("GET") + tn_str("x") + b"%d:%s]" % (len(inner_list),
                                                                          inner_list)
    tnet_bad["tnet list of lists"] = (514, b"%d:%s}" % (len(lists), lists))
    inner = tn_dict({"a": "b"})
    payload = tn_str("METHOD") + tn_str("GET") + tn_str("x") + inner
    tnet_bad["tnet nested dict value"] = (513, b"%d:%s}" % (len(payload), payload))
    for name, (conn_id, headers) in tnet_bad.items():
        bad[name] = b"%s %d /users/1 %s0:," % (SENDER, conn_id, headers)
    return bad


MALFORMED_IDS = [501, 502, 503, 504, 505, 506, 507, 508, 511, 512, 513, 514]


def test_malformed_frames_are_dropped_and_valid_ones_answered(m2):
    bad = malformed_frames()
    valid_ids = []
    conn_id = 100
    for name, frame in bad.items():
        conn_id += 1
        make = json_frame if conn_id % 2 else tnet_frame
        m2.send(make(conn_id, "/users/%d" % conn_id))
        valid_ids.append(conn_id)
        m2.send(frame)
    m2.send(json_frame(199, "/users/199"))
    valid_ids.append(199)
    answers = m2.collect(valid_ids, timeout=10)
    for i in valid_ids:
        status, _, body = answers[i]
        assert status == 200, (i, body)
        assert json.loads(body)["params"] == {"id": str(i)}
    # the host is still up and still answering
    assert m2.process.proc.poll() is None
    m2.send(tnet_frame(200, "/users/200"))
    assert m2.collect([200])[200][0] == 200
    m2.quiet(0.3)
    for i in MALFORMED_IDS + [7]:
        assert m2.replied_to(i) == [], "malformed frame for conn %d was answered" % i
    answered = {ids[0] for ids, body in m2.replies if body}
    assert {i for i in answered if i < 900000} <= set(valid_ids) | {200}   # 900000+: warm-up
    # logged, but rate-limited: one line for a burst of ~30 bad frames
    lines = m2.malformed_lines()
    assert 1 <= len(lines) <= 3, m2.process.err
    assert all("lubeck" in l and "error" in l for l in lines)


@pytest.mark.parametrize("name", sorted(malformed_frames()))
def test_each_malformed_frame_is_logged(m2, name):
    frame = malformed_frames()[name]
    m2.send(frame)
    m2.send(json_frame(42, "/users/42"))
    assert m2.collect([42])[42][0] == 200
    m2.process.wait_line("malformed", stream="err", timeout=3)
    assert m2.process.proc.poll() is None


# ---- notices -------------------------------------------------------------------------

def test_disconnect_for_an_unknown_id_is_not_answered(m2):
    m2.send(b'%s 4321 @* 17:{"METHOD":"JSON"},21:{"type":"disconnect"},' % SENDER)
    m2.send(b'%s 4322 @* 16:6:METHOD,4:JSON,}21:{"type":"disconnect"},' % SENDER)
    m2.send(b'%s 4323 @* 17:{"METHOD":"JSON"},18:{"type":"credits"},' % SENDER)
    m2.send(b'%s 4324 @* 17:{"METHOD":"JSON"},9:not json!,' % SENDER)
    m2.send(json_frame(5, "/ret/string"))
    assert m2.collect([5])[5][2] == b"a string"
    m2.quiet(0.5)
    for i in (4321, 4322, 4323, 4324):
        assert m2.replied_to(i) == []
    assert m2.malformed_lines() == []          # notices are not malformed


def test_legacy_json_socket_message_is_not_answered(m2):
    m2.send(b'%s 77 @chat 17:{"METHOD":"JSON"},28:{"type":"msg","msg":"hello"},' % SENDER)
    m2.send(b'%s 78 @chat 16:6:METHOD,4:JSON,}15:{"type":"join"},' % SENDER)
    m2.send(json_frame(6, "/ret/string"))
    assert m2.collect([6])[6][0] == 200
    m2.quiet(0.5)
    assert m2.replied_to(77) == [] and m2.replied_to(78) == []
    assert m2.process.proc.poll() is None
