#!/usr/bin/env python3
"""Hostile load check for a running `llm serve`: many streaming clients, some of them hanging up mid-stream,
alongside slowloris connections and requests with the longest stop sequences allowed (and longer ones), while
/health is timed and the server's memory is watched. Standard library only.

    .build/release/llm serve --model /tmp/tiny.bin --port 8000 --max-tokens 64 &
    python3 scripts/hostile_load_check.py --port 8000 --pid $! --seconds 60

For --seconds S, all at once:
- well-behaved: --clients (200) threads, each sending streaming chat completions (max_tokens --max-tokens, 16)
  one after another, each checked (200, role chunk, content, finish_reason, usage, [DONE]); every
  --disconnect-every'th client (8) instead closes its socket after the first chunk (the role chunk, while the
  request may still be queued) or after the first content (mid-generation), alternately, on every request;
- slowloris: --slowloris (50) connections, four in five sending a request head a byte every --dribble seconds
  (2) and never finishing it, one in five sending a whole head (Content-Length 100000) and then its body a byte
  at a time; each is reopened when the server closes it. The server must close each within --slowloris-limit
  seconds (45: its 30 s idle/body timeouts plus a margin); a 408 that leaves the connection open does not count;
- long stops: requests with 4 stop sequences of 1024 UTF-8 bytes each (the limit; alternately streamed and
  not) must be answered correctly; requests over the limit (5 stops, one stop of 1025 bytes, one of 100 KB)
  must get a 400 naming `stop` within --reject-limit-ms (1000);
- /health on a fresh connection every 50 ms, from a separate process (so the checker's own threads do not
  delay it): p50/p99/max latency; p99 must be under --health-p99-ms (100);
- memory: the server's VmRSS (/proc/PID/status) every second. Flat means the RSS at the end of the load
  (median of the last 3 samples) exceeds the RSS at the end of the warm-up, the first --warmup (20%) of the run
  (median of the 3 samples up to it), by less than max(--rss-growth-pct (10) %, --rss-growth-mb (20) MB);
- after the load, /health must report no active or queued generation within 15 s (cancelled and finished
  generations leave nothing behind).
One line per category; exits 1 unless every criterion holds.
"""
import argparse
import http.client
import json
import multiprocessing
import os
import selectors
import socket
import statistics
import sys
import threading
import time

from load_check import post_stream, sse_events  # what both load checks share

SOCKET_TIMEOUT = 60  # seconds for any one read of a completion: the checker never hangs


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def chat_body(index, max_tokens, stream, stop=None):
    body = {"messages": [{"role": "user", "content": f"Client request {index}: tell me a story."}],
            "max_tokens": max_tokens, "temperature": 0.8, "seed": index, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    if stop is not None:
        body["stop"] = stop
    return json.dumps(body)


def stream_chat(host, port, body, disconnect=None, max_tokens=None, stops=()):
    """One streamed chat completion, checked. disconnect: None, "first" (close after the first chunk) or
    "content" (close after the first content). Returns (seconds to the first chunk, seconds in all, tokens,
    whether it hung up as asked)."""
    start = time.perf_counter()
    connection, response = post_stream(host, port, body, timeout=SOCKET_TIMEOUT)
    try:
        first = None
        tokens = None
        finish = None
        role = False
        text = ""
        for chunk in sse_events(response):
            if first is None:
                first = time.perf_counter() - start
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if chunk["choices"]:
                delta = chunk["choices"][0]["delta"]
                role = role or delta.get("role") == "assistant"
                text += delta.get("content") or ""
                finish = chunk["choices"][0].get("finish_reason") or finish
            if disconnect == "first" or (disconnect == "content" and text):
                return first, time.perf_counter() - start, 0, True
        if tokens is None or finish is None or not role:
            raise RuntimeError(f"incomplete stream (usage {tokens}, finish {finish}, role {role})")
        if finish not in ("stop", "length") or (max_tokens and tokens > max_tokens):
            raise RuntimeError(f"finish_reason {finish!r}, {tokens} tokens")
        if any(s in text for s in stops):
            raise RuntimeError("a stop sequence is in the reply")
        return first, time.perf_counter() - start, tokens, False
    finally:
        connection.close()


def plain_chat(host, port, body):
    """One non-streamed chat completion: (status, parsed body, seconds)."""
    start = time.perf_counter()
    connection = http.client.HTTPConnection(host, port, timeout=SOCKET_TIMEOUT)
    try:
        connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        raw = response.read()
        elapsed = time.perf_counter() - start
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise RuntimeError(f"HTTP {response.status}, not JSON: {raw[:200]!r}")
        return response.status, parsed, elapsed
    finally:
        connection.close()


def check_plain_reply(status, parsed, max_tokens, stops):
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {json.dumps(parsed)[:200]}")
    choice = parsed["choices"][0]
    content = choice["message"]["content"]
    if choice["finish_reason"] not in ("stop", "length") or parsed["usage"]["completion_tokens"] > max_tokens:
        raise RuntimeError(f"finish_reason {choice['finish_reason']!r}, usage {parsed['usage']}")
    if any(s in content for s in stops):
        raise RuntimeError("a stop sequence is in the reply")


def long_stops():
    """4 stop sequences of exactly 1024 UTF-8 bytes each, with 1-, 2- and 3-byte characters."""
    stops = []
    for i, filler in enumerate(["a", "é", "€", "ab€é"]):
        s = f"stop{i}:"
        while len((s + filler).encode()) <= 1024:
            s += filler
        while len(s.encode()) < 1024:
            s += "z"
        assert len(s.encode()) == 1024
        stops.append(s)
    return stops


def health_poller(host, port, seconds, interval, out):
    """GET /health on a fresh connection every `interval` seconds (in its own process): sends back the
    latencies and the errors."""
    latencies, errors = [], []
    deadline = time.perf_counter() + seconds
    next_start = time.perf_counter()
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        try:
            connection = http.client.HTTPConnection(host, port, timeout=5)
            try:
                connection.request("GET", "/health", headers={"Connection": "close"})
                response = connection.getresponse()
                body = response.read()
                if response.status != 200 or json.loads(body).get("status") != "ok":
                    raise RuntimeError(f"HTTP {response.status}: {body[:100]!r}")
            finally:
                connection.close()
            latencies.append(time.perf_counter() - start)
        except Exception as e:
            latencies.append(time.perf_counter() - start)
            errors.append(f"{type(e).__name__}: {e}")
        next_start += interval
        pause = next_start - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        else:
            next_start = time.perf_counter()
    out.send((latencies, errors))
    out.close()


def health_counts(host, port):
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", "/health", headers={"Connection": "close"})
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Slowloris:
    """Connections that trickle a request a byte at a time, watched from one thread with a selector. Each is
    reopened when the server closes it, until the deadline."""

    HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: "

    def __init__(self, host, port, count, dribble, deadline):
        self.host, self.port, self.count, self.dribble, self.deadline = host, port, count, dribble, deadline
        self.closed = []  # (kind, seconds open, status the server sent before closing or None)
        self.still_open = []  # (kind, seconds open) at the end
        self.connect_errors = []
        self.selector = selectors.DefaultSelector()

    def _open(self, slot):
        kind = "body" if slot % 5 == 4 else "head"
        try:
            sock = socket.create_connection((self.host, self.port), timeout=5)
        except OSError as e:
            self.connect_errors.append(f"{type(e).__name__}: {e}")
            return
        sock.setblocking(False)
        state = {"slot": slot, "kind": kind, "opened": time.perf_counter(), "next": time.perf_counter(),
                 "received": b"", "sent": 0}
        # A partial head, then a byte at a time of a header that never ends; or a whole head, then the body.
        head = self.HEAD if kind == "head" else self.HEAD + b"1\r\nContent-Length: 100000\r\n\r\n"
        try:
            sock.send(head)
        except OSError:
            pass
        self.selector.register(sock, selectors.EVENT_READ, state)

    def _close(self, key, now):
        state = key.data
        received = state["received"]
        status = int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/1.") and b" " in received else None
        self.closed.append((state["kind"], now - state["opened"], status))
        self.selector.unregister(key.fileobj)
        key.fileobj.close()
        if now < self.deadline:
            self._open(state["slot"])

    def run(self):
        for slot in range(self.count):
            self._open(slot)
        while time.perf_counter() < self.deadline:
            for key, _ in self.selector.select(timeout=0.2):
                try:
                    data = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    key.data["received"] += data  # a 408, say: it counts only once the server closes
                else:
                    self._close(key, time.perf_counter())
            now = time.perf_counter()
            for key in list(self.selector.get_map().values()):
                state = key.data
                if now < state["next"]:
                    continue
                state["next"] = now + self.dribble
                byte = b"a" if state["kind"] == "head" else b" "
                try:
                    key.fileobj.send(byte)
                    state["sent"] += 1
                except BlockingIOError:
                    pass
                except OSError:
                    self._close(key, now)
        now = time.perf_counter()
        for key in list(self.selector.get_map().values()):
            self.still_open.append((key.data["kind"], now - key.data["opened"]))
            key.fileobj.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--pid", type=int, required=True, help="the server's process id, for its RSS")
    parser.add_argument("--seconds", type=float, default=60, help="how long the load runs (default 60)")
    parser.add_argument("--clients", type=int, default=200, help="streaming clients (default 200)")
    parser.add_argument("--disconnect-every", type=int, default=8, help="every Nth client hangs up (default 8)")
    parser.add_argument("--max-tokens", type=int, default=16, help="max_tokens of each request (default 16)")
    parser.add_argument("--slowloris", type=int, default=50, help="slowloris connections (default 50)")
    parser.add_argument("--dribble", type=float, default=2, help="seconds between a slowloris' bytes (default 2)")
    parser.add_argument("--slowloris-limit", type=float, default=45,
                        help="seconds within which the server must close a slowloris connection (default 45)")
    parser.add_argument("--reject-limit-ms", type=float, default=1000,
                        help="the longest an over-limit stop may wait for its 400 (default 1000)")
    parser.add_argument("--health-interval", type=float, default=0.05, help="seconds between /health (default 0.05)")
    parser.add_argument("--health-p99-ms", type=float, default=100, help="the /health p99 bound (default 100)")
    parser.add_argument("--warmup", type=float, default=0.2, help="the warm-up, a fraction of --seconds (default 0.2)")
    parser.add_argument("--rss-growth-pct", type=float, default=10, help="allowed RSS growth, percent (default 10)")
    parser.add_argument("--rss-growth-mb", type=float, default=20, help="allowed RSS growth, MB (default 20)")
    args = parser.parse_args()
    host, port = args.host, args.port

    with open(f"/proc/{args.pid}/cmdline", "rb") as f:  # a shell around the server would measure the shell
        if b"serve" not in f.read().split(b"\0"):
            sys.exit(f"hostile_load_check: process {args.pid} is not `llm serve` (give the server's own pid)")
    rss_kib(args.pid)
    health_counts(host, port)  # and on a server that is not there

    receiver, sender = multiprocessing.Pipe(duplex=False)
    poller = multiprocessing.Process(target=health_poller,
                                     args=(host, port, args.seconds, args.health_interval, sender), daemon=True)
    poller.start()
    sender.close()

    start = time.perf_counter()
    deadline = start + args.seconds
    lock = threading.Lock()
    counter = iter(range(10**9))

    def next_index():
        with lock:
            return next(counter)

    # Well-behaved and disconnecting clients.
    good, good_errors, hangups, hangup_errors = [], [], [], []

    def client(number):
        disconnecting = args.disconnect_every > 0 and number % args.disconnect_every == args.disconnect_every - 1
        requests = 0
        while time.perf_counter() < deadline:
            index = next_index()
            mode = ("first" if requests % 2 == 0 else "content") if disconnecting else None
            requests += 1
            try:
                result = stream_chat(host, port, chat_body(index, args.max_tokens, True), disconnect=mode,
                                     max_tokens=args.max_tokens)
                with lock:
                    (hangups if disconnecting else good).append(result)
            except Exception as e:
                with lock:
                    (hangup_errors if disconnecting else good_errors).append(f"{type(e).__name__}: {e}")

    # Long stops: allowed ones answered, over-limit ones rejected.
    stops = long_stops()
    allowed, allowed_errors, rejected, reject_errors = [], [], [], []
    over_limit = [("5 stops", ["x", "y", "z", "w", "v"]), ("a 1025-byte stop", ["q" * 1025]),
                  ("a 100 KB stop", ["s" * 102400]), ("4 stops, one of 100 KB", stops[:3] + ["t" * 102400])]

    def allowed_stops():
        n = 0
        while time.perf_counter() < deadline:
            index, stream = next_index(), n % 2 == 0
            n += 1
            try:
                body = chat_body(index, args.max_tokens, stream, stop=stops)
                if stream:
                    _, elapsed, _, _ = stream_chat(host, port, body, max_tokens=args.max_tokens, stops=stops)
                else:
                    status, parsed, elapsed = plain_chat(host, port, body)
                    check_plain_reply(status, parsed, args.max_tokens, stops)
                with lock:
                    allowed.append(elapsed)
            except Exception as e:
                with lock:
                    allowed_errors.append(f"{type(e).__name__}: {e}")

    def over_limit_stops():
        n = 0
        while time.perf_counter() < deadline:
            what, stop = over_limit[n % len(over_limit)]
            n += 1
            try:
                status, parsed, elapsed = plain_chat(host, port, chat_body(next_index(), args.max_tokens, n % 2 == 0, stop=stop))
                error = parsed.get("error") or {}
                if status != 400 or error.get("param") != "stop":
                    raise RuntimeError(f"{what}: HTTP {status} {json.dumps(parsed)[:200]}, want a 400 naming stop")
                if elapsed * 1000 > args.reject_limit_ms:
                    raise RuntimeError(f"{what}: the 400 took {elapsed * 1000:.0f} ms")
                with lock:
                    rejected.append(elapsed)
            except Exception as e:
                with lock:
                    reject_errors.append(f"{type(e).__name__}: {e}")
            time.sleep(0.1)

    # The server's memory.
    rss = []  # (seconds since the start, KiB)
    stop_sampling = threading.Event()

    def sample_rss():
        while not stop_sampling.is_set():
            try:
                rss.append((time.perf_counter() - start, rss_kib(args.pid)))
            except Exception:
                pass
            stop_sampling.wait(1)

    slowloris = Slowloris(host, port, args.slowloris, args.dribble, deadline)
    threads = [threading.Thread(target=sample_rss, daemon=True), threading.Thread(target=slowloris.run, daemon=True),
               threading.Thread(target=allowed_stops, daemon=True), threading.Thread(target=over_limit_stops, daemon=True)]
    threads += [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join(timeout=max(0, deadline - time.perf_counter()) + 2 * SOCKET_TIMEOUT)
    hung = sum(t.is_alive() for t in threads[1:])
    load_end = time.perf_counter() - start
    stop_sampling.set()
    threads[0].join()

    health_latencies, health_errors = receiver.recv() if receiver.poll(30) else ([], ["the poller sent nothing"])
    poller.join(timeout=5)

    # After the load: nothing left generating or queued.
    idle, counts = False, None
    for _ in range(30):
        try:
            counts = health_counts(host, port)
            if counts.get("active") == 0 and counts.get("queued") == 0:
                idle = True
                break
        except Exception as e:
            counts = f"{type(e).__name__}: {e}"
        time.sleep(0.5)

    failures = []
    print(f"load: {args.seconds:g} s, {args.clients} clients (every {args.disconnect_every}th hangs up), "
          f"max_tokens {args.max_tokens}, {args.slowloris} slowloris; all done after {load_end:.1f} s"
          + (f"; {hung} threads still running" if hung else ""))

    ttft = [r[0] for r in good]
    print(f"well-behaved: {len(good)} requests, {len(good_errors)} errors, {sum(r[2] for r in good)} tokens; "
          f"first chunk p50 {percentile(ttft, 50) * 1000:.0f} ms, p99 {percentile(ttft, 99) * 1000:.0f} ms; "
          f"request p50 {percentile([r[1] for r in good], 50) * 1000:.0f} ms, max {max([r[1] for r in good], default=0) * 1000:.0f} ms")
    for e in sorted(set(good_errors))[:5]:
        print(f"  error: {e}")
    if good_errors or not good:
        failures.append("well-behaved clients had errors" if good_errors else "no well-behaved request completed")

    hung_up = sum(1 for r in hangups if r[3])
    print(f"disconnecting: {len(hangups) + len(hangup_errors)} requests, {hung_up} hung up as planned, "
          f"{len(hangups) - hung_up} finished before any content, {len(hangup_errors)} errors (not counted)")
    for e in sorted(set(hangup_errors))[:3]:
        print(f"  error: {e}")

    closed = slowloris.closed
    late = [c for c in closed if c[1] > args.slowloris_limit] + [o for o in slowloris.still_open if o[1] > args.slowloris_limit]
    for kind in ("head", "body"):
        times = [c[1] for c in closed if c[0] == kind]
        statuses = sorted({str(c[2]) for c in closed if c[0] == kind})
        open_now = [o[1] for o in slowloris.still_open if o[0] == kind]
        print(f"slowloris ({'partial head' if kind == 'head' else 'dribbled body'}): {len(times)} closed by the server "
              f"after {min(times, default=0):.1f}-{max(times, default=0):.1f} s (statuses before closing: "
              f"{', '.join(statuses) or '-'}); {len(open_now)} open at the end, the oldest for "
              f"{max(open_now, default=0):.1f} s (limit {args.slowloris_limit:g} s)")
        if not times:
            failures.append(f"no {kind} slowloris connection was closed by the server")
    if late:
        failures.append(f"{len(late)} slowloris connections stayed open past {args.slowloris_limit:g} s")
    if slowloris.connect_errors:
        print(f"  slowloris connect errors: {len(slowloris.connect_errors)}, e.g. {slowloris.connect_errors[0]}")
        failures.append("slowloris connections could not connect")

    print(f"long stops: {len(allowed)} answered with 4 x 1024-byte stops ({len(allowed_errors)} errors), latency "
          f"p50 {percentile(allowed, 50) * 1000:.0f} ms, max {max(allowed, default=0) * 1000:.0f} ms (well-behaved "
          f"p50 {percentile([r[1] for r in good], 50) * 1000:.0f} ms); "
          f"{len(rejected)} over-limit got 400 ({len(reject_errors)} did not, or late), latency "
          f"p50 {percentile(rejected, 50) * 1000:.1f} ms, p99 {percentile(rejected, 99) * 1000:.1f} ms, "
          f"max {max(rejected, default=0) * 1000:.1f} ms")
    for e in sorted(set(allowed_errors + reject_errors))[:5]:
        print(f"  error: {e}")
    if allowed_errors or not allowed:
        failures.append("long-stop requests failed" if allowed_errors else "no long-stop request was answered")
    if reject_errors or not rejected:
        failures.append("over-limit stops were not all rejected quickly with a 400")

    p99 = percentile(health_latencies, 99)
    print(f"/health: {len(health_latencies)} polls, {len(health_errors)} errors, p50 "
          f"{percentile(health_latencies, 50) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
          f"max {max(health_latencies, default=0) * 1000:.1f} ms (p99 limit {args.health_p99_ms:g} ms)")
    for e in sorted(set(health_errors))[:3]:
        print(f"  error: {e}")
    if health_errors or not health_latencies or not p99 * 1000 < args.health_p99_ms:
        failures.append("/health was slow or failed")

    warm = args.seconds * args.warmup
    during = [kib for t, kib in rss if t <= args.seconds]
    before = [kib for t, kib in rss if t <= warm][-3:]
    if len(before) < 1 or len(during) < 3:
        print(f"memory: too few RSS samples ({len(rss)})")
        failures.append("memory not measured")
    else:
        base, end = statistics.median(before), statistics.median(during[-3:])
        bound = max(base * args.rss_growth_pct / 100, args.rss_growth_mb * 1024)
        # The trend after the warm-up (least squares), for information: a slow leak shows here first.
        points = [(t, kib) for t, kib in rss if warm <= t <= args.seconds]
        mean_t = statistics.fmean(t for t, _ in points)
        mean_k = statistics.fmean(k for _, k in points)
        spread = sum((t - mean_t) ** 2 for t, _ in points)
        slope = sum((t - mean_t) * (k - mean_k) for t, k in points) / spread * 60 / 1024 if spread else 0.0
        print(f"memory: RSS start {rss[0][1] / 1024:.1f} MB, after the warm-up ({warm:.0f} s) {base / 1024:.1f} MB, "
              f"peak {max(k for _, k in rss) / 1024:.1f} MB, end of load {end / 1024:.1f} MB, after the drain "
              f"{rss[-1][1] / 1024:.1f} MB; growth {(end - base) / 1024:+.1f} MB (bound {bound / 1024:.1f} MB: "
              f"max({args.rss_growth_pct:g}%, {args.rss_growth_mb:g} MB)); trend after the warm-up {slope:+.2f} MB/min")
        if end - base >= bound:
            failures.append("memory grew")

    print(f"after the load: /health {counts}")
    if not idle:
        failures.append("generations left active or queued after the load")

    print("hostile_load_check: " + ("ok" if not failures else "FAILED: " + "; ".join(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
