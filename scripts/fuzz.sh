#!/usr/bin/env bash
# Fuzzes the parsers with libFuzzer: builds llm-fuzz with -sanitize=fuzzer,address, then runs each target (all of
# them by default) from its committed seeds (Tests/Fuzz/corpus/TARGET/) until --runs executions or --seconds have
# passed, whichever comes first. Prints one line per target and exits 1 if any target found a crash, a leak, a
# timeout or ran out of memory; the input that did it is in WORK/artifacts/TARGET/, and the target's log in
# WORK/logs/TARGET.log. Reproduce a finding with
#     LLM_FUZZ_TARGET=TARGET .build-fuzz/release/llm-fuzz WORK/artifacts/TARGET/crash-…
# or, without the sanitizers, `swift run llm-fuzz TARGET FILE`.
#
#   scripts/fuzz.sh [TARGET...] [--runs N] [--seconds S]      defaults: every target, 1000000 runs, 600 seconds
#
# LLM_FUZZ_WORK (default .build-fuzz/work, ignored by git) holds the corpora the runs grow (kept between runs)
# and the findings. Linux only (the toolchain's libFuzzer); each target runs on one core.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=1000000 seconds=600 targets=()
while (( $# )); do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

scratch=.build-fuzz
work=${LLM_FUZZ_WORK:-$scratch/work}
swift build -c release --scratch-path "$scratch" --product llm-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DLLM_FUZZING
bin=$scratch/release/llm-fuzz
# Leaks are checked after each input (libFuzzer's -detect_leaks), not at exit: what is left then is state made once
# per process (the server harness's parsed chat template), which LeakSanitizer misreports as leaked when Swift keeps
# the only pointer to it in an enum payload with tag bits set. scripts/fuzz-lsan.supp says what else is ignored.
export LSAN_OPTIONS=leak_check_at_exit=0:suppressions=$PWD/scripts/fuzz-lsan.supp:print_suppressions=0
list=$(LLM_FUZZ_TARGET=list "$bin" 2>/dev/null | grep -E '^[a-z0-9-]+ [0-9]+$')
(( ${#targets[@]} )) || mapfile -t targets < <(cut -d' ' -f1 <<<"$list")

failed=0
for target in "${targets[@]}"; do
    max_len=$(awk -v t="$target" '$1 == t { print $2 }' <<<"$list")
    if [[ -z $max_len ]]; then
        echo "fuzz.sh: no target $target (targets: $(cut -d' ' -f1 <<<"$list" | tr '\n' ' '))" >&2
        exit 2
    fi
    corpus=$work/corpus/$target artifacts=$work/artifacts/$target log=$work/logs/$target.log
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    start=$SECONDS
    touch "$work/logs/.start-$target"
    rc=0
    LLM_FUZZ_TARGET=$target "$bin" "$corpus" "Tests/Fuzz/corpus/$target" -max_len="$max_len" -timeout=10 \
        -rss_limit_mb=2048 -malloc_limit_mb=2048 -runs="$runs" -max_total_time="$seconds" \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1 || rc=$?
    elapsed=$((SECONDS - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    coverage=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    findings=$(find "$artifacts" -type f ! -name 'slow-unit-*' -newer "$work/logs/.start-$target" | wc -l)
    echo "$target: ${execs:-?} executions in ${elapsed}s, ${coverage:-cov: ?}, corpus $(ls "$corpus" | wc -l) files, findings: $findings$( ((rc)) && echo " (exit $rc, see $log)")"
    if (( rc != 0 || findings > 0 )); then failed=1; fi
done
exit $failed
