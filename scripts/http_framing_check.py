#!/usr/bin/env python3
"""HTTP/1 framing and connection handling of a running `llm serve`, on raw sockets, where no client library goes.
One line per case; every read has a timeout, so a server that hangs fails the case instead of the script.

    python3 scripts/http_framing_check.py --port P

The cases: HTTP/1.0 closes after its response unless it asks for keep-alive; `Connection: close` closes after
its response (requests pipelined behind it are dropped, as RFC 9112 allows) and keep-alive requests pipelined in
one write are all answered, in order; a client that half-closes after its request still gets the response; a
body that is not valid UTF-8, a bad chunk size, a Content-Length that is not a number and two Content-Lengths
that disagree get a 400 in OpenAI's error shape; and the server still answers after all of them.
"""
import argparse
import json
import socket
import sys

TIMEOUT = 5  # seconds for any one read: far more than a tiny model's answer takes


class Failure(Exception):
    pass


class Connection:
    """One TCP connection, read a response at a time."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buffer = b""
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.sock.close()

    def send(self, raw):
        self.sock.sendall(raw)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def _fill(self, what):
        """Reads more bytes; False at the end of the stream (a reset counts as an end)."""
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise Failure(f"no {what} within {TIMEOUT} s (the server hangs)")
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def _take_line(self, what):
        while b"\r\n" not in self.buffer:
            if not self._fill(what):
                raise Failure(f"the connection closed before the {what}")
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _take(self, count, what):
        while len(self.buffer) < count:
            if not self._fill(what):
                raise Failure(f"the connection closed in the middle of the {what}")
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def response(self):
        """The next final response: (status, {lowercase header name: value}, body), the body de-chunked. Interim
        (1xx) responses are skipped, as HTTP/1.1 clients must."""
        status, headers = self._head()
        while 100 <= status < 200:
            status, headers = self._head()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while (size := int(self._take_line("chunk size").split(b";")[0], 16)):
                body += self._take(size, "chunk")
                self._take_line("chunk")
            while self._take_line("trailers"):
                pass
        elif "content-length" in headers:
            body = self._take(int(headers["content-length"]), "body")
        else:
            while self._fill("body"):
                pass
            body, self.buffer = self.buffer, b""
        return status, headers, body

    def _head(self):
        status_line = self._take_line("response")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise Failure(f"not an HTTP/1 status line: {status_line[:80]!r}")
        headers = {}
        while (line := self._take_line("response headers")):
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode()] = value.strip().decode()
        return int(parts[1]), headers

    def closes(self):
        """Whether the server ends the connection now (no more bytes, then EOF, within the timeout)."""
        try:
            while self._fill("end of the connection"):
                pass
        except Failure:
            return False
        return not self.buffer


def expect_health(status, body, what):
    if status != 200 or json.loads(body).get("status") != "ok":
        raise Failure(f"{what} got {status} {body[:200]!r}, want 200 and the health report")


def expect_openai_error(status, headers, body, what, words=""):
    try:
        error = json.loads(body).get("error", {})
    except ValueError:
        error = {}
    if status != 400 or error.get("type") != "invalid_request_error" or words not in error.get("message", ""):
        want = f"400 in OpenAI's error shape, its message saying {words!r}" if words else "400 in OpenAI's error shape"
        raise Failure(f"{what} got {status} {body[:200]!r}, want {want}")
    return error["message"]


HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
HEALTH_CLOSE = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def health_then_close(c, what, why):
    """Sends a plain HTTP/1.0 /health request on `c`: it must be answered, then the connection must close."""
    c.send(b"GET /health HTTP/1.0\r\n\r\n")
    status, _, body = c.response()
    expect_health(status, body, what)
    if not c.closes():
        raise Failure(why)


def http10_closes(port):
    with Connection(port) as c:
        health_then_close(c, "GET /health HTTP/1.0", "the connection stayed open after an HTTP/1.0 response without keep-alive")
    return "HTTP/1.0 without keep-alive: answered, then the connection closes"


def http10_keep_alive(port):
    with Connection(port) as c:
        for i in range(2):
            c.send(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, body = c.response()
            expect_health(status, body, f"HTTP/1.0 keep-alive request {i + 1}")
            if headers.get("connection", "").lower() != "keep-alive":
                raise Failure(f"an HTTP/1.0 keep-alive response says Connection: {headers.get('connection')!r}, want keep-alive")
        health_then_close(c, "a last HTTP/1.0 request without keep-alive",
                          "the connection stayed open after the last HTTP/1.0 request")
    return "HTTP/1.0 with Connection: keep-alive: two answers on one connection, then a plain 1.0 request closes it"


def close_drops_pipelined(port):
    with Connection(port) as c:
        c.send(HEALTH_CLOSE + HEALTH)
        status, headers, body = c.response()
        expect_health(status, body, "GET /health with Connection: close")
        if headers.get("connection", "").lower() != "close":
            raise Failure(f"the response to Connection: close says Connection: {headers.get('connection')!r}")
        if not c.closes():
            raise Failure("the connection stayed open after Connection: close (or answered the request pipelined behind it)")
    return "Connection: close with a request pipelined behind it: one answer, then the connection closes"


def pipelining(port):
    with Connection(port) as c:
        c.send(HEALTH + b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n" + HEALTH)
        status, _, body = c.response()
        expect_health(status, body, "the first pipelined request")
        status, _, body = c.response()
        if status != 200 or json.loads(body).get("object") != "list":
            raise Failure(f"the second pipelined request (/v1/models) got {status} {body[:200]!r}")
        status, _, body = c.response()
        expect_health(status, body, "the third pipelined request")
        c.send(HEALTH_CLOSE)
        expect_health(*c.response()[::2], "a fourth request, with Connection: close")
        if not c.closes():
            raise Failure("the connection stayed open after Connection: close")
    return "three keep-alive requests in one write: three answers, in order"


def half_close(port):
    with Connection(port) as c:
        c.send(HEALTH)
        c.shutdown_write()
        status, _, body = c.response()
        expect_health(status, body, "GET /health then shutdown(SHUT_WR)")
        if not c.closes():
            raise Failure("the connection stayed open after answering a half-closed client")
    with Connection(port) as c:
        body = b'{"prompt": "Hello", "max_tokens": 2}'
        c.send(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        c.shutdown_write()
        status, _, body = c.response()
        if status != 200 or json.loads(body).get("object") != "text_completion":
            raise Failure(f"POST /v1/completions then shutdown(SHUT_WR) got {status} {body[:200]!r}, want 200 and a completion")
    return "a client that half-closes after its request gets the answer (/health and /v1/completions)"


def invalid_utf8(port):
    body = b'{"messages": [{"role": "user", "content": "caf\xff\xfe"}], "max_tokens": 1}'
    with Connection(port) as c:
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        message = expect_openai_error(*c.response(), "a body with bytes 0xff 0xfe", "UTF-8")
    return f"a body that is not UTF-8 gets 400: {message}"


def bad_framing(port):
    cases = [
        ("a bad chunk size", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
        ("Content-Length: abc", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                b"Content-Length: abc\r\n\r\n{}"),
        ("two Content-Lengths that disagree", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                              b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
    ]
    for what, raw in cases:
        with Connection(port) as c:
            c.send(raw)
            expect_openai_error(*c.response(), what)
            if not c.closes():
                raise Failure(f"the connection stayed open after the 400 for {what}")
    return "a bad chunk size, Content-Length: abc and two Content-Lengths that disagree get 400, then the connection closes"


def still_serving(port):
    with Connection(port) as c:
        c.send(HEALTH_CLOSE)
        expect_health(*c.response()[::2], "/health")
    return "the server still answers /health"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    port = ap.parse_args().port
    failures = 0
    for case in [http10_closes, http10_keep_alive, close_drops_pipelined, pipelining, half_close, invalid_utf8,
                 bad_framing, still_serving]:
        try:
            print(f"http_framing_check: ok: {case(port)}", flush=True)
        except (Failure, OSError, ValueError) as error:
            failures += 1
            print(f"http_framing_check: FAIL: {case.__name__}: {error}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
