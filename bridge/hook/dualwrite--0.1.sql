-- dualwrite 0.1: the capture trigger functions.
--
-- Capture triggers are installed per replicated table (by `dwctl hooks install`):
--   CREATE TRIGGER dualwrite_capture
--       AFTER INSERT OR UPDATE OR DELETE ON public.orders
--       FOR EACH ROW EXECUTE FUNCTION dualwrite.capture('orders', 'id', 'status', 'total');
--   ALTER TABLE public.orders ENABLE ALWAYS TRIGGER dualwrite_capture;
--   CREATE TRIGGER dualwrite_truncate
--       BEFORE TRUNCATE ON public.orders
--       FOR EACH STATEMENT EXECUTE FUNCTION dualwrite.reject_truncate('orders');
--   ALTER TABLE public.orders ENABLE ALWAYS TRIGGER dualwrite_truncate;
-- Argument 1 names the table maps covering the table (comma-separated), the
-- others are the columns to capture.

\echo Use "CREATE EXTENSION dualwrite" to load this file. \quit

-- Created here (not through the control file's "schema") so that it belongs to
-- the extension and DROP EXTENSION removes it.
CREATE SCHEMA dualwrite;
COMMENT ON SCHEMA dualwrite IS 'dualwrite: capture triggers of the bridge';

CREATE FUNCTION dualwrite.capture() RETURNS trigger
    AS 'MODULE_PATHNAME', 'dw_capture'
    LANGUAGE C;

COMMENT ON FUNCTION dualwrite.capture() IS
    'AFTER ROW trigger: captures the named columns of each changed row for the bridge';

CREATE FUNCTION dualwrite.reject_truncate() RETURNS trigger
    AS 'MODULE_PATHNAME', 'dw_reject_truncate'
    LANGUAGE C;

COMMENT ON FUNCTION dualwrite.reject_truncate() IS
    'BEFORE TRUNCATE trigger: refuses TRUNCATE of a replicated table';

-- Only whoever installs triggers needs these.
REVOKE ALL ON FUNCTION dualwrite.capture() FROM PUBLIC;
REVOKE ALL ON FUNCTION dualwrite.reject_truncate() FROM PUBLIC;
