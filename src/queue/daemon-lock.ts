// The liveness lock's SQL names, apart from the lock itself (liveness.ts): readers such as bqctl
// status need them without loading the connection code behind the lock (pg-listen among it).

/** First key of every daemon's advisory lock: ASCII "bq". The second key is the daemon's own. */
export const LOCK_NAMESPACE = 0x6271;

/**
 * SQL true when daemon row `d` holds its liveness lock in this database: the definition of a live
 * daemon wherever one is listed or judged.
 */
export const DAEMON_HOLDS_LOCK = `EXISTS (
  SELECT 1 FROM pg_locks l
   WHERE l.locktype = 'advisory' AND l.classid = ${LOCK_NAMESPACE} AND l.objsubid = 2 AND l.granted
     AND l.objid::bigint = d.lock_key
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))`;
