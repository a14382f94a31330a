// What the dashboard's buttons do, through the same operations as the admin API and bqctl. Each
// returns the page to go back to and a sentence for the operator.
import type { Pool } from '../../db/pool.js';
import { DEFAULTS } from '../../config/defaults.js';
import { retryJobs, type JobActionResult } from '../../queue/jobs-store.js';
import { cancelJobs, setBroadcastStatus, type BroadcastAction } from '../../broadcast/control.js';
import { broadcastStatus } from '../../broadcast/broadcasts-store.js';
import { resendRecipients } from '../../broadcast/resend.js';
import { HttpError } from '../../errors.js';
import { parseId } from '../request.js';
import { runBulkAction } from './bulk.js';

export interface ActionOutcome {
  back: string;
  notice: { kind: 'done' | 'error'; text: string };
}

const JOB_ACTION = /^\/jobs\/([^/]+)\/(retry|cancel)$/;
const BROADCAST_ACTION = /^\/broadcasts\/([^/]+)\/(pause|resume|cancel|resend-unknown)$/;

/** Runs the action `path` names; null when no action has that path. */
export async function runAction(pool: Pool, path: string, form: URLSearchParams): Promise<ActionOutcome | null> {
  if (path === '/jobs/bulk') return runBulkAction(pool, form);
  let m = JOB_ACTION.exec(path);
  if (m) {
    const id = parseId(m[1]!, 'job');
    const [result] = m[2] === 'retry' ? await retryJobs(pool, [id]) : await cancelJobs(pool, [id]);
    return { back: `/jobs/${id}`, notice: jobNotice(result!) };
  }
  m = BROADCAST_ACTION.exec(path);
  if (m) {
    const id = parseId(m[1]!, 'broadcast');
    const back = `/broadcasts/${id}`;
    if (m[2] === 'resend-unknown') {
      if ((await broadcastStatus(pool, id)) === null) throw new HttpError(404, `broadcast ${id} does not exist`);
      const r = await resendRecipients(pool, id, { unknown: true, failedReasons: [], maxAttempts: DEFAULTS.maxAttempts });
      return { back, notice: r.resent ? { kind: 'done', text: `${r.resent} recipients whose delivery was unknown will be sent again (job ${r.job_id}).` } : { kind: 'error', text: 'No recipient is unknown any more; nothing was resent.' } };
    }
    const result = await setBroadcastStatus(pool, id, m[2] as BroadcastAction);
    if (result.outcome === 'not_found') throw new HttpError(404, `broadcast ${id} does not exist`);
    if (result.outcome === 'conflict') return { back, notice: { kind: 'error', text: result.error } };
    return { back, notice: { kind: 'done', text: `Broadcast ${id} is ${result.broadcast.status}.` } };
  }
  return null;
}

function jobNotice(r: JobActionResult): ActionOutcome['notice'] {
  switch (r.outcome) {
    case 'not_found':
      throw new HttpError(404, `job ${r.job_id} does not exist`);
    case 'conflict':
      return { kind: 'error', text: r.error };
    case 'broadcast_cancelled':
      return { kind: 'done', text: `Broadcast ${r.broadcast_id} was cancelled; job ${r.job_id} finishes it.` };
    default:
      return { kind: 'done', text: `Job ${r.job_id} ${r.outcome}.` };
  }
}
