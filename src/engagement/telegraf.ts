// queue.telegraf(): the subscriber capture as Telegraf middleware. It records every update, answers
// an opt-out or opt-in command when a reply is configured, and always hands the update on: the bot's
// own handlers (its /start greeting, say) still run. A tracked callback button's press is recorded
// and answered here, and the bot's handlers see the button's original callback_data.
import type { Context, MiddlewareFn } from 'telegraf';
import { errorMessage, type Logger } from '../log.js';
import type { SubscriberCapture, Update } from './capture.js';
import { resolveTrackedPress } from './tracked-press.js';
import type { Tracking } from './tracking.js';

export function captureMiddleware(capture: SubscriberCapture, tracking: Tracking | null, log: Logger): MiddlewareFn<Context> {
  return async (ctx, next) => {
    const update = ctx.update as unknown as Update;
    const { reply } = capture.record(update);
    // A user who blocked the bot right after /stop must not break the bot's update loop.
    if (reply && ctx.chat) await ctx.reply(reply).catch((error: unknown) => log.warn({ err: errorMessage(error), chatId: ctx.chat?.id }, 'opt-out or opt-in reply not sent'));
    if (await resolveTrackedPress(tracking, update, log)) {
      await ctx.answerCbQuery().catch((error: unknown) => log.warn({ err: errorMessage(error) }, 'tracked button press not answered'));
    }
    return next();
  };
}
