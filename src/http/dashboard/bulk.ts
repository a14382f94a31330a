// "Retry / cancel every job matching the filter": a confirmation page that counts what the action
// would take on (up to the newest id at that moment), then the action itself in batches
// (broadcast/bulk-control.ts). The POST carries the same filter fields as the list's form.
import type { Pool } from '../../db/pool.js';
import { BULK_LIMIT, countBulk, newestJobId, runBulk, type BulkAction } from '../../broadcast/bulk-control.js';
import { HttpError } from '../../errors.js';
import type { HeavyReads } from './heavy-reads.js';
import { parseId } from '../request.js';
import { count } from './html.js';
import { filterQuery, jobFilterForm, jobSearch } from './job-filter.js';
import type { JobFilterForm } from './job-filter.js';

export interface BulkPreview {
  action: BulkAction;
  form: JobFilterForm;
  /** The newest job id when the page was shown: the action touches no newer job. */
  upTo: number;
  /** Jobs the action would take on now; BULK_LIMIT + 1 means more than BULK_LIMIT. */
  matching: number;
}

function bulkAction(value: string | null): BulkAction {
  if (value === 'retry' || value === 'cancel') return value;
  throw new HttpError(400, 'action must be retry or cancel');
}

export async function bulkPreview(pool: Pool, query: URLSearchParams, heavy: HeavyReads): Promise<BulkPreview> {
  const action = bulkAction(query.get('action'));
  const form = jobFilterForm(query);
  const search = jobSearch(form, null);
  return heavy.run(pool, 'counting the jobs matching the filter', async (c) => {
    const upTo = await newestJobId(c);
    return { action, form, upTo, matching: await countBulk(c, { action, search, upTo }) };
  });
}

/** What the action did, as actions.ts's ActionOutcome: the page to go back to and a sentence. */
export async function runBulkAction(pool: Pool, fields: URLSearchParams): Promise<{ back: string; notice: { kind: 'done' | 'error'; text: string } }> {
  // Not 'action': a form field of that name would hide the form's own action property from its script.
  const action = bulkAction(fields.get('bulk_action'));
  const form = jobFilterForm(fields);
  const upTo = parseId(fields.get('up_to') ?? '', 'job');
  const r = await runBulk(pool, { action, search: jobSearch(form, null), upTo });
  const query = filterQuery(form);
  const back = `/jobs${query ? `?${query}` : ''}`;
  const verb = action === 'retry' ? 'Retried' : 'Cancelled';
  const done = `${verb} ${count(r.done)} job${r.done === 1 ? '' : 's'} matching the filter`;
  if (r.done >= BULK_LIMIT) return { back, notice: { kind: 'done', text: `${done}, the most one action takes on; more may match.` } };
  if (r.refused === 0) return { back, notice: { kind: 'done', text: `${done}.` } };
  return { back, notice: { kind: 'error', text: `${done}; ${count(r.refused)} changed meanwhile and could not be: ${r.errors.join('; ')}${r.refused > r.errors.length ? '; …' : ''}` } };
}
