#!/usr/bin/env bash
# dw-initsync (tools/initsync) against every non-PostgreSQL connector: ODBC
# with SQLite and with a real MariaDB server (prepared statements, parameter
# arrays), and OData with a real OData v4 server (one $batch per chunk).  The
# source is a real PostgreSQL cluster with the dualwrite extension (the
# checkpoints live in its schema); live sync is test_initsync.sh's subject.
#
#   test_initsync_connectors.sh DW_INITSYNC
#       (environment: DW_PGCLUSTER, DW_HOOK_DIR, DW_SOURCE_ROOT)
#
# Per target: 3000 rows in chunks of 500 (100 for OData); a few rows the
# target rejects (a CHECK constraint, or the OData service's business rule)
# are recorded with their keys and messages and the rest is copied (exit 1);
# after fixing the rows on the source, --restart copies everything (exit 0)
# and the target holds exactly the source's rows.  A target whose prerequisites
# are missing (driver, server, node) is skipped with a note; the script exits
# 77 only when none could run.
set -uo pipefail

INITSYNC=${1:?usage: test_initsync_connectors.sh DW_INITSYNC}
case $INITSYNC in /*) ;; *) INITSYNC=$PWD/$INITSYNC ;; esac
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
: "${DW_PGCLUSTER:?}" "${DW_HOOK_DIR:?}" "${DW_SOURCE_ROOT:?}"
FIX=$(dirname "$DW_PGCLUSTER")

[ -x "$PGBIN/initdb" ] || { echo "SKIP: no PostgreSQL 15 in $PGBIN"; exit 77; }
[ -f "$DW_HOOK_DIR/dualwrite.so" ] || { echo "SKIP: no dualwrite.so in $DW_HOOK_DIR"; exit 77; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dw-initsync-conn.XXXXXX")
chmod 755 "$WORK"
cleanup() {
  local rc=$?
  [ -d "$WORK/odata" ] && "$FIX/odataserver" stop "$WORK/odata" >/dev/null 2>&1
  [ -d "$WORK/maria" ] && "$FIX/mariadb" stop "$WORK/maria" >/dev/null 2>&1
  "$DW_PGCLUSTER" stop "$WORK/src" >/dev/null 2>&1
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failures=0 ran=0
step=""
fail() { echo "FAIL [$step]: $*" >&2; failures=$((failures + 1)); }
section() { step=$1; echo "--- $step ($SECONDS s)"; }
run() {
  "$INITSYNC" "$@" >"$WORK/out" 2>"$WORK/err"
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
assert_out() { grep -Eq -- "$1" <<<"$OUT" || fail "stdout has no line matching /$1/:
$OUT"; }
assert_err() { grep -Fq -- "$1" <<<"$ERR" || fail "stderr does not contain \"$1\":
$ERR"; }
assert_eq() { [ "$1" == "$2" ] || fail "$3: got \"$1\", expected \"$2\""; }
src() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$SSOCK" -p "$SPORT" -U postgres -d postgres "$@"; }

# ------------------------------------------------------------------ the source

read -r SPORT SSOCK < <("$DW_PGCLUSTER" start "$WORK/src" --hook "$DW_HOOK_DIR") \
  || { echo "could not start the source" >&2; exit 1; }
# one table per target: 3000 rows, amounts of every 1000th row negative
src >/dev/null <<'SQL' || exit 1
CREATE EXTENSION dualwrite;
CREATE TABLE to_sqlite (id int PRIMARY KEY, note text, amount int NOT NULL);
CREATE TABLE to_maria (id int PRIMARY KEY, note text, amount int NOT NULL);
CREATE TABLE to_odata (id int PRIMARY KEY, status text, amount numeric(12,2) NOT NULL);
INSERT INTO to_sqlite SELECT g, 'row ' || g || E' tab\there', CASE WHEN g % 1000 = 0 THEN -1 ELSE g END
  FROM generate_series(1, 3000) g;
INSERT INTO to_maria SELECT * FROM to_sqlite;
INSERT INTO to_odata SELECT g, 'draft', CASE WHEN g % 1000 = 0 THEN -1 ELSE g / 4.0 END
  FROM generate_series(1, 3000) g;
SQL
mkdir -p "$WORK/maps"
map() {   # NAME CONNECTOR TABLE KEY FIELDS(source:target,...)
  local fields="" f
  for f in ${5//,/ }; do
    fields="$fields${fields:+, }{\"source\": \"${f%%:*}\", \"target\": \"${f##*:}\"}"
  done
  cat >"$WORK/maps/$1.json" <<EOF
{"map": "$1", "source": {"table": "public.$1", "key": ["id"]},
 "target": {"connector": "$2", "table": "$3", "key": ["$4"]},
 "fields": [$fields]}
EOF
}
map to_sqlite sqlite lines id "id:id,note:note,amount:amount"
map to_maria maria lines id "id:id,note:note,amount:amount"
map to_odata odata Orders ID "id:ID,status:status,amount:amount"
connectors="" targets=()
add_connector() { connectors="$connectors${connectors:+,
   }$1"; }

# ------------------------------------------------------------------ targets that can run here

SQLITE_DB=$WORK/target.sqlite
if odbcinst -q -d 2>/dev/null | grep -q '^\[SQLite3\]' && command -v sqlite3 >/dev/null; then
  sqlite3 "$SQLITE_DB" "CREATE TABLE lines (id INTEGER PRIMARY KEY, note TEXT, amount INTEGER CHECK (amount >= 0))"
  add_connector "\"sqlite\": {\"type\": \"odbc\", \"connection_string\": \"DRIVER={SQLite3};Database=$SQLITE_DB\"}"
  targets+=(sqlite)
else
  echo "note: no SQLite3 ODBC driver or sqlite3: ODBC/SQLite skipped"
fi

if odbcinst -q -d 2>/dev/null | grep -q '^\[MariaDB Unicode\]' && [ -x "$FIX/mariadb" ] \
   && read -r MPORT MSOCK < <("$FIX/mariadb" start "$WORK/maria" 2>"$WORK/maria.err"); then
  "$FIX/mariadb" sql "$WORK/maria" "CREATE DATABASE dw; CREATE TABLE dw.lines (id INT PRIMARY KEY, note VARCHAR(200),
      amount INT, CONSTRAINT amount_ok CHECK (amount >= 0)) ENGINE=InnoDB" >/dev/null || exit 1
  add_connector "\"maria\": {\"type\": \"odbc\", \"commit\": \"one-phase\",
      \"connection_string\": \"DRIVER={MariaDB Unicode};SOCKET=$MSOCK;DATABASE=dw;UID=root;PWD=\"}"
  targets+=(maria)
  : "$MPORT"
else
  echo "note: no MariaDB server or ODBC driver: ODBC/MariaDB skipped ($(cat "$WORK/maria.err" 2>/dev/null))"
fi

if [ -x "$FIX/odataserver" ] && "$FIX/odataserver" start "$WORK/odata" --owner $$ >"$WORK/odata.port" 2>"$WORK/odata.err"; then
  # shellcheck disable=SC1091
  . "$WORK/odata/env"
  add_connector "\"odata\": {\"type\": \"odata\", \"url\": \"$DW_ODATA_URL\", \"token\": \"$DW_ODATA_TOKEN\"}"
  targets+=(odata)
else
  echo "note: no OData server (node): OData skipped ($(tail -1 "$WORK/odata.err" 2>/dev/null))"
fi

[ ${#targets[@]} -gt 0 ] || { echo "SKIP: no target could be started"; exit 77; }
cat >"$WORK/dualwrite.json" <<EOF
{"source": {"conninfo": "host=$SSOCK port=$SPORT user=postgres dbname=postgres"},
 "maps": "$WORK/maps",
 "connectors": {$connectors}}
EOF
# maps whose connector did not start are not in the configuration
for m in to_sqlite to_maria to_odata; do
  c=${m#to_}
  [[ " ${targets[*]} " == *" $c "* ]] || rm -f "$WORK/maps/$m.json"
done

# ------------------------------------------------------------------ one target

# target_rows TARGET: "count sum(amount)" as the target has it
target_rows() {
  case $1 in
    sqlite) sqlite3 "$SQLITE_DB" "SELECT count(*) || ' ' || coalesce(sum(amount), 0) FROM lines" ;;
    maria) "$FIX/mariadb" sql "$WORK/maria" "SELECT CONCAT(count(*), ' ', coalesce(sum(amount), 0)) FROM dw.lines" ;;
    odata) curl -sf -H "Authorization: Bearer $DW_ODATA_TOKEN" "${DW_ODATA_URL}Orders?\$count=true&\$top=0" \
             | sed -n 's/.*"@odata.count":\([0-9]*\).*/\1/p' ;;
  esac
}
# source_rows TABLE: the same on the source
source_rows() { src -c "SELECT count(*) || ' ' || sum(amount)::bigint FROM $1"; }

for t in "${targets[@]}"; do
  table=to_$t
  chunk=500
  [ "$t" = odata ] && chunk=100   # the test server takes ~25 ms per single-row $batch
  section "$t: bad rows reported, the rest copied"
  run -c "$WORK/dualwrite.json" --map "$table" --chunk "$chunk"
  assert_rc 1
  assert_out "^$table +done +3000 +2997 +0 +3 "
  assert_err 'source key (id)=(1000)'
  assert_eq "$(src -c "SELECT string_agg(source_key[1], ',' ORDER BY source_key[1]::int)
                       FROM dualwrite.initsync_error WHERE map = '$table'")" "1000,2000,3000" \
    "$t: keys of the failed rows"
  msg=$(src -c "SELECT message FROM dualwrite.initsync_error WHERE map = '$table' LIMIT 1")
  [ -n "$msg" ] || fail "$t: no message recorded"
  echo "    $t says: $msg"
  case $t in
    odata) assert_eq "$(target_rows odata)" 2997 "$t: rows on the target" ;;
    *) assert_eq "$(target_rows "$t")" "2997 $(src -c "SELECT sum(amount) FROM $table WHERE amount >= 0")" \
         "$t: rows on the target" ;;
  esac

  section "$t: fixed rows, --restart copies everything"
  src -c "UPDATE $table SET amount = 0 WHERE amount < 0" >/dev/null
  run -c "$WORK/dualwrite.json" --map "$table" --chunk "$chunk" --restart
  assert_rc 0
  assert_out "^$table +done +3000 +3000 +0 +0 "
  case $t in
    odata) assert_eq "$(target_rows odata)" 3000 "$t: rows on the target" ;;
    *) assert_eq "$(target_rows "$t")" "$(source_rows "$table")" "$t: rows on the target" ;;
  esac
  ran=$((ran + 1))
done
# a value with a tab survives the way through ODBC
if [[ " ${targets[*]} " == *" sqlite "* ]]; then
  assert_eq "$(sqlite3 "$SQLITE_DB" "SELECT note FROM lines WHERE id = 7")" "row 7 tab$(printf '\t')here" \
    "sqlite: a value with a tab"
fi

if [ "$failures" -gt 0 ]; then
  echo "$failures assertion(s) failed" >&2
  exit 1
fi
echo "all dw-initsync connector tests passed: ${targets[*]} ($SECONDS s)"
