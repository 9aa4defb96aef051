#!/usr/bin/env python3
"""Malformed HTTP against a running `llm serve` on raw sockets, where no client library would go:
a bad chunk size gets a 400 in OpenAI's error shape (not a 500), and the server still answers /health after.

    python3 scripts/http_framing_check.py --port P
"""
import argparse
import json
import socket
import sys


def exchange(port, raw):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < content_length(data):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def content_length(data):
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    port = ap.parse_args().port
    status, body = exchange(port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
    error = json.loads(body).get("error", {})
    if status != 400 or error.get("type") != "invalid_request_error":
        print(f"http_framing_check: a bad chunk size got {status} {body[:200]!r}, want 400")
        return 1
    status, _ = exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    if status != 200:
        print(f"http_framing_check: /health got {status} afterwards")
        return 1
    print("http_framing_check: a bad chunk size gets 400, and the server goes on")
    return 0


if __name__ == "__main__":
    sys.exit(main())
