// `broadcast-queued/testing`: the local Bot API stand-in, for the tests of an application built on
// this package. It is not part of the main entry: production code never needs it.
export {
  FakeBotApi, DEFAULT_FAKE_TOKEN, isSendMethod, maxArrivalsInWindow,
  type FakeBotApiOptions, type FaultOptions, type ChatState, type ChatId, type CallRecord, type DeliveredRecord,
} from './fake-bot-api.js';
export { SimulatedRecipients, trackedLinks, type SimulatedRecipientsOptions, type SimulatedClick } from './simulated-recipients.js';
