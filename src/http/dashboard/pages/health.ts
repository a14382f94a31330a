// Health: what `bqctl doctor` checks that the daemon itself can see — the listener, the database,
// the bot (token state, halts and 429 pauses) and the migrations.
import type { MigrationState } from '../../../db/migrate.js';
import type { RateLimitState } from '../../../telegram/rate-limit-sql.js';
import { html, when, type Html } from '../html.js';
import { page, type PageContext } from '../layout.js';

type Mark = 'ok' | 'fail' | 'warn';
export interface HealthCheck { name: string; mark: Mark; detail: string }

export interface HealthData {
  /** The /health answer (http/views.ts health()). */
  health: { status: string; reasons?: string[]; listener: { connected: boolean }; database: { reachable: boolean; latencyMs: number | null }; processor: { running: boolean; paused: boolean; activeJobs: number; concurrency: number }; telegram: { botId: number; halted: string | null } | null };
  migrations: MigrationState | null;
  rateLimits: RateLimitState[];
}

export function healthChecks(d: HealthData): HealthCheck[] {
  const h = d.health;
  const checks: HealthCheck[] = [
    { name: 'database reachable', mark: h.database.reachable ? 'ok' : 'fail', detail: h.database.reachable ? `SELECT 1 in ${h.database.latencyMs} ms` : 'no answer to SELECT 1' },
    { name: 'LISTEN connection', mark: h.listener.connected ? 'ok' : 'fail', detail: h.listener.connected ? 'connected: jobs start as they are inserted' : 'down: jobs start only on the fallback sweep' },
    { name: 'this daemon', mark: h.processor.running ? (h.processor.paused ? 'warn' : 'ok') : 'fail', detail: `${h.processor.running ? (h.processor.paused ? 'paused' : 'running') : 'not running'}, ${h.processor.activeJobs} of ${h.processor.concurrency} slots busy` },
  ];
  if (d.migrations) {
    const m = d.migrations;
    checks.push(m.pending.length
      ? { name: 'migrations current', mark: 'fail', detail: `pending: ${m.pending.map((x) => `${x.version} ${x.name}`).join(', ')} (run bqctl migrate)` }
      : m.unknown.length
        ? { name: 'migrations current', mark: 'warn', detail: `the database has migrations this build does not know: ${m.unknown.join(', ')}` }
        : { name: 'migrations current', mark: 'ok', detail: `${m.applied.length} applied, none pending` });
  }
  checks.push(h.telegram
    ? { name: 'bot token', mark: h.telegram.halted ? 'fail' : 'ok', detail: h.telegram.halted ? `sending halted: ${h.telegram.halted}` : `bot ${h.telegram.botId} accepted by getMe` }
    : { name: 'bot token', mark: 'warn', detail: 'no Telegram bot configured here: send and broadcast jobs are not claimed by this daemon' });
  const now = Date.now();
  const halted = d.rateLimits.find((r) => r.haltedAt);
  const paused = d.rateLimits.find((r) => r.pausedUntil && r.pausedUntil.getTime() > now);
  checks.push(halted
    ? { name: 'sending not halted or paused', mark: 'fail', detail: `bot ${halted.botId} halted since ${when(halted.haltedAt)}: ${halted.haltReason ?? 'token rejected'}` }
    : paused
      ? { name: 'sending not halted or paused', mark: 'warn', detail: `bot ${paused.botId} paused by a 429 until ${when(paused.pausedUntil)}` }
      : { name: 'sending not halted or paused', mark: 'ok', detail: d.rateLimits.length ? `${d.rateLimits.length} bot(s), none halted or paused` : 'no sends recorded yet' });
  return checks;
}

const SIGN: Record<Mark, string> = { ok: '✓', fail: '✗', warn: '!' };

export function healthPage(ctx: PageContext, d: HealthData): Html {
  const checks = healthChecks(d);
  return page(ctx, 'Health', '/health', html`
<p class="${d.health.status === 'healthy' ? 'ok' : 'error'}">${d.health.status}${d.health.reasons?.length ? html`: ${d.health.reasons.join('; ')}` : ''}</p>
<ul class="checks">${checks.map((c) => html`<li class="mark-${c.mark}"><span class="mark">${SIGN[c.mark]}</span> <strong>${c.name}</strong>: ${c.detail}</li>`)}</ul>
<p class="muted">The NOTIFY round trip and the admin API from outside are checked by <code>bqctl doctor</code>, run on the daemon's machine.</p>`);
}
