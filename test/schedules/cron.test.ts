// Daylight-saving days (issue 16): a 02:30 daily schedule fires once on the day 02:30 does not
// exist and once on the day it happens twice, in two time zones. The ticks come from croner
// through src/schedules/cron.ts; times are given, not waited for.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkCron, dueTicks, LATE_GRACE_MS, nextTick } from '../../src/schedules/cron.js';

/** Every tick in [from, to). */
function ticksBetween(cron: string, zone: string, from: string, to: string): string[] {
  const out: string[] = [];
  let t = nextTick(cron, zone, new Date(new Date(from).getTime() - 1));
  while (t && t < new Date(to)) {
    out.push(t.toISOString());
    t = nextTick(cron, zone, t);
  }
  return out;
}

test('Europe/Berlin: 02:30 fires once on 29 March 2026 (02:00 → 03:00) and once on 25 October (02:30 twice)', () => {
  // The local day runs from 23:00Z (CET) or 22:00Z (CEST) the evening before.
  assert.equal(ticksBetween('30 2 * * *', 'Europe/Berlin', '2026-03-28T23:00:00Z', '2026-03-29T22:00:00Z'), ['2026-03-29T01:00:00.000Z']);
  assert.equal(ticksBetween('30 2 * * *', 'Europe/Berlin', '2026-10-24T22:00:00Z', '2026-10-25T23:00:00Z'), ['2026-10-25T00:30:00.000Z']);
  // The days around are ordinary.
  assert.equal(ticksBetween('30 2 * * *', 'Europe/Berlin', '2026-03-29T22:00:00Z', '2026-03-30T22:00:00Z'), ['2026-03-30T00:30:00.000Z']);
});

test('America/New_York: 02:30 fires once on 8 March 2026 (02:00 → 03:00); 01:30 fires once on 1 November (01:30 twice)', () => {
  assert.equal(ticksBetween('30 2 * * *', 'America/New_York', '2026-03-08T05:00:00Z', '2026-03-09T04:00:00Z'), ['2026-03-08T07:00:00.000Z']);
  assert.equal(ticksBetween('30 1 * * *', 'America/New_York', '2026-11-01T04:00:00Z', '2026-11-02T05:00:00Z'), ['2026-11-01T05:30:00.000Z']);
  assert.equal(ticksBetween('30 2 * * *', 'America/New_York', '2026-11-01T04:00:00Z', '2026-11-02T05:00:00Z'), ['2026-11-01T07:30:00.000Z']);
});

test('missed ticks are skipped unless within the back-fill window; a late tick within the grace is not missed', () => {
  const due = new Date('2026-12-01T09:00:00Z');
  const now = new Date('2026-12-01T15:10:00Z');
  const skipped = dueTicks('0 * * * *', 'UTC', due, now, 0);
  assert.equal([skipped.run, skipped.missed, skipped.next?.toISOString()], [[], true, '2026-12-01T16:00:00.000Z']);
  const filled = dueTicks('0 * * * *', 'UTC', due, now, 3 * 3_600_000);
  assert.equal(filled.run.map((t) => t.toISOString()), ['2026-12-01T13:00:00.000Z', '2026-12-01T14:00:00.000Z', '2026-12-01T15:00:00.000Z']);
  assert.is(filled.missed, true);
  const late = dueTicks('0 * * * *', 'UTC', new Date('2026-12-01T15:00:00Z'), new Date(Date.parse('2026-12-01T15:00:00Z') + LATE_GRACE_MS - 1), 0);
  assert.equal([late.run.map((t) => t.toISOString()), late.missed], [['2026-12-01T15:00:00.000Z'], false]);
});

test('a bad cron or time zone is refused in a sentence', () => {
  assert.throws(() => checkCron('61 * * * *', 'UTC'), /cron "61 \* \* \* \*" is not valid: .*minute/);
  assert.throws(() => checkCron('0 9 * * 1', 'Mars/Olympus'), /time zone "Mars\/Olympus" is not an IANA time zone/);
});

test.run();
