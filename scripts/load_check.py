#!/usr/bin/env python3
"""Load check for a running `llm serve`: N clients, each sending streaming chat requests one after another for
a bounded time, over loopback. Reports requests served, errors, time to first token (p50/p95) and tokens per
second, per request and in all. Exits 1 if any request failed or none completed. Standard library only.

    .build/release/llm serve --model /tmp/tiny.bin --port 8000 &
    python3 scripts/load_check.py --port 8000 --clients 8 --seconds 20
"""
import argparse
import http.client
import json
import statistics
import sys
import threading
import time


def post_stream(host, port, body, timeout):
    """POSTs a streaming chat completion: (connection, response), the response's status checked to be 200. The
    caller closes the connection."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {response.read()[:200]!r}")
    except BaseException:
        connection.close()
        raise
    return connection, response


def sse_events(response):
    """The JSON chunks of a streamed OpenAI response, in order, until `data: [DONE]`. An error event, or a stream
    that ends without [DONE], raises RuntimeError. (http.client undoes the chunked encoding; SSE events are
    "data: ..." lines.)"""
    for line in response:
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            return
        chunk = json.loads(data)
        if "error" in chunk:
            raise RuntimeError("error event: " + chunk["error"]["message"])
        yield chunk
    raise RuntimeError("the stream ended without [DONE]")


def one_request(host, port, max_tokens, index):
    """One streamed chat completion: (seconds to the first content, seconds in all, completion tokens)."""
    body = json.dumps({
        "messages": [{"role": "user", "content": f"Client request {index}: tell me a story."}],
        "max_tokens": max_tokens, "temperature": 0.8, "seed": index, "stream": True,
        "stream_options": {"include_usage": True},
    })
    start = time.perf_counter()
    connection, response = post_stream(host, port, body, timeout=120)
    try:
        first = None
        tokens = None
        for chunk in sse_events(response):
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                first = time.perf_counter() - start
        if tokens is None:
            raise RuntimeError("the stream ended without usage")
        total = time.perf_counter() - start
        return (first if first is not None else total), total, tokens
    finally:
        connection.close()


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--seconds", type=float, default=20, help="how long clients start new requests (default 20)")
    parser.add_argument("--max-tokens", type=int, default=64, help="max_tokens of each request (default 64)")
    args = parser.parse_args()

    results, errors = [], []
    lock = threading.Lock()
    deadline = time.perf_counter() + args.seconds
    counter = iter(range(10**9))

    def client():
        while time.perf_counter() < deadline:
            with lock:
                index = next(counter)
            try:
                result = one_request(args.host, args.port, args.max_tokens, index)
                with lock:
                    results.append(result)
            except Exception as e:
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start

    print(f"{args.clients} clients for {args.seconds:g} s (all done after {elapsed:.1f} s), max_tokens {args.max_tokens}")
    print(f"requests served: {len(results)}, errors: {len(errors)}")
    for e in sorted(set(errors))[:5]:
        print(f"  error: {e}")
    if results:
        ttft = [r[0] for r in results]
        tokens = sum(r[2] for r in results)
        per_request = [r[2] / (r[1] - r[0]) for r in results if r[1] > r[0] and r[2] > 1]
        print(f"time to first token: p50 {percentile(ttft, 50) * 1000:.0f} ms, p95 {percentile(ttft, 95) * 1000:.0f} ms, "
              f"max {max(ttft) * 1000:.0f} ms")
        print(f"tokens: {tokens} in all, {tokens / elapsed:.1f} tokens/s aggregate"
              + (f", {statistics.median(per_request):.1f} tokens/s per request (median, after the first)" if per_request else ""))
    sys.exit(1 if errors or not results else 0)


if __name__ == "__main__":
    main()
