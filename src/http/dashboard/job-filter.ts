// The jobs filter as the list's form sends it (a GET query, or the bulk confirmation's POST
// fields), and the jobs-store search it means: the list and the bulk actions read it the same way.
import type { JobSearch, JobStatus } from '../../queue/jobs-store.js';
import { HttpError } from '../../errors.js';
import { parseId, truncate } from '../request.js';

export const JOB_STATES = ['pending', 'processing', 'completed', 'failed', 'cancelled'] as const;

/** The filter as the form sent it, to fill the form again and build the next page's link. */
export interface JobFilterForm {
  state: string;
  type: string;
  queue: string;
  from: string;
  to: string;
  q: string;
}

export function jobFilterForm(query: URLSearchParams): JobFilterForm {
  const get = (k: string) => (query.get(k) ?? '').trim();
  return { state: get('state'), type: get('type'), queue: get('queue'), from: get('from'), to: get('to'), q: get('q') };
}

/** The filled fields only, as a query string (links to the next page, to the bulk confirmation and back). */
export function filterQuery(form: JobFilterForm, extra: Record<string, string> = {}): string {
  return new URLSearchParams({ ...Object.fromEntries(Object.entries(form).filter(([, v]) => v !== '')), ...extra }).toString();
}

export function jobSearch(form: JobFilterForm, before: string | null): JobSearch {
  if (form.state && !(JOB_STATES as readonly string[]).includes(form.state)) throw new HttpError(400, `state must be one of ${JOB_STATES.join(', ')}`);
  const time = (value: string, name: string) => {
    if (!value) return undefined;
    // datetime-local has no zone: it is read as UTC, as every time on these pages is shown.
    const d = new Date(/Z|[+-]\d\d:?\d\d$/.test(value) ? value : `${value}Z`);
    if (Number.isNaN(d.getTime())) throw new HttpError(400, `${name} must be a date and time such as 2026-12-03T14:00, got ${JSON.stringify(truncate(value, 40))}`);
    return d;
  };
  if (form.q.length > 200) throw new HttpError(400, 'the text to search for is longer than 200 characters');
  return {
    ...(form.state ? { statuses: [form.state as JobStatus] } : {}),
    ...(form.type ? { jobType: form.type } : {}),
    ...(form.queue ? { queue: form.queue } : {}),
    ...(form.from ? { createdFrom: time(form.from, 'created from') } : {}),
    ...(form.to ? { createdTo: time(form.to, 'created before') } : {}),
    ...(form.q ? { text: form.q } : {}),
    ...(before ? { before: parseId(before, 'job') } : {}),
  };
}

