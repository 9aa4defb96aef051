#!/usr/bin/env bash
# End-to-end check of `llm serve` with OpenAI's official Python client: builds llm (release; or uses $LLM_BIN),
# writes a tiny random chat model, starts the server on a free loopback port, waits for /health, runs
# scripts/openai_client.py and scripts/http_framing_check.py (HTTP/1 on raw sockets) against it, then stops the
# server with SIGTERM and checks that it exits 0.
#
#     scripts/ci_server_check.sh                      # builds .build/release/llm first
#     LLM_BIN=.build/debug/llm scripts/ci_server_check.sh
#
# Exits 0 with a "skipped" message when python3 is missing, or the openai package is and cannot be installed
# (pip, then a virtual environment under the scratch folder).
set -euo pipefail
cd "$(dirname "$0")/.."

skip() { echo "ci_server_check: skipped: $1"; exit 0; }
command -v python3 >/dev/null 2>&1 || skip "no python3"

work=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

python=python3
if ! python3 -c "import openai" 2>/dev/null; then
    echo "ci_server_check: installing the openai package"
    if ! python3 -m pip install --quiet --user openai >/dev/null 2>&1 || ! python3 -c "import openai" 2>/dev/null; then
        python3 -m venv "$work/venv" >/dev/null 2>&1 && "$work/venv/bin/pip" install --quiet openai >/dev/null 2>&1 \
            && python="$work/venv/bin/python" || true
    fi
    "$python" -c "import openai" 2>/dev/null || skip "the openai package is missing and could not be installed"
fi

llm="${LLM_BIN:-}"
if [ -z "$llm" ]; then
    swift build -c release --product llm
    llm=.build/release/llm
fi

# The model: $LLM_SERVE_MODEL (a real one, from scripts/ci_real_models_check.sh), else a tiny random GPT-2.
model=${LLM_SERVE_MODEL:-}
if [ -z "$model" ]; then
    python3 scripts/make_tiny_model.py --out "$work/tiny.bin"
    model="$work/tiny.bin"
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$llm" serve --model "$model" --port "$port" --max-tokens 64 >"$work/server.log" 2>&1 &
pid=$!

health() { python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "http://127.0.0.1:$port/health" 2>/dev/null; }
for _ in $(seq 1 120); do
    health && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/server.log"; echo "ci_server_check: the server exited before serving"; exit 1; }
    sleep 0.5
done
health || { cat "$work/server.log"; echo "ci_server_check: no /health after 60 s"; exit 1; }

status=0
"$python" scripts/openai_client.py --port "$port" || status=1
python3 scripts/http_framing_check.py --port "$port" || status=1

kill -TERM "$pid"
for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$pid" 2>/dev/null; then
    echo "ci_server_check: the server did not stop within 30 s of SIGTERM"
    status=1
else
    server_status=0
    wait "$pid" || server_status=$?
    pid=""
    if [ "$server_status" -ne 0 ]; then
        echo "ci_server_check: the server exited with status $server_status after SIGTERM"
        status=1
    else
        echo "ci_server_check: the server stopped cleanly on SIGTERM (exit status 0)"
    fi
fi
[ "$status" -eq 0 ] || { echo "--- server log"; cat "$work/server.log"; }
exit "$status"
