// The token in a tracked link (/r/<token>) or callback button (bq:<token>). It names the broadcast,
// the recipient and the link or button, so no row per link per recipient is needed, and it must be
// short (it lives in messages and in callback_data's 64 bytes), unforgeable, and carry no personal
// data readable by whoever sees the link:
//  - the 16-byte block [kind, index, broadcast id (6 bytes), chat id (8 bytes)] is encrypted with
//    AES-128 (one block, a keyed permutation: the chat id is unreadable without the key);
//  - an HMAC-SHA256 of the encrypted block, cut to 8 bytes, makes it unforgeable (2^-64 per guess);
//  - both keys are derived (HKDF) from BQ_LINK_SECRET, a secret of its own: the admin token or the
//    webhook secret could not be rotated without breaking every link already sent.
// 24 bytes, 32 characters of base64url.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

export type TokenKind = 'link' | 'button';

export interface TokenFields {
  kind: TokenKind;
  broadcastId: number;
  chatId: number;
  /** Position in the broadcast's list of distinct links (or callback buttons), 0-255. */
  index: number;
}

const KIND_BYTE: Record<TokenKind, number> = { link: 1, button: 2 };
const TAG_BYTES = 8;
export const TOKEN_LENGTH = 32;
const TOKEN_FORM = /^[A-Za-z0-9_-]{32}$/;
/** Links and buttons per broadcast that can be tracked: the index is one byte. */
export const MAX_TRACKED = 256;

export class LinkTokens {
  private readonly encryptionKey: Buffer;
  private readonly macKey: Buffer;

  constructor(secret: string) {
    const ikm = Buffer.from(secret, 'utf8');
    this.encryptionKey = Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), 'broadcast-queued link token encryption', 16));
    this.macKey = Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), 'broadcast-queued link token mac', 32));
  }

  encode(fields: TokenFields): string {
    const block = Buffer.alloc(16);
    block[0] = KIND_BYTE[fields.kind];
    block[1] = fields.index;
    block.writeUIntBE(fields.broadcastId, 2, 6);
    block.writeBigInt64BE(BigInt(fields.chatId), 8);
    const cipher = createCipheriv('aes-128-ecb', this.encryptionKey, null).setAutoPadding(false);
    const sealed = Buffer.concat([cipher.update(block), cipher.final()]);
    return Buffer.concat([sealed, this.tag(sealed)]).toString('base64url');
  }

  /** The fields of a token this key made, or null for anything else (malformed, forged, another key's). */
  decode(token: string): TokenFields | null {
    if (!TOKEN_FORM.test(token)) return null;
    const bytes = Buffer.from(token, 'base64url');
    const sealed = bytes.subarray(0, 16);
    if (!timingSafeEqual(bytes.subarray(16), this.tag(sealed))) return null;
    const decipher = createDecipheriv('aes-128-ecb', this.encryptionKey, null).setAutoPadding(false);
    const block = Buffer.concat([decipher.update(sealed), decipher.final()]);
    const kind = block[0] === KIND_BYTE.link ? 'link' : block[0] === KIND_BYTE.button ? 'button' : null;
    if (!kind) return null;
    return { kind, index: block[1]!, broadcastId: block.readUIntBE(2, 6), chatId: Number(block.readBigInt64BE(8)) };
  }

  private tag(sealed: Buffer): Buffer {
    return createHmac('sha256', this.macKey).update(sealed).digest().subarray(0, TAG_BYTES);
  }
}
