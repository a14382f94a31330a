// The parts of a Bot API update the subscriber capture reads (engagement/capture.ts) and hands to
// capture.timeZone (config/options.ts); anything else in an update is ignored. Here, not in either,
// so that config does not import engagement.
export interface Chat { id: number; type: string }
export interface User { id: number; is_bot?: boolean; language_code?: string }
export interface Message { message_id: number; chat: Chat; from?: User; text?: string; entities?: { type: string; offset: number; length: number }[]; reply_to_message?: { message_id: number; from?: User } }
export interface ChatMemberUpdated { chat: Chat; from: User; new_chat_member: { status: string; is_member?: boolean } }
export interface Update {
  update_id?: number;
  message?: Message;
  edited_message?: Message;
  callback_query?: { id: string; from: User; message?: { chat: Chat }; data?: string };
  my_chat_member?: ChatMemberUpdated;
  message_reaction?: { chat: Chat; message_id: number; user?: User; new_reaction?: unknown[] };
  [other: string]: unknown;
}
