#!/bin/sh
# dwctl maps check on the shipped examples (exit 0, one line per map) and on
# broken files (exit 2, every error on stderr with file and JSON path); the
# top-level help and usage errors.  Usage: test_dwctl_maps.sh DWCTL EXAMPLES_DIR
set -u
dwctl=$1
examples=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dw-dwctl-test-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# expect CODE: runs the rest of the line, stdout to $tmp/out, stderr to $tmp/err
expect() {
    want=$1
    shift
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    [ "$got" -eq "$want" ] || fail "exit $got, expected $want: $*"
}

has() {   # has FILE TEXT: a line of FILE equals TEXT
    grep -qxF -- "$2" "$1" || { fail "no line \"$2\" in $1:"; cat "$1" >&2; }
}

expect 0 "$dwctl" maps check "$examples"
[ "$(wc -l <"$tmp/out")" -eq 4 ] || fail "expected 4 summary lines"
[ -s "$tmp/err" ] && fail "stderr not empty"
has "$tmp/out" 'companies: public.companies -> target.companies, 3 fields, key (id), no filter, no dependencies'
has "$tmp/out" 'customers: public.customers -> target.customers, 5 fields, key (id), filter company in ("usmf", "usrt"), depends on companies'
has "$tmp/out" 'order_lines: public.order_lines -> target.order_lines, 5 fields, key (order_id, line), no filter, depends on orders'

cat >"$tmp/bad.json" <<'JSON'
{"map": "bad",
 "source": {"table": "bad", "key": ["id"]},
 "target": {"connector": "target", "table": "bad", "key": ["id"]},
 "fields": [{"source": "id", "target": "id", "values": ["x"]}],
 "depends_on": ["ghost"]}
JSON
printf '{"map": \n' >"$tmp/syntax.json"
expect 2 "$dwctl" maps check "$tmp/bad.json" "$tmp/syntax.json" "$examples"
has "$tmp/err" "$tmp/bad.json: /fields/0/values: expected an object, found an array"
has "$tmp/err" "$tmp/bad.json: /depends_on/0: unknown table map \"ghost\""
has "$tmp/err" "$tmp/syntax.json:2:1: invalid JSON: expected a value, found end of file"
[ "$(wc -l <"$tmp/err")" -eq 3 ] || fail "expected 3 error lines"
[ -s "$tmp/out" ] && fail "stdout not empty"

expect 2 "$dwctl" maps check "$tmp/nope"
has "$tmp/err" "$tmp/nope: could not open: No such file or directory"

expect 0 "$dwctl" --help
grep -q '^usage: dwctl' "$tmp/out" || fail "dwctl --help: no usage"
grep -q '^  maps ' "$tmp/out" || fail "dwctl --help: no maps command"
expect 0 "$dwctl" maps --help
grep -q '^usage: dwctl maps check' "$tmp/out" || fail "dwctl maps --help: no usage"
expect 0 "$dwctl" maps check --help
expect 0 "$dwctl" help maps
expect 2 "$dwctl" frobnicate
has "$tmp/err" 'dwctl: unknown command "frobnicate"'
grep -q '^usage: dwctl' "$tmp/err" || fail "unknown command: no usage on stderr"
[ -s "$tmp/out" ] && fail "unknown command: stdout not empty"
expect 2 "$dwctl"
expect 2 "$dwctl" --bogus
expect 2 "$dwctl" maps
expect 2 "$dwctl" maps check
expect 2 "$dwctl" maps frob

if [ "$failures" -ne 0 ]; then
    echo "$failures failures" >&2
    exit 1
fi
echo "dwctl maps check: all passed"
