// queue.telegraf(): the subscriber capture as Telegraf middleware. It records every update, answers
// an opt-out or opt-in command when a reply is configured, and always hands the update on: the bot's
// own handlers (its /start greeting, say) still run.
import type { Context, MiddlewareFn } from 'telegraf';
import { errorMessage, type Logger } from '../log.js';
import type { SubscriberCapture, Update } from './capture.js';

export function captureMiddleware(capture: SubscriberCapture, log: Logger): MiddlewareFn<Context> {
  return async (ctx, next) => {
    const { reply } = capture.record(ctx.update as unknown as Update);
    // A user who blocked the bot right after /stop must not break the bot's update loop.
    if (reply && ctx.chat) await ctx.reply(reply).catch((error: unknown) => log.warn({ err: errorMessage(error), chatId: ctx.chat?.id }, 'opt-out or opt-in reply not sent'));
    return next();
  };
}
