#!/usr/bin/env python3
"""Checks a running `llm serve` with OpenAI's official Python client (`pip install openai`): the model list,
chat completions whole and streamed, text completions whole and streamed, seeded replies that match between
the two, stop sequences, and error responses. Prints what it got; exits 1 if any check fails.

    .build/release/llm serve --model /tmp/tiny.bin --port 8000 &
    python3 scripts/openai_client.py --port 8000
"""
import argparse
import json
import sys
import urllib.error
import urllib.request

import openai
from openai import OpenAI

failures = []


def check(name, condition, detail=""):
    print(("ok    " if condition else "FAIL  ") + name + (f": {detail}" if detail else ""))
    if not condition:
        failures.append(name)


def chat_checks(client, model):
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello."}]

    r = client.chat.completions.create(model=model, messages=messages, max_tokens=16, temperature=0.8, seed=1)
    choice = r.choices[0]
    print(f"chat (whole): {choice.message.content!r} finish={choice.finish_reason} usage={r.usage}")
    check("chat.completion shape", r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == model
          and choice.index == 0 and choice.message.role == "assistant" and isinstance(choice.message.content, str))
    check("chat finish_reason", choice.finish_reason in ("stop", "length"), choice.finish_reason)
    check("chat usage adds up", r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 16
          and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, str(r.usage))

    stream = client.chat.completions.create(model=model, messages=messages, max_tokens=16, temperature=0.8, seed=1,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    streamed = "".join(pieces)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    print(f"chat (streamed, {len(chunks)} chunks): {streamed!r} finish={finishes}")
    check("chunks are chat.completion.chunk", all(c.object == "chat.completion.chunk" for c in chunks))
    check("first delta has the role", bool(chunks) and chunks[0].choices[0].delta.role == "assistant")
    check("one finish_reason, on the last choice chunk", len(finishes) == 1
          and [c for c in chunks if c.choices][-1].choices[0].finish_reason == finishes[0])
    check("usage chunk last", chunks[-1].usage is not None and not chunks[-1].choices
          and chunks[-1].usage.completion_tokens == r.usage.completion_tokens, str(chunks[-1].usage))
    check("same seed, same reply, streamed or not", streamed == choice.message.content,
          f"{streamed!r} vs {choice.message.content!r}")

    # A stop sequence taken from the middle of a seeded reply cuts that same reply just before it.
    long = client.chat.completions.create(model=model, messages=messages, max_tokens=40, temperature=0.8, seed=5)
    text = long.choices[0].message.content
    if len(text) >= 12:
        stop = text[len(text) // 2:len(text) // 2 + 3]
        cut = client.chat.completions.create(model=model, messages=messages, max_tokens=40, temperature=0.8, seed=5,
                                             stop=[stop])
        check("stop sequence", cut.choices[0].message.content == text[:text.index(stop)]
              and cut.choices[0].finish_reason == "stop", f"stop={stop!r} -> {cut.choices[0].message.content!r}")
    else:
        print(f"skip  stop sequence: the reply {text!r} is too short to cut")

    r2 = client.chat.completions.create(model=model, max_tokens=8, messages=messages + [
        {"role": "assistant", "content": choice.message.content}, {"role": "user", "content": "And again?"}])
    check("multi-turn", isinstance(r2.choices[0].message.content, str) and r2.usage.prompt_tokens > r.usage.prompt_tokens)


def completion_checks(client, model):
    r = client.completions.create(model=model, prompt="Once upon a time", max_tokens=12, seed=3)
    print(f"completion (whole): {r.choices[0].text!r} finish={r.choices[0].finish_reason} usage={r.usage}")
    check("text_completion shape", r.object == "text_completion" and r.id.startswith("cmpl-") and r.model == model
          and isinstance(r.choices[0].text, str) and r.choices[0].finish_reason in ("stop", "length"))
    chunks = list(client.completions.create(model=model, prompt="Once upon a time", max_tokens=12, seed=3, stream=True))
    streamed = "".join(c.choices[0].text for c in chunks)
    print(f"completion (streamed, {len(chunks)} chunks): {streamed!r}")
    check("streamed completion matches", streamed == r.choices[0].text
          and chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason)


def error_checks(client, model, base_url):
    def expect_bad_request(name, **kwargs):
        try:
            client.chat.completions.create(model=model, **kwargs)
            check(name, False, "no error")
        except openai.BadRequestError as e:
            error = e.body if isinstance(e.body, dict) else {}
            check(name, e.status_code == 400 and set(error) >= {"message", "type", "param", "code"},
                  f"400 {error.get('message')!r} param={error.get('param')!r}")

    expect_bad_request("max_tokens above the limit is a 400", messages=[{"role": "user", "content": "hi"}], max_tokens=10**6)
    expect_bad_request("empty messages is a 400", messages=[])
    expect_bad_request("a wrong type is a 400", messages=[{"role": "user", "content": "hi"}], temperature="hot")

    def raw(path, data=None):
        request = urllib.request.Request(base_url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    status, body = raw("/no/such/route")
    check("unknown route is a 404 in OpenAI's shape", status == 404 and "message" in body.get("error", {}), f"{status} {body}")
    status, body = raw("/chat/completions", data=b"{not json")
    check("malformed JSON is a 400", status == 400 and "message" in body.get("error", {}), f"{status} {body}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    base_url = f"http://{args.host}:{args.port}/v1"
    client = OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=120)

    models = client.models.list().data
    check("models list", len(models) == 1, ", ".join(m.id for m in models))
    model = models[0].id
    for checks in (chat_checks, completion_checks):
        try:
            checks(client, model)
        except Exception as e:  # a failed request is a failed check, and the others still run
            check(checks.__name__, False, f"{type(e).__name__}: {e}")
    error_checks(client, model, base_url)

    print(f"{'FAILED: ' + ', '.join(failures) if failures else 'all checks passed'}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
