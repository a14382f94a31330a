// What each scenario hands back, and the table the run prints and writes to chaos/RESULTS.md.
import type { Fleet, Incident } from './daemons.js';

export interface ScenarioResult {
  name: string;
  /** What was done to the system, in a few words with counts. */
  faults: string;
  /** Jobs (or ledger rows) that never reached a final state, or that the ledger calls sent but nobody received. */
  lost: number;
  /** Chats that received the same message more than once. */
  duplicates: number;
  /** Outcomes recorded as unknown (at-most-once after a kill, a timeout or a reset). */
  unknown: number;
  unknownNote: string;
  /** Unexpected daemon exits. */
  crashes: number;
  /** 'unhandled promise rejection' and fatal-level log lines. */
  unhandled: number;
  /** Final RSS per daemon, MB. */
  rssMb: (number | null)[];
  /** Invariants that failed: any entry fails the run. */
  failures: string[];
  /** Figures and observations that are not pass/fail. */
  notes: string[];
  durationMs: number;
  skipped?: string;
}

export function emptyResult(name: string): ScenarioResult {
  return { name, faults: '', lost: 0, duplicates: 0, unknown: 0, unknownNote: '', crashes: 0, unhandled: 0, rssMb: [], failures: [], notes: [], durationMs: 0 };
}

/** Copies the fleet's totals into the result and turns its incidents into failures or notes. */
export function absorbFleet(result: ScenarioResult, fleet: Fleet, rss: (number | null)[]): void {
  result.crashes += fleet.crashes;
  result.unhandled += fleet.unhandled;
  result.rssMb = rss;
  const byKind = (kind: Incident['kind']) => fleet.incidents().filter((i) => i.kind === kind);
  for (const i of byKind('crash')) result.failures.push(`daemon crash: ${i.daemon}: ${i.detail}`);
  for (const i of [...byKind('unhandled'), ...byKind('fatal')].slice(0, 5)) result.failures.push(`${i.kind} log line from ${i.daemon}: ${i.detail}`);
  for (const i of byKind('unclean-stop')) result.failures.push(`unclean stop: ${i.daemon}: ${i.detail}`);
  const stderr = byKind('stderr');
  if (stderr.length) result.notes.push(`${stderr.length} line(s) on daemon stderr, first: ${stderr[0]!.daemon}: ${stderr[0]!.detail}`);
}

const pass = (r: ScenarioResult) => (r.skipped ? 'SKIPPED' : r.failures.length === 0 ? 'PASS' : 'FAIL');

export function renderTable(results: ScenarioResult[]): string {
  const header = ['scenario', 'faults injected', 'jobs lost', 'duplicated', 'unknown outcomes', 'daemon crashes', 'unhandled rejections', 'final RSS (MB)', 'time', 'result'];
  const rows = results.map((r) => [
    r.name,
    r.skipped ? `— ${r.skipped}` : r.faults,
    String(r.lost),
    String(r.duplicates),
    r.unknownNote ? `${r.unknown} (${r.unknownNote})` : String(r.unknown),
    String(r.crashes),
    String(r.unhandled),
    r.rssMb.length ? r.rssMb.map((v) => (v === null ? '–' : String(v))).join(' / ') : '–',
    `${Math.round(r.durationMs / 1000)} s`,
    pass(r),
  ]);
  const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((row) => `| ${row.map(esc).join(' | ')} |`),
  ].join('\n');
}

export function renderDetails(results: ScenarioResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    out.push(`### ${r.name}: ${pass(r)}`);
    if (r.skipped) out.push(`- skipped: ${r.skipped}`);
    for (const f of r.failures) out.push(`- **FAILED**: ${f}`);
    for (const n of r.notes) out.push(`- ${n}`);
    out.push('');
  }
  return out.join('\n');
}

export const allPassed = (results: ScenarioResult[]) => results.every((r) => r.failures.length === 0);

/**
 * Writes what a failed scenario's database held (jobs, the ledger rows that matter) to the log
 * directory, so a failure can be studied after the database is dropped.
 */
export async function dumpDatabase(pool: { query: (sql: string) => Promise<{ rows: unknown[] }> }, file: string): Promise<void> {
  const { writeFile } = await import('node:fs/promises');
  const jobs = await pool.query(`SELECT job_id, queue, job_type, status, attempts, max_attempts, last_error, errors, result, locked_by, created_at, started_at, finished_at, left(payload::text, 300) AS payload FROM broadcast_queue_jobs WHERE status NOT IN ('completed', 'cancelled') OR job_type <> 'send' ORDER BY job_id LIMIT 20000`).catch(() => ({ rows: [] }));
  const ledger = await pool.query(`SELECT * FROM broadcast_deliveries WHERE status <> 'sent' OR attempts > 1 ORDER BY broadcast_id, chat_id LIMIT 20000`).catch(() => ({ rows: [] }));
  const broadcasts = await pool.query(`SELECT broadcast_id, title, status, total, sent, failed, blocked, skipped, unknown, failure_reason, job_id, created_at, started_at, finished_at, left(audience::text, 200) AS audience FROM broadcasts ORDER BY broadcast_id`).catch(() => ({ rows: [] }));
  await writeFile(file, JSON.stringify({ jobs: jobs.rows, broadcasts: broadcasts.rows, ledgerNotSimplySent: ledger.rows }, null, 1));
}
