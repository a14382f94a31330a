// Recipients for the Bot API stand-in who act on what they get: each follows the first tracked link
// of a delivered message with a chance that depends on the message's text (so variants can do
// better or worse), through the real redirect listener, and the clicks made are kept to compare
// with the report. Used by the demo and the tests; seeded, so a run can be repeated.
import type { DeliveredRecord, FakeBotApi } from './fake-bot-api.js';
import { seededRandom } from './random.js';

export interface SimulatedRecipientsOptions {
  /** BQ_PUBLIC_URL: only links under it are tracked ones. */
  publicUrl: string;
  /** Where the redirect listener answers (e.g. http://127.0.0.1:3001); publicUrl when not given. */
  redirectBase?: string;
  /** The chance (0-1) that a recipient of a message with this text follows its link. */
  clickRate(text: string): number;
  seed?: number;
}

export interface SimulatedClick {
  chatId: number;
  text: string;
  url: string;
  /** The redirect listener's answer: 302 for a link it knows. */
  status: number;
}

/** The tracked links of a delivered message, in entity and then button order. */
export function trackedLinks(body: Record<string, unknown>, publicUrl: string): string[] {
  const urls: string[] = [];
  const entities = (body.entities ?? body.caption_entities) as { url?: unknown }[] | undefined;
  for (const e of Array.isArray(entities) ? entities : []) if (typeof e?.url === 'string') urls.push(e.url);
  const keyboard = (body.reply_markup as { inline_keyboard?: { url?: unknown }[][] } | undefined)?.inline_keyboard;
  for (const row of Array.isArray(keyboard) ? keyboard : []) for (const b of Array.isArray(row) ? row : []) if (typeof b?.url === 'string') urls.push(b.url);
  return urls.filter((u) => u.startsWith(`${publicUrl}/`));
}

export class SimulatedRecipients {
  readonly clicks: SimulatedClick[] = [];
  private readonly rand: () => number;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly onDelivered = (d: DeliveredRecord) => this.consider(d);

  constructor(private readonly api: FakeBotApi, private readonly options: SimulatedRecipientsOptions) {
    this.rand = options.seed === undefined ? Math.random : seededRandom(options.seed);
    api.on('delivered', this.onDelivered);
  }

  /** Resolves once every click begun so far has been answered. */
  async settled(): Promise<void> {
    while (this.inFlight.size) await Promise.all([...this.inFlight]);
  }

  stop(): void {
    this.api.off('delivered', this.onDelivered);
  }

  private consider(d: DeliveredRecord): void {
    const text = d.text ?? d.caption ?? '';
    const url = trackedLinks(d.body, this.options.publicUrl)[0];
    // One draw per message whether or not it has a link, so the draws do not depend on the links.
    if (!(this.rand() < this.options.clickRate(text)) || url === undefined) return;
    const target = (this.options.redirectBase ?? this.options.publicUrl) + url.slice(this.options.publicUrl.length);
    const click = fetch(target, { redirect: 'manual' })
      .then(async (res) => {
        await res.arrayBuffer();
        this.clicks.push({ chatId: Number(d.chatId), text, url, status: res.status });
      })
      .catch(() => {
        this.clicks.push({ chatId: Number(d.chatId), text, url, status: 0 });
      })
      .finally(() => this.inFlight.delete(click));
    this.inFlight.add(click);
  }
}
