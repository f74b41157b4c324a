#!/usr/bin/env bash
# "dwctl hooks install|remove|status" against a real PostgreSQL 15 source
# cluster with the dualwrite extension, the demo's tables (tools/demo/source.sql)
# and the example maps (maps/examples).  Checks the triggers in pg_trigger
# (arguments, ENABLE ALWAYS), idempotence, stale/missing/disabled/orphan
# detection, the all-or-nothing install, quoting, and the exit codes.
#
#   test_dwctl_hooks.sh DWCTL    (environment: DW_PGCLUSTER, DW_HOOK_DIR, DW_SOURCE_ROOT)
#
# Every assertion that fails is reported and the script exits 1 at the end;
# the cluster is stopped and the work directory removed on any exit.  Exit 77
# (skip) when PostgreSQL 15 or the extension's module is not there.
set -uo pipefail

DWCTL=${1:?usage: test_dwctl_hooks.sh DWCTL}
case $DWCTL in /*) ;; *) DWCTL=$PWD/$DWCTL ;; esac
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
: "${DW_PGCLUSTER:?}" "${DW_HOOK_DIR:?}" "${DW_SOURCE_ROOT:?}"

[ -x "$PGBIN/initdb" ] || { echo "SKIP: no PostgreSQL 15 in $PGBIN"; exit 77; }
[ -f "$DW_HOOK_DIR/dualwrite.so" ] || { echo "SKIP: no dualwrite.so in $DW_HOOK_DIR"; exit 77; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dw-hooks-test.XXXXXX")
chmod 755 "$WORK"   # the postgres user must reach the cluster below it
cleanup() {
  local rc=$?
  "$DW_PGCLUSTER" stop "$WORK/pg" >/dev/null 2>&1
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ helpers

failures=0
step=""
fail() { echo "FAIL [$step]: $*" >&2; failures=$((failures + 1)); }
section() { step=$1; echo "--- $step"; }

# run ARGS...: dwctl with its stdout, stderr and exit code kept in OUT ERR RC
run() {
  "$DWCTL" "$@" >"$WORK/out" 2>"$WORK/err"
  RC=$?
  OUT=$(cat "$WORK/out")
  ERR=$(cat "$WORK/err")
}

assert_rc() {
  [ "$RC" -eq "$1" ] || fail "exit code $RC, expected $1; stdout:
$OUT
stderr:
$ERR"
}
assert_out() {   # stdout has a line matching the extended regex
  grep -Eq -- "$1" <<<"$OUT" || fail "stdout has no line matching /$1/:
$OUT"
}
assert_no_out() {
  ! grep -Eq -- "$1" <<<"$OUT" || fail "stdout has a line matching /$1/:
$OUT"
}
assert_err() {
  grep -Fq -- "$1" <<<"$ERR" || fail "stderr does not contain \"$1\":
$ERR"
}
assert_eq() {    # ACTUAL EXPECTED WHAT
  [ "$1" == "$2" ] || fail "$3:
  got:      $(printf '%s' "$1" | sed '2,$s/^/            /')
  expected: $(printf '%s' "$2" | sed '2,$s/^/            /')"
}
assert_lines() { # expected number of stdout lines matching a regex
  local n
  n=$(grep -Ec -- "$1" <<<"$OUT")
  [ "$n" -eq "$2" ] || fail "$n stdout lines match /$1/, expected $2:
$OUT"
}

sql_try() {      # DB QUERY: unaligned, tuples only, stop on error
  local db=$1; shift
  "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d "$db" -c "$@"
}
sql() {          # the same, and a failure fails the test
  sql_try "$@" || fail "psql failed: $*"
}

# Our triggers in DB, one line each: table trigger tgenabled args (NULs as \000)
triggers() {
  sql "$1" "SELECT n.nspname || '.' || c.relname || ' ' || t.tgname || ' ' || t.tgenabled::text
              || ' ' || encode(t.tgargs, 'escape')
            FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE t.tgname LIKE 'dualwrite%' ORDER BY 1"
}

config() {       # FILE DB MAPS: a service configuration for DB and MAPS
  cat >"$1" <<EOF
{"source": {"conninfo": "host=$PGHOST port=$PGPORT user=postgres dbname=$2"},
 "maps": "$3",
 "connectors": {"target": {"type": "pg", "conninfo": "host=/nonexistent dbname=target"}}}
EOF
}

# ------------------------------------------------------------------ setup

"$DW_PGCLUSTER" start "$WORK/pg" --hook "$DW_HOOK_DIR" >/dev/null || { echo "could not start the cluster" >&2; exit 1; }
# shellcheck disable=SC1091
. "$WORK/pg/env"
export PGHOST PGPORT PGUSER

for db in erp fresh noext concurrent; do sql_try postgres "CREATE DATABASE $db" || exit 1; done
for db in erp fresh concurrent; do
  "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$DW_SOURCE_ROOT/tools/demo/source.sql" || exit 1
done
# the demo's tables without the extension
grep -v 'CREATE EXTENSION' "$DW_SOURCE_ROOT/tools/demo/source.sql" \
  | "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d noext || exit 1

MAPS=$DW_SOURCE_ROOT/maps/examples
config "$WORK/erp.json" erp "$MAPS"
config "$WORK/fresh.json" fresh "$MAPS"
config "$WORK/noext.json" noext "$MAPS"
config "$WORK/concurrent.json" concurrent "$MAPS"

EXPECTED='public.companies dualwrite_capture A companies\000id\000name\000currency\000
public.companies dualwrite_truncate A companies\000
public.customers dualwrite_capture A customers\000id\000company\000name\000status\000
public.customers dualwrite_truncate A customers\000
public.order_lines dualwrite_capture A order_lines\000order_id\000line\000item\000qty\000price\000
public.order_lines dualwrite_truncate A order_lines\000
public.orders dualwrite_capture A orders\000id\000customer_id\000status\000total\000
public.orders dualwrite_truncate A orders\000'

# ------------------------------------------------------------------ usage and configuration errors

section "usage"
run hooks --help
assert_rc 0; assert_out '^usage: dwctl hooks install\|remove\|status'
run hooks install --help
assert_rc 0; assert_out '^usage: dwctl hooks'
run hooks install
assert_rc 2; assert_err 'missing configuration file (-c FILE)'
run hooks frobnicate -c "$WORK/erp.json"
assert_rc 2; assert_err 'unknown command "frobnicate"'
run hooks install --all -c "$WORK/erp.json"
assert_rc 2; assert_err '"--all" is only valid with "remove"'
run hooks status --bogus
assert_rc 2; assert_err 'unknown option "--bogus"'

section "bad configuration"
run hooks status -c "$WORK/nonexistent.json"
assert_rc 2; assert_err "nonexistent.json"
echo '{"source": ' >"$WORK/broken.json"
run hooks status -c "$WORK/broken.json"
assert_rc 2; assert_err "broken.json"
run hooks install -c "$WORK/broken.json"
assert_rc 2
cat >"$WORK/badmaps.json" <<EOF
{"source": {"conninfo": "dbname=erp"}, "maps": "$WORK/nomaps",
 "connectors": {"target": {"type": "pg", "conninfo": "dbname=target"}}}
EOF
run hooks status -c "$WORK/badmaps.json"
assert_rc 2; assert_err "nomaps"
assert_eq "$(triggers erp)" "" "no trigger after configuration errors"

section "cannot connect"
cat >"$WORK/down.json" <<EOF
{"source": {"conninfo": "host=$WORK/nosock port=1 user=postgres dbname=erp"}, "maps": "$MAPS",
 "connectors": {"target": {"type": "pg", "conninfo": "dbname=target"}}}
EOF
run hooks status -c "$WORK/down.json"
assert_rc 2; assert_err "dwctl hooks status: error: could not connect to the source database"
run hooks install -c "$WORK/down.json"
assert_rc 1; assert_err "could not connect to the source database"

# ------------------------------------------------------------------ install

section "install creates"
run -c "$WORK/erp.json" hooks status
assert_rc 1; assert_lines ' missing$' 4
run hooks install -c "$WORK/erp.json"
assert_rc 0
assert_lines '^public\.(companies|customers|orders|order_lines): created$' 4
assert_out '^installed: 4 of 4 tables changed$'
assert_eq "$(triggers erp)" "$EXPECTED" "triggers after install"
assert_eq "$(sql erp "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'dualwrite%' AND tgparentid = 0")" 8 \
  "number of triggers"

section "install is idempotent"
run hooks install -c "$WORK/erp.json"
assert_rc 0
assert_lines ': unchanged$' 4
assert_out '^nothing to change: all 4 tables up to date$'
assert_eq "$(triggers erp)" "$EXPECTED" "triggers after the second install"

section "status ok"
run hooks status -c "$WORK/erp.json"
assert_rc 0
assert_out '^TABLE +MAPS +CAPTURE +TRUNCATE +STATE$'
assert_lines '^public\.[a-z_]+ +[a-z_]+ +always +always +ok$' 4
assert_out '^all 4 tables ok$'

section "the triggers work"
if out=$(sql_try erp "TRUNCATE companies CASCADE" 2>&1); then
  fail "TRUNCATE of a mapped table succeeded"
else
  grep -q 'cannot truncate table "public.companies"' <<<"$out" || fail "TRUNCATE error: $out"
fi
if sql_try erp "SET session_replication_role = replica; TRUNCATE order_lines" >/dev/null 2>&1; then
  fail "TRUNCATE succeeded under session_replication_role = replica (trigger not ENABLE ALWAYS)"
fi
# the capture trigger accepts its arguments and captures: with no bridge, COMMIT fails
if out=$(sql_try erp "SET dualwrite.bridge = '$WORK/no-bridge.sock';
                      SET session_replication_role = replica;
                      INSERT INTO companies VALUES ('usmf', 'Contoso', 'USD')" 2>&1); then
  fail "INSERT into a mapped table committed without a bridge"
else
  grep -q 'bridge' <<<"$out" || fail "INSERT without a bridge: $out"
fi

# ------------------------------------------------------------------ stale, missing, disabled

section "stale columns"
cp -r "$MAPS" "$WORK/maps2"
sed -i 's|{"source": "total", "target": "total"}|{"source": "total", "target": "total"}, {"source": "note", "target": "note"}|' \
  "$WORK/maps2/orders.json"
grep -q '"note"' "$WORK/maps2/orders.json" || fail "could not edit the orders map"
config "$WORK/erp2.json" erp "$WORK/maps2"
run hooks status -c "$WORK/erp2.json"
assert_rc 1
assert_out '^public\.orders +orders +always +always +stale \(columns differ\)$'
assert_lines '  ok$' 3
run hooks install -c "$WORK/erp2.json"
assert_rc 0
assert_out '^public\.orders: updated \(columns differ\)$'
assert_lines ': unchanged$' 3
assert_eq "$(sql erp "SELECT encode(tgargs, 'escape') FROM pg_trigger WHERE tgname = 'dualwrite_capture'
                      AND tgrelid = 'public.orders'::regclass")" \
  'orders\000id\000customer_id\000status\000total\000note\000' "orders capture arguments with note"
run hooks status -c "$WORK/erp2.json"
assert_rc 0
run hooks status -c "$WORK/erp.json"
assert_rc 1; assert_out '^public\.orders .*stale \(columns differ\)$'
run hooks install -c "$WORK/erp.json"
assert_rc 0
assert_eq "$(triggers erp)" "$EXPECTED" "triggers back to the example maps"

section "stale maps"
cp -r "$MAPS" "$WORK/maps3"
cat >"$WORK/maps3/companies_copy.json" <<'EOF'
{"map": "companies_copy",
 "source": {"table": "companies", "key": ["id"]},
 "target": {"connector": "target", "table": "companies_copy", "key": ["id"]},
 "fields": [{"source": "id", "target": "id"}, {"source": "name", "target": "name"}]}
EOF
config "$WORK/erp3.json" erp "$WORK/maps3"
run hooks status -c "$WORK/erp3.json"
assert_rc 1
assert_out '^public\.companies +companies,companies_copy +always +always +stale \(maps differ\)$'
run hooks install -c "$WORK/erp3.json"
assert_rc 0; assert_out '^public\.companies: updated \(maps differ\)$'
assert_eq "$(sql erp "SELECT string_agg(encode(tgargs, 'escape'), ' ' ORDER BY tgname) FROM pg_trigger
                      WHERE tgrelid = 'public.companies'::regclass AND tgname LIKE 'dualwrite%'")" \
  'companies,companies_copy\000id\000name\000currency\000 companies,companies_copy\000' \
  "arguments of a table covered by two maps"
run hooks install -c "$WORK/erp.json"
assert_rc 0; assert_out '^public\.companies: updated \(maps differ\)$'

section "missing trigger"
sql erp "DROP TRIGGER dualwrite_capture ON orders"
run hooks status -c "$WORK/erp.json"
assert_rc 1; assert_out '^public\.orders +orders +- +always +missing$'
run hooks install -c "$WORK/erp.json"
assert_rc 0; assert_out '^public\.orders: updated \(capture trigger missing\)$'
assert_eq "$(triggers erp)" "$EXPECTED" "triggers after reinstalling a dropped one"

section "disabled trigger"
sql erp "ALTER TABLE customers ENABLE TRIGGER dualwrite_capture"
run hooks status -c "$WORK/erp.json"
assert_rc 1; assert_out '^public\.customers +customers +origin +always +disabled$'
sql erp "ALTER TABLE customers DISABLE TRIGGER dualwrite_truncate"
run hooks status -c "$WORK/erp.json"
assert_rc 1; assert_out '^public\.customers +customers +origin +disabled +disabled$'
run hooks install -c "$WORK/erp.json"
assert_rc 0; assert_out '^public\.customers: updated \(not enabled always\)$'
assert_eq "$(triggers erp)" "$EXPECTED" "triggers after re-enabling"

section "foreign trigger definition"
sql erp "DROP TRIGGER dualwrite_truncate ON orders;
         CREATE TRIGGER dualwrite_truncate AFTER TRUNCATE ON orders
           FOR EACH STATEMENT EXECUTE FUNCTION dualwrite.reject_truncate('orders');
         ALTER TABLE orders ENABLE ALWAYS TRIGGER dualwrite_truncate"
run hooks status -c "$WORK/erp.json"
assert_rc 1; assert_out '^public\.orders .*stale \(definition differs\)$'
run hooks install -c "$WORK/erp.json"
assert_rc 0; assert_out '^public\.orders: updated \(definition differs\)$'
assert_eq "$(sql erp "SELECT tgtype FROM pg_trigger WHERE tgname = 'dualwrite_truncate'
                      AND tgrelid = 'orders'::regclass")" 34 "truncate trigger is BEFORE again"

# ------------------------------------------------------------------ all or nothing

section "missing column changes nothing"
sql fresh "ALTER TABLE order_lines DROP COLUMN price; ALTER TABLE customers DROP COLUMN status"
run hooks status -c "$WORK/fresh.json"
assert_rc 1; assert_out '^public\.order_lines .*no column "price"$'
run hooks install -c "$WORK/fresh.json"
assert_rc 1
assert_err 'dwctl hooks install: error: column "price" of table "public.order_lines" does not exist'
assert_err 'Table map "order_lines" ('
assert_err 'column "status" of table "public.customers" does not exist'
assert_err 'No trigger was changed.'
assert_eq "$OUT" "" "stdout of a failed install"
assert_eq "$(triggers fresh)" "" "triggers after a failed install"

section "missing table changes nothing"
sql fresh "ALTER TABLE order_lines ADD COLUMN price numeric; ALTER TABLE customers ADD COLUMN status text;
           DROP TABLE order_lines"
run hooks install -c "$WORK/fresh.json"
assert_rc 1; assert_err 'table "public.order_lines" does not exist'
assert_eq "$(triggers fresh)" "" "triggers after a failed install"
run hooks status -c "$WORK/fresh.json"
assert_rc 1; assert_out '^public\.order_lines .*no table$'

section "extension missing"
run hooks install -c "$WORK/noext.json"
assert_rc 1
assert_err 'dwctl hooks install: error: extension "dualwrite" is not installed in the source database'
assert_err 'CREATE EXTENSION dualwrite'
run hooks status -c "$WORK/noext.json"
assert_rc 1; assert_lines ' missing$' 4
assert_out 'extension "dualwrite" is not installed'
assert_eq "$(triggers noext)" "" "triggers without the extension"

# ------------------------------------------------------------------ quoting

section "quoted identifiers and literals"
sql erp "CREATE SCHEMA \"Sales\";
         CREATE TABLE \"Sales\".\"Order \"\"Lines\"\"\" (\"Id\" int PRIMARY KEY, \"it's\" text, \"back\\slash\" text)"
mkdir "$WORK/maps4"
cp "$MAPS"/*.json "$WORK/maps4/"
cat >"$WORK/maps4/odd.json" <<'EOF'
{"map": "odd",
 "source": {"table": "Sales.Order \"Lines\"", "key": ["Id"]},
 "target": {"connector": "target", "table": "odd", "key": ["id"]},
 "fields": [{"source": "Id", "target": "id"}, {"source": "it's", "target": "a"},
            {"source": "back\\slash", "target": "b"}]}
EOF
config "$WORK/erp4.json" erp "$WORK/maps4"
run hooks install -c "$WORK/erp4.json"
assert_rc 0; assert_out '^Sales\.Order "Lines": created$'
assert_eq "$(sql erp "SELECT encode(tgargs, 'escape') FROM pg_trigger WHERE tgname = 'dualwrite_capture'
                      AND tgrelid = '\"Sales\".\"Order \"\"Lines\"\"\"'::regclass")" \
  "odd\\000Id\\000it's\\000back\\\\slash\\000" "arguments with a quote and a backslash"
run hooks status -c "$WORK/erp4.json"
assert_rc 0; assert_lines '  ok$' 5

# ------------------------------------------------------------------ orphans and remove

section "orphans"
run hooks status -c "$WORK/erp.json"
assert_rc 1; assert_out '^Sales\.Order "Lines" +- +always +always +orphan$'
assert_out 'remove --all'
run hooks install -c "$WORK/erp.json"
assert_rc 0
assert_err 'warning: table "Sales.Order "Lines"" has dualwrite triggers but no table map names it'

section "remove"
run hooks remove -c "$WORK/erp.json"
assert_rc 0
assert_lines '^public\.[a-z_]+: removed$' 4
assert_err 'no table map names it'
assert_eq "$(triggers erp | cut -d' ' -f1-3)" 'Sales.Order "Lines" dualwrite_capture
Sales.Order "Lines" dualwrite_truncate' "only the orphan keeps its triggers"
run hooks status -c "$WORK/erp.json"
assert_rc 1; assert_lines ' missing$' 4; assert_lines ' orphan$' 1
run hooks remove -c "$WORK/erp.json"
assert_rc 0; assert_lines ': nothing to remove$' 4; assert_out '^nothing to remove$'

section "remove --all"
run hooks remove --all -c "$WORK/erp.json"
assert_rc 0; assert_out '^Sales\.Order "Lines": removed \(no map names it\)$'
assert_eq "$(triggers erp)" "" "triggers after remove --all"
run hooks remove --all -c "$WORK/erp.json"
assert_rc 0; assert_out '^nothing to remove$'
run hooks status -c "$WORK/erp.json"
assert_rc 1; assert_no_out 'orphan'

# ------------------------------------------------------------------ concurrent installs

section "concurrent installs"
"$DWCTL" hooks install -c "$WORK/concurrent.json" >"$WORK/c1.out" 2>&1 &
p1=$!
"$DWCTL" hooks install -c "$WORK/concurrent.json" >"$WORK/c2.out" 2>&1 &
p2=$!
wait "$p1"; r1=$?
wait "$p2"; r2=$?
[ "$r1" -eq 0 ] && [ "$r2" -eq 0 ] || fail "concurrent installs: $r1 $r2: $(cat "$WORK/c1.out" "$WORK/c2.out")"
assert_eq "$(triggers concurrent)" "$EXPECTED" "triggers after two concurrent installs"
assert_eq "$(cat "$WORK/c1.out" "$WORK/c2.out" | grep -c ': created$')" 4 "tables created once in all"

# ------------------------------------------------------------------ end

if [ "$failures" -gt 0 ]; then
  echo "$failures assertion(s) failed" >&2
  exit 1
fi
echo "all dwctl hooks tests passed"
