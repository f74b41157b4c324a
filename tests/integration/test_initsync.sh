#!/usr/bin/env bash
# dw-initsync (tools/initsync) end to end: a real source cluster with the
# dualwrite extension and capture triggers, the real dualwrited doing live
# sync, and a real two-phase target cluster.
#
#   test_initsync.sh DW_INITSYNC DWCTL DUALWRITED
#       (environment: DW_PGCLUSTER, DW_HOOK_DIR, DW_SOURCE_ROOT)
#
# Sections: usage errors; correctness under live load (200,000 rows while four
# pgbench clients insert, update, change keys and delete through live sync;
# source and target identical afterwards); resume after SIGKILL without
# re-sending finished chunks (a target trigger counts every row written);
# Ctrl-C and a second run of the same map; bad rows (target CHECK constraint
# and a map rule) recorded with keys and messages, --max-errors; dry run
# changes nothing; --jobs 2 over the example maps (companies -> customers ->
# orders -> order_lines, with foreign keys on the target) plus an independent
# map; a source without the extension.
#
# Every failed assertion is reported and the script exits 1 at the end; the
# clusters and the service are stopped and the work directory removed on any
# exit.  Exit 77 (skip) when PostgreSQL 15, pgbench or the extension is missing.
set -uo pipefail

INITSYNC=${1:?usage: test_initsync.sh DW_INITSYNC DWCTL DUALWRITED}
DWCTL=${2:?}
DUALWRITED=${3:?}
for v in INITSYNC DWCTL DUALWRITED; do
  case ${!v} in /*) ;; *) printf -v "$v" '%s' "$PWD/${!v}" ;; esac
done
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
: "${DW_PGCLUSTER:?}" "${DW_HOOK_DIR:?}" "${DW_SOURCE_ROOT:?}"

[ -x "$PGBIN/initdb" ] || { echo "SKIP: no PostgreSQL 15 in $PGBIN"; exit 77; }
[ -x "$PGBIN/pgbench" ] || { echo "SKIP: no pgbench in $PGBIN"; exit 77; }
[ -f "$DW_HOOK_DIR/dualwrite.so" ] || { echo "SKIP: no dualwrite.so in $DW_HOOK_DIR"; exit 77; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dw-initsync-test.XXXXXX")
chmod 755 "$WORK"   # the postgres user must reach the clusters and the socket below it
SVC_PID=""
BG_PIDS=()
cleanup() {
  local rc=$?
  for p in "${BG_PIDS[@]+"${BG_PIDS[@]}"}"; do kill -9 "$p" 2>/dev/null; done
  [ -n "$SVC_PID" ] && { kill "$SVC_PID" 2>/dev/null; wait "$SVC_PID" 2>/dev/null; }
  if [ "$rc" -ne 0 ] && [ -f "$WORK/dualwrited.log" ]; then
    echo "--- dualwrited.log (last 30 lines)" >&2; tail -30 "$WORK/dualwrited.log" >&2
  fi
  "$DW_PGCLUSTER" stop "$WORK/src" >/dev/null 2>&1
  "$DW_PGCLUSTER" stop "$WORK/tgt" >/dev/null 2>&1
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ helpers

failures=0
step=""
fail() { echo "FAIL [$step]: $*" >&2; failures=$((failures + 1)); }
section() { step=$1; echo "--- $step ($SECONDS s)"; }

# run ARGS...: dw-initsync with its stdout, stderr and exit code in OUT ERR RC
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

src() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$SSOCK" -p "$SPORT" -U postgres -d "${DB:-postgres}" "$@"; }
tgt() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$TSOCK" -p "$TPORT" -U postgres -d postgres "$@"; }
sval() { src -c "$1" || fail "source query failed: $1"; }
tval() { tgt -c "$1" || fail "target query failed: $1"; }

# Wait until every prepared transaction of live sync is settled on the target.
settle() {
  for _ in $(seq 1 200); do
    [ "$(tgt -c "SELECT count(*) FROM pg_prepared_xacts")" = 0 ] && return 0
    sleep 0.1
  done
  fail "prepared transactions left on the target"
}

# Poll a source query until it prints a number >= $2 (at most ~60 s); 0 when reached.
wait_for() {
  for _ in $(seq 1 600); do
    v=$(src -c "$1" 2>/dev/null)
    [ -n "$v" ] && [ "$v" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}

# A fingerprint of a table's mapped columns on either side (same SQL both sides).
fingerprint() {   # SIDE TABLE COLUMNS [ORDER]
  "$1" -c "SELECT count(*) || ' ' || coalesce(md5(string_agg(concat_ws('|', $3), ';'
             ORDER BY ${4:-id})), '-') FROM $2" || { fail "fingerprint of $2 on $1"; echo "error"; }
}

# ------------------------------------------------------------------ clusters, maps, service

read -r SPORT SSOCK < <("$DW_PGCLUSTER" start "$WORK/src" --hook "$DW_HOOK_DIR" \
  --conf "shared_preload_libraries = 'dualwrite'" \
  --conf "dualwrite.bridge = '$WORK/bridge.sock'" \
  --conf "dualwrite.commit_timeout = '30s'") || { echo "could not start the source" >&2; exit 1; }
read -r TPORT TSOCK < <("$DW_PGCLUSTER" start "$WORK/tgt" --conf "max_prepared_transactions = 50") \
  || { echo "could not start the target" >&2; exit 1; }

src -f "$DW_SOURCE_ROOT/tools/demo/source.sql" >/dev/null || exit 1
src >/dev/null <<'SQL' || exit 1
CREATE SEQUENCE newkeys START 10000000;
CREATE TABLE items (id bigint PRIMARY KEY, grp int NOT NULL, val int NOT NULL, note text, internal text);
INSERT INTO items SELECT g, g % 97, g, 'item ' || g, 'x' FROM generate_series(1, 200000) g;
CREATE TABLE big (id int PRIMARY KEY, v text);
INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 200000) g;
CREATE TABLE checked (id int PRIMARY KEY, amount int, note text);
INSERT INTO checked SELECT g, CASE WHEN g % 1000 = 0 THEN -g ELSE g END,
    CASE WHEN g IN (77, 4077) THEN NULL ELSE 'n' || g END FROM generate_series(1, 5000) g;
CREATE TABLE dry (id int PRIMARY KEY, v text);
INSERT INTO dry SELECT g, 'v' || g FROM generate_series(1, 1000) g;
CREATE TABLE extra (id int PRIMARY KEY, v text);
-- values COPY must escape, nulls, and characters beyond ASCII
INSERT INTO extra SELECT g, CASE g % 6 WHEN 0 THEN E'tab\there' WHEN 1 THEN E'line\nbreak\r'
    WHEN 2 THEN E'back\\slash \\N' WHEN 3 THEN NULL WHEN 4 THEN 'ü€ 𝄞' ELSE '' END
  FROM generate_series(1, 20000) g;
CREATE TABLE moved (id int PRIMARY KEY, amount int);
INSERT INTO moved SELECT g, g FROM generate_series(1, 10) g WHERE g <> 9;
INSERT INTO companies VALUES ('usmf', 'Contoso US', 'USD'), ('usrt', 'Contoso Retail', 'USD'),
    ('demf', 'Contoso DE', 'EUR');
INSERT INTO customers SELECT g, (ARRAY['usmf', 'usrt', 'demf'])[g % 3 + 1], 'customer ' || g,
    CASE WHEN g % 10 = 0 THEN 'blocked' ELSE 'active' END, 1000 FROM generate_series(1, 3000) g;
INSERT INTO orders SELECT g, g % 3000 + 1, (ARRAY['draft', 'confirmed', 'shipped', 'cancelled'])[g % 4 + 1],
    g % 500, NULL FROM generate_series(1, 20000) g;
INSERT INTO order_lines SELECT o, l, 'item' || l, l, 1.50 FROM generate_series(1, 20000) o,
    generate_series(1, 3) l;
VACUUM ANALYZE;
CREATE DATABASE noext;
SQL
DB=noext src -c "CREATE TABLE dry (id int PRIMARY KEY, v text)" >/dev/null || exit 1

tgt -f "$DW_SOURCE_ROOT/tools/demo/target.sql" >/dev/null || exit 1
tgt >/dev/null <<'SQL' || exit 1
ALTER TABLE customers ADD FOREIGN KEY (company) REFERENCES companies;
CREATE TABLE items (id bigint PRIMARY KEY, grp int, val int, note text);
CREATE TABLE big (id int PRIMARY KEY, v text);
CREATE TABLE checked (id int PRIMARY KEY, amount int NOT NULL CHECK (amount >= 0), note text NOT NULL);
CREATE TABLE dry (id int PRIMARY KEY, v text);
CREATE TABLE extra (id int PRIMARY KEY, v text);
CREATE TABLE moved (id int PRIMARY KEY, amount int CHECK (amount >= 0));
-- every row written to big, committed: inserts and updates
CREATE TABLE writes (n bigint NOT NULL);
INSERT INTO writes VALUES (0);
CREATE FUNCTION count_writes() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN UPDATE writes SET n = n + (SELECT count(*) FROM new_rows); RETURN NULL; END$$;
CREATE TRIGGER count_ins AFTER INSERT ON big REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION count_writes();
CREATE TRIGGER count_upd AFTER UPDATE ON big REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION count_writes();
SQL

mkdir -p "$WORK/maps"
cp "$DW_SOURCE_ROOT"/maps/examples/*.json "$WORK/maps/"
simple_map() {   # NAME FIELD... (key "id"; "col!" makes a field required)
  local name=$1 fields="" f req; shift
  for f in id "$@"; do
    req=""
    case $f in *!) f=${f%!}; req=', "required": true' ;; esac
    fields="$fields${fields:+, }{\"source\": \"$f\", \"target\": \"$f\"$req}"
  done
  cat >"$WORK/maps/$name.json" <<EOF
{"map": "$name", "source": {"table": "public.$name", "key": ["id"]},
 "target": {"connector": "target", "table": "$name", "key": ["id"]},
 "fields": [$fields]}
EOF
}
simple_map items grp val note
simple_map big v
simple_map checked amount 'note!'
simple_map dry v
simple_map extra v

config() {   # FILE DB LIMITS
  cat >"$1" <<EOF
{"listen": {"unix": "$WORK/bridge.sock", "group": "postgres"},
 "source": {"conninfo": "host=$SSOCK port=$SPORT user=postgres dbname=$2"},
 "maps": "$WORK/maps",
 "connectors": {"target": {"type": "pg", "commit": "two-phase", "timeout_ms": 30000,
   "conninfo": "host=$TSOCK port=$TPORT user=postgres dbname=postgres",
   "limits": $3}},
 "resolver": {"interval_ms": 200, "grace_ms": 1000},
 "log_level": "warning"}
EOF
}
NOLIMITS='{"records_per_transaction": 0, "requests_per_window": 0, "execution_s_per_window": 0, "concurrent": 0}'
CFG=$WORK/dualwrite.json
config "$CFG" postgres "$NOLIMITS"
config "$WORK/noext.json" noext "$NOLIMITS"
config "$WORK/limited.json" postgres '{"records_per_transaction": 500}'

"$DWCTL" hooks install -c "$CFG" >/dev/null || { echo "dwctl hooks install failed" >&2; exit 1; }
simple_map moved amount    # after the hooks: its changes are not captured (see "a key moves")
"$DUALWRITED" -c "$CFG" >"$WORK/dualwrited.log" 2>&1 &
SVC_PID=$!
for _ in $(seq 1 200); do [ -S "$WORK/bridge.sock" ] && break; sleep 0.05; done
[ -S "$WORK/bridge.sock" ] || { cat "$WORK/dualwrited.log" >&2; echo "dualwrited did not start" >&2; exit 1; }
# live sync works before anything else is tested
src -c "UPDATE items SET note = 'live' WHERE id = 1" || exit 1
settle
[ "$(tval "SELECT note FROM items WHERE id = 1")" = live ] || { echo "live sync does not work" >&2; exit 1; }

# ------------------------------------------------------------------ usage

section "usage"
run --help
assert_rc 0; assert_out '^usage: dw-initsync -c CONFIG'
run
assert_rc 2; assert_err 'no configuration'
run -c "$CFG"
assert_rc 2; assert_err 'no maps chosen'
run -c "$CFG" --all --map items
assert_rc 2; assert_err '--all and --map exclude each other'
run -c "$CFG" --map items --resume --restart
assert_rc 2; assert_err '--resume and --restart exclude each other'
run -c "$CFG" --map items --chunk 0
assert_rc 2; assert_err 'invalid value "0" for "--chunk"'
run -c "$CFG" --map items --jobs x
assert_rc 2; assert_err 'invalid value "x" for "--jobs"'
run -c "$CFG" --map items --rate=-5
assert_rc 2; assert_err 'invalid value "-5" for "--rate"'
run -c "$CFG" --map items --bogus
assert_rc 2; assert_err 'unknown option "--bogus"'
run -c "$CFG" --map
assert_rc 2; assert_err 'option "--map" needs a value'
run -c "$CFG" --map nosuchmap
assert_rc 2; assert_err 'no table map is named "nosuchmap"'; assert_err '"order_lines"'
run -c "$WORK/nonexistent.json" --all
assert_rc 2; assert_err 'nonexistent.json'
run -c "$WORK/noext.json" --map dry
assert_rc 2; assert_err 'schema "dualwrite" does not exist'; assert_err 'CREATE EXTENSION dualwrite'
run -c "$WORK/limited.json" --map dry --dry-run
assert_rc 0; assert_err '500 rows per chunk'
# dualwrite.origin is superuser-only: a plain role needs GRANT SET
src -c "CREATE ROLE app LOGIN; GRANT SELECT ON dry TO app" >/dev/null
sed "s/user=postgres dbname=postgres\"},/user=app dbname=postgres\"},/" "$CFG" >"$WORK/app.json"
run -c "$WORK/app.json" --map dry --dry-run
assert_rc 2; assert_err 'cannot set "dualwrite.origin"'; assert_err 'GRANT SET ON PARAMETER dualwrite.origin'
src -c "GRANT SET ON PARAMETER dualwrite.origin TO app" >/dev/null
run -c "$WORK/app.json" --map dry --dry-run
assert_rc 0

# ------------------------------------------------------------------ live load

section "correctness under live load"
cat >"$WORK/load.sql" <<'EOF'
\set id random(1, 200000)
\set op random(1, 10)
\if :op <= 3
INSERT INTO items (id, grp, val, note, internal) VALUES (nextval('newkeys'), :id % 97, :id, 'new', 'x');
\elif :op <= 7
UPDATE items SET val = val + 1, note = 'upd' WHERE id = :id;
\elif :op <= 8
UPDATE items SET id = nextval('newkeys') WHERE id = :id;
\else
DELETE FROM items WHERE id = :id;
\endif
EOF
"$PGBIN/pgbench" -n -c 4 -j 2 -T 600 -f "$WORK/load.sql" -h "$SSOCK" -p "$SPORT" -U postgres postgres \
  >"$WORK/pgbench.out" 2>&1 &
BENCH=$!
BG_PIDS+=("$BENCH")
wait_for "SELECT count(*) FROM items WHERE note = 'upd' OR id >= 10000000" 50 \
  || fail "the load did not start"
# small chunks at a limited rate, so that the copy and the load overlap for a few seconds
changed_before=$(sval "SELECT count(*) FROM items WHERE note = 'upd' OR id >= 10000000")
run -c "$CFG" --map items --chunk 2000 --rate 40000
changed_during=$(( $(sval "SELECT count(*) FROM items WHERE note = 'upd' OR id >= 10000000") - changed_before ))
echo "    rows changed by the load while the copy ran: $changed_during"
[ "$changed_during" -ge 20 ] || fail "the load changed only $changed_during rows while the copy ran"
assert_rc 0
assert_out '^items +done +[0-9]+ +[0-9]+ +0 +0 '
kill -TERM "$BENCH" 2>/dev/null; wait "$BENCH" 2>/dev/null   # a background job ignores SIGINT
for _ in $(seq 1 100); do
  [ "$(sval "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbench'")" = 0 ] && break
  sleep 0.1
done
settle
moved=$(sval "SELECT count(*) FROM items WHERE id >= 10000000 AND note <> 'new'")
[ "$moved" -ge 1 ] || fail "the live load changed no key"
[ "$(sval "SELECT count(*) FROM items")" -ne 200000 ] || fail "inserts and deletes left the count unchanged"
assert_eq "$(fingerprint tgt items 'id, grp, val, note')" "$(fingerprint src items 'id, grp, val, note')" \
  "items on the target after the copy under load"

# ------------------------------------------------------------------ resume after SIGKILL

section "resume after SIGKILL"
"$INITSYNC" -c "$CFG" --map big --chunk 5000 --rate 40000 >"$WORK/kill.out" 2>&1 &
KPID=$!
BG_PIDS+=("$KPID")
wait_for "SELECT rows_read FROM dualwrite.initsync_checkpoint WHERE map = 'big'" 60000 \
  || fail "no checkpoint past 60000 rows"
kill -9 "$KPID"; wait "$KPID" 2>/dev/null
assert_eq "$(sval "SELECT finished_at IS NULL FROM dualwrite.initsync_checkpoint WHERE map = 'big'")" t \
  "checkpoint unfinished after SIGKILL"
before=$(sval "SELECT rows_read FROM dualwrite.initsync_checkpoint WHERE map = 'big'")
run -c "$CFG" --map big
assert_rc 2; assert_err 'table map "big" has an unfinished initial sync'; assert_err '--resume'
run -c "$CFG" --map big --resume --chunk 5000
assert_rc 0
assert_out "^big +done +$((200000 - before)) +$((200000 - before)) +0 +0 "
assert_err "resumed after $before rows"
assert_eq "$(sval "SELECT rows_read || ' ' || rows_written || ' ' || (finished_at IS NOT NULL)
                   FROM dualwrite.initsync_checkpoint WHERE map = 'big'")" "200000 200000 true" \
  "checkpoint after the resume"
assert_eq "$(fingerprint tgt big 'id, v')" "$(fingerprint src big 'id, v')" "big after the resume"
writes=$(tval "SELECT n FROM writes")
# every row once, plus at most the one chunk whose target commit beat its checkpoint
[ "$writes" -ge 200000 ] && [ "$writes" -le 205000 ] \
  || fail "the target saw $writes row writes for 200000 rows (finished chunks sent again?)"

section "Ctrl-C and a second run of the same map"
"$INITSYNC" -c "$CFG" --map big --restart --chunk 5000 --rate 40000 >"$WORK/int.out" 2>"$WORK/int.err" &
IPID=$!
BG_PIDS+=("$IPID")
wait_for "SELECT rows_read FROM dualwrite.initsync_checkpoint WHERE map = 'big'" 20000 \
  || fail "no checkpoint past 20000 rows"
run -c "$CFG" --map big --resume
assert_rc 2; assert_err 'table map "big" is being copied by another dw-initsync'
kill -INT "$IPID"; wait "$IPID"; irc=$?
assert_eq "$irc" 1 "exit status after Ctrl-C"
grep -q 'interrupted' "$WORK/int.out" "$WORK/int.err" || fail "no interruption in the summary: $(cat "$WORK/int.out")"
grep -q -- '--resume' "$WORK/int.err" || fail "no hint to --resume: $(cat "$WORK/int.err")"
assert_eq "$(sval "SELECT finished_at IS NULL FROM dualwrite.initsync_checkpoint WHERE map = 'big'")" t \
  "checkpoint unfinished after Ctrl-C"
run -c "$CFG" --map big --resume
assert_rc 0
assert_eq "$(sval "SELECT rows_read FROM dualwrite.initsync_checkpoint WHERE map = 'big'")" 200000 \
  "rows read over both runs"
assert_eq "$(fingerprint tgt big 'id, v')" "$(fingerprint src big 'id, v')" "big after Ctrl-C and resume"

# ------------------------------------------------------------------ bad rows

section "bad rows"
run -c "$CFG" --map checked
assert_rc 1
assert_out '^checked +done +5000 +4993 +0 +7 '
assert_err 'source key (id)=(1000)'
assert_err 'check constraint'
assert_eq "$(sval "SELECT string_agg(source_key[1], ',' ORDER BY source_key[1]::int)
                   FROM dualwrite.initsync_error WHERE map = 'checked'")" \
  "77,1000,2000,3000,4000,4077,5000" "keys of the failed rows"
assert_eq "$(sval "SELECT count(*) FROM dualwrite.initsync_error WHERE map = 'checked'
                   AND sqlstate = '23514' AND message LIKE '%check constraint%'")" 5 "target rejections"
assert_eq "$(sval "SELECT count(*) FROM dualwrite.initsync_error WHERE map = 'checked'
                   AND message LIKE '%field \"note\": required value is null%'")" 2 "map rule rejections"
assert_eq "$(tval "SELECT count(*) FROM checked")" 4993 "rows copied around the bad ones"
assert_eq "$(sval "SELECT rows_failed FROM dualwrite.initsync_checkpoint WHERE map = 'checked'")" 7 \
  "failed rows in the checkpoint"

section "--max-errors"
run -c "$CFG" --map checked --restart --max-errors 2
assert_rc 1
assert_err 'more than 2 rows failed'
assert_eq "$(sval "SELECT string_agg(source_key[1], ',' ORDER BY source_key[1]::int)
                   FROM dualwrite.initsync_error WHERE map = 'checked'")" "77,1000,2000" \
  "the run stopped at the third failed row"
run -c "$CFG" --map checked --resume
assert_rc 1
assert_eq "$(sval "SELECT count(*) FROM dualwrite.initsync_error WHERE map = 'checked'")" 7 \
  "failed rows after the resume"
assert_eq "$(sval "SELECT rows_read || ' ' || rows_failed FROM dualwrite.initsync_checkpoint
                   WHERE map = 'checked'")" "5000 7" "checkpoint after the resume"

section "a key moves while the chunk waits, then the run stops in that chunk"
# Session X changes row 2's key to 9 (and makes it a row the target rejects)
# while the chunk's read waits for the row's lock: READ COMMITTED returns the
# new version, key 9, among keys 1, 3, 4 ...  With --max-errors 0 the run
# stops at that row; checkpointing key 9 would skip rows 3 to 8 on --resume.
mkfifo "$WORK/x.fifo"
src <"$WORK/x.fifo" >/dev/null 2>&1 &
XPID=$!
BG_PIDS+=("$XPID")
exec 7>"$WORK/x.fifo"
echo "BEGIN; UPDATE moved SET id = 9, amount = -1 WHERE id = 2;" >&7
wait_for "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND mode = 'ExclusiveLock'
            AND pid <> pg_backend_pid() AND granted" 1 || fail "session X holds no lock"
"$INITSYNC" -c "$CFG" --map moved --max-errors 0 >"$WORK/moved.out" 2>"$WORK/moved.err" &
MPID=$!
BG_PIDS+=("$MPID")
wait_for "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dw-initsync'
            AND wait_event_type = 'Lock'" 1 || fail "dw-initsync never waited for the row lock"
echo "COMMIT;" >&7
exec 7>&-
wait "$XPID"
wait "$MPID"; mrc=$?
assert_eq "$mrc" 1 "exit status after the stop"
grep -q 'more than 0 rows failed' "$WORK/moved.err" || fail "no stop: $(cat "$WORK/moved.out" "$WORK/moved.err")"
run -c "$CFG" --map moved --resume
assert_rc 1
assert_eq "$(tval "SELECT string_agg(id::text, ',' ORDER BY id) FROM moved")" "1,3,4,5,6,7,8,10" \
  "rows on the target after the resume"
assert_eq "$(sval "SELECT string_agg(source_key[1], ',') FROM dualwrite.initsync_error WHERE map = 'moved'")" \
  "9" "failed rows of moved"

# ------------------------------------------------------------------ dry run

section "dry run"
t_before=$(fingerprint tgt checked 'id, amount, note')
run -c "$CFG" --map dry --map checked --dry-run
assert_rc 1       # the map rule rejects two rows of "checked"
assert_out 'dry +done +1000 +1000 +0 +0 '
assert_out 'checked +done +5000 +4998 +0 +2 '
assert_err 'would fail'
assert_eq "$(tval "SELECT count(*) FROM dry")" 0 "rows on the target after a dry run"
assert_eq "$(sval "SELECT count(*) FROM dualwrite.initsync_checkpoint WHERE map = 'dry'")" 0 \
  "checkpoints after a dry run"
assert_eq "$(sval "SELECT count(*) FROM dualwrite.initsync_error WHERE map = 'checked'")" 7 \
  "failed rows after a dry run"
assert_eq "$(fingerprint tgt checked 'id, amount, note')" "$t_before" "target unchanged by a dry run"
run -c "$CFG" --map dry --dry-run --restart
assert_rc 2

# ------------------------------------------------------------------ depends_on and --jobs

section "--jobs 2 with depends_on"
run -c "$CFG" --map order_lines --map orders --map customers --map companies --map extra --jobs 2
assert_rc 0
assert_out '^companies +done +3 +3 +0 +0 '
assert_out '^customers +done +3000 +2000 +1000 +0 '
assert_out '^orders +done +20000 +20000 +0 +0 '
assert_out '^order_lines +done +60000 +60000 +0 +0 '
assert_out '^extra +done +20000 +20000 +0 +0 '
assert_eq "$(tval "SELECT count(*) FROM customers WHERE state = 1")" \
  "$(sval "SELECT count(*) FROM customers WHERE status = 'blocked' AND company IN ('usmf', 'usrt')")" \
  "value map of customers.status"
assert_eq "$(tval "SELECT count(DISTINCT origin_system) || ' ' || min(origin_system) FROM customers")" \
  "1 erp" "constant of customers.origin_system"
assert_eq "$(tval "SELECT count(*) FROM orders WHERE status = 'open'")" \
  "$(sval "SELECT count(*) FROM orders WHERE status IN ('draft', 'confirmed')")" "value map of orders.status"
assert_eq "$(fingerprint tgt extra "id, coalesce(v, '<null>')")" "$(fingerprint src extra "id, coalesce(v, '<null>')")" \
  "extra: escaped values, nulls, UTF-8"
assert_eq "$(fingerprint tgt order_lines "order_id, line, item, qty, price" "order_id, line")" \
  "$(fingerprint src order_lines "order_id, line, item, qty, price" "order_id, line")" "order_lines"

# a parent that does not finish keeps its children from starting
section "children of a failed parent"
tgt -c "ALTER TABLE companies RENAME TO companies_gone" >/dev/null
run -c "$CFG" --map companies --map customers --restart
assert_rc 1
assert_out '^customers +skipped '
assert_err 'not started: table map "companies" did not finish'
tgt -c "ALTER TABLE companies_gone RENAME TO companies" >/dev/null

# ------------------------------------------------------------------ end

if [ "$failures" -gt 0 ]; then
  echo "$failures assertion(s) failed" >&2
  exit 1
fi
echo "all dw-initsync tests passed ($SECONDS s)"
