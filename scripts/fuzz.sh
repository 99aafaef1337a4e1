#!/usr/bin/env bash
# Fuzzes crane's pure parsers and checkers with cargo-fuzz (libFuzzer). Not part of CI or the
# test command; see docs/fuzzing.md.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 600. TARGET defaults to every target (calc rules_plan
# validate_plan reference). Each target runs on its own, one after the other (one core), for
# that long, and a summary line per target gives the runs executed, exec/s, coverage
# (edges) and features, the corpus size and the crashes found.
#
# Environment:
#   CARGO_TARGET_DIR  build directory (default ~/.cache/crane/target-fuzz, apart from the
#                     main workspace's, so fuzz builds never wait for its lock)
#   FUZZ_NICE         nice level for the build and the fuzzer (default 19)
#   FUZZ_SANITIZER    cargo fuzz --sanitizer (default none: crane forbids unsafe code, and
#                     without ASan the fuzzer runs about twice as fast; use address to
#                     check the C code linked in, e.g. SQLite)
#   FUZZ_ARGS         extra libFuzzer flags, e.g. "-max_len=8192 -jobs=2"
#   FUZZ_SEEDS_ONLY=1 only regenerate fuzz/seeds/ from data/*.jsonl and exit
#   FUZZ_TREE=REV     fuzz the crates as committed at git revision REV (HEAD, a commit; a
#                     `git archive` copy in a temporary folder) with the fuzz targets of the
#                     working tree, instead of the working tree's crates (FUZZ_TREE=work, the
#                     default): a half-finished edit in a shared tree then cannot break the
#                     build in the middle of a run
#
# The toolchain is the stable one pinned in rust-toolchain.toml; cargo-fuzz needs nightly
# flags (-Z sanitizer, -C passes=sancov-module), which RUSTC_BOOTSTRAP=1 unlocks.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz_dir="$root/fuzz"
seconds="${1:-600}"
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=(calc rules_plan validate_plan reference)
fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -lt 1 ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crane/target-fuzz}"
nice_level="${FUZZ_NICE:-19}"
sanitizer="${FUZZ_SANITIZER:-none}"

# Seeds: prompts from the eval data sets, the calculations and plans they expect, and a few
# hand-written edge cases. Deterministic (file name = SHA-1 of the content), at most 200 files
# per target; committed, so `cargo fuzz run` finds them without this script too.
generate_seeds() {
    python3 - "$root" <<'PY'
import hashlib, json, pathlib, sys

root = pathlib.Path(sys.argv[1])
seeds = root / "fuzz" / "seeds"
LIMIT = 200

def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)

def records(name):
    for line in (root / "data" / name).read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield json.loads(line)

golden = list(records("golden.jsonl"))
adversarial = list(records("adversarial.jsonl"))
all_records = adversarial + golden  # adversarial first: the more unusual prompts
prompts = [r["prompt"] for r in all_records if isinstance(r.get("prompt"), str)]
plans = [r["expect"]["steps"] for r in all_records if isinstance(r.get("expect", {}).get("steps"), list)]
steps = [s for plan in plans for s in plan if isinstance(s, dict)]
expressions = [s["input"]["expression"] for s in steps
               if s.get("tool") == "calculator" and isinstance(s.get("input", {}).get("expression"), str)]
refs = sorted({s for s in strings(plans) if "${" in s})

calc_extra = [
    "(41*7)+13", "2^10", "-2^2", "2^-1", "2**3**2", "0.1 + 0.2", "1/3", "1/0", "5 % -3",
    "sqrt(2)", "sqrt(-1)", "min(1, 2, 3)", "max()", "round(2.5)", "floor(-0.5)", "ceil(1e-30)",
    "abs(-7)", "pi * e", "1e308 * 10", "1e-300 / 1e300", "9" * 40, "0." + "0" * 40 + "1",
    "(" * 70 + "1" + ")" * 70, "-" * 70 + "1", "2^2^2^2^2", "10^300", "10^299 * 9.99",
    "7 × 6 ÷ 3 − 1", "1e", ".5", "1.2.3", "()", "sqrt(", "foo(1)", "x",
    "79228162514264337593543950335 + 1", "-79228162514264337593543950335 - 1",
    "0.0000000000000000000000000001 * 0.1",
]
validate_extra = [
    {"steps": [{"tool": "todo_add", "input": {"title": "buy milk"}},
               {"tool": "todo_complete", "input": {"id": "${steps.1.todo.id}"}},
               {"tool": "todo_list", "input": {}},
               {"tool": "todo_delete", "input": {"id": "${steps.3.todos.-1.id}"}}]},
    {"steps": [{"tool": "todo_list", "input": {"order": "newest_first", "limit": 1}},
               {"tool": "todo_delete", "input": {"id": "${steps.1.todos.0.id}"}},
               {"tool": "todo_list", "input": {"limit": 5, "cursor": "${steps.1.next_cursor}"}},
               {"tool": "todo_add", "input": {"title": "after ${steps.2.matched} match"}}]},
    {"steps": [{"tool": "calculator", "input": {"expression": "2 +* x"}},
               {"tool": "send_email", "input": {}},
               {"tool": "todo_complete", "input": {"id": "${steps.4.todo.id}"}},
               {"tool": "todo_add", "input": {"title": 42}}]},
    {"steps": [{"step_number": 3, "tool": "todo_add", "input": {"title": "x"}},
               {"step_number": 1, "tool": "todo_add", "input": {"title": "$${steps.1}"}}]},
    {"steps": []},
    [{"tool": "todo_list", "input": {"cursor": "page2"}}],
    [{"tool": "todo_add", "input": {"title": "x" * 501}}],
    [{"tool": "calculator", "input": {"expression": "${steps.1.value}"}}],
    [{"tool": "calculator", "input": {"expression": "1 + 1"}},
     {"tool": "calculator", "input": {"expression": "${steps.1.value} * 2"}},
     {"tool": "calculator", "input": {"expression": "${steps.2.nothing}"}}],
]
outputs = json.dumps([
    {"expression": "7 * 6", "value": 42},
    {"todo": {"id": "t1", "title": "buy milk", "done": False}},
    {"todos": [{"id": "a"}, {"id": "b"}], "count": 2, "next_cursor": None},
])
reference_extra = [
    "${steps.1.value}", "${steps.2.todo.id}", "${steps.3.todos.-1.id}", "total: ${steps.1.value}!",
    "$${steps.1.value}", "$$${steps.1.value}", "${steps.0.x}", "${steps.1..x}", "${steps.1",
    "${stepz.1}", "${steps.4294967296}", "${steps.1.todos.-9223372036854775808}",
    "${steps.1.todos.9223372036854775807}", "a ${steps.1} b ${steps.2} c",
    "${steps.1}\n[]", "${steps.1}\n\"x\"", "${steps.1.a.b}\n[{\"a\": {\"b\": [1, 2]}}]",
    "${steps.2.0}\n[1, {\"0\": \"zero\"}]",
    "${steps.1.preview}\n[{\"truncated\": true, \"size_bytes\": 99999, \"limit_bytes\": 65536, \"preview\": {}}]",
]

def write(target, items):
    folder = seeds / target
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    unique = []
    for item in items:
        data = item.encode("utf-8") if isinstance(item, str) else item
        if data and data not in unique:
            unique.append(data)
    for data in unique[:LIMIT]:
        (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
    print(f"seeds: {target}: {min(len(unique), LIMIT)} files")

write("calc", calc_extra + expressions + [p for p in prompts if any(c.isdigit() for c in p)])
write("rules_plan", prompts)
write("validate_plan", [json.dumps(v) for v in validate_extra] + [json.dumps({"steps": p}) for p in plans])
write("reference", reference_extra + [f"{r}\n{outputs}" for r in refs] + refs)
PY
}

generate_seeds
if [[ "${FUZZ_SEEDS_ONLY:-}" == 1 ]]; then
    exit 0
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked
fi

case "${FUZZ_TREE:-work}" in
    work) ;;
    *)
        snapshot="$(mktemp -d "${TMPDIR:-/tmp}/crane-fuzz-head.XXXXXX")"
        trap 'rm -rf "$snapshot"' EXIT
        git -C "$root" archive "$FUZZ_TREE" Cargo.toml Cargo.lock rust-toolchain.toml crates | tar -x -C "$snapshot"
        mkdir -p "$snapshot/fuzz" "$fuzz_dir/corpus" "$fuzz_dir/artifacts" "$fuzz_dir/logs"
        cp -r "$fuzz_dir/Cargo.toml" "$fuzz_dir/Cargo.lock" "$fuzz_dir/fuzz_targets" "$snapshot/fuzz/"
        for shared in seeds dicts corpus artifacts logs; do
            ln -s "$fuzz_dir/$shared" "$snapshot/fuzz/$shared"
        done
        echo "fuzzing the crates at $FUZZ_TREE = $(git -C "$root" rev-parse --short "$FUZZ_TREE") (copy in $snapshot)"
        fuzz_dir="$snapshot/fuzz"
        ;;
esac

cd "$fuzz_dir"
echo "building the fuzz targets (sanitizer: $sanitizer, debug assertions on; target dir: $CARGO_TARGET_DIR)"
nice -n "$nice_level" cargo fuzz build --fuzz-dir . -s "$sanitizer" --debug-assertions

logs="$fuzz_dir/logs"
mkdir -p "$logs"
summary=()
status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    dict=()
    if [[ -f "dicts/$target.dict" ]]; then
        dict=("-dict=dicts/$target.dict")
    fi
    before=$(find "artifacts/$target" -type f | wc -l)
    log="$logs/$target.log"
    echo "fuzzing $target for ${seconds}s (log: fuzz/logs/$target.log)"
    # The first corpus folder is where libFuzzer saves new inputs; the seeds are read only.
    set +e
    # shellcheck disable=SC2086
    nice -n "$nice_level" cargo fuzz run --fuzz-dir . -s "$sanitizer" --debug-assertions "$target" \
        "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 "${dict[@]}" ${FUZZ_ARGS:-} >"$log" 2>&1
    rc=$?
    set -e
    after=$(find "artifacts/$target" -type f | wc -l)
    crashes=$((after - before))
    runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1 || true)
    speed=$(grep -Eo 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1 || true)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    if [[ -z "$runs" ]]; then
        # A crash stops libFuzzer before its final stats: take the last status line.
        runs=$(grep -Eo '^#[0-9]+' <<<"$last" | tr -d '#' || true)
    fi
    cov=$(grep -Eo 'cov: [0-9]+' <<<"$last" | grep -Eo '[0-9]+' || true)
    ft=$(grep -Eo 'ft: [0-9]+' <<<"$last" | grep -Eo '[0-9]+' || true)
    corp=$(grep -Eo 'corp: [0-9]+/[0-9]+[a-zA-Z]*' <<<"$last" | sed 's/corp: //' || true)
    line="$target: runs=${runs:-?} exec/s=${speed:-?} cov=${cov:-?} ft=${ft:-?} corpus=${corp:-?} crashes=$crashes exit=$rc"
    if [[ $rc -ne 0 ]]; then
        status=1
        line="$line (see fuzz/logs/$target.log; reproducers in fuzz/artifacts/$target/)"
    fi
    echo "$line"
    summary+=("$line")
done

echo
echo "summary ($(date -u +%Y-%m-%dT%H:%MZ), ${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
exit $status
