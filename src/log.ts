import { inspect } from 'node:util';
import { pino } from 'pino';

export type Logger = pino.Logger;

// Bot tokens travel inside request URLs (/bot<id>:<secret>/method), and network errors quote the
// URL; connection strings carry passwords. Anything that reaches a log or a job row goes through here.
const BOT_TOKEN = /\b(bot)?\d{5,}:[A-Za-z0-9_-]{20,}/g;
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)[^@/\s]+@/gi;

export function scrubSecrets(text: string): string {
  return text.replace(BOT_TOKEN, (_m, bot: string | undefined) => `${bot ?? ''}<redacted-token>`).replace(URL_PASSWORD, '$1***@');
}

/**
 * A one-line, secret-free description of anything thrown. It never throws itself: it runs inside
 * catch blocks (the worker pool's among them), where a throw would lose the job's outcome and its
 * slot. Handlers throw BigInts, circular objects and Errors whose `message` getter throws.
 */
export function errorMessage(error: unknown): string {
  try {
    return scrubSecrets(describe(error));
  } catch {
    return 'unreadable error (describing the thrown value failed)';
  }
}

function describe(error: unknown): string {
  if (error === undefined) return 'unknown error (undefined was thrown)';
  if (typeof error === 'string') return error;
  if (error instanceof Error) {
    try {
      return String(error.message) || String(error.name);
    } catch {
      return `${safeName(error)} (its message could not be read)`;
    }
  }
  if (typeof error !== 'object' || error === null) return String(error);
  try {
    return JSON.stringify(error) ?? inspect(error, INSPECT_ONE_LINE);
  } catch {
    // Circular, or a toJSON/getter that throws: inspect reads neither getters nor toJSON.
    return inspect(error, INSPECT_ONE_LINE);
  }
}

const INSPECT_ONE_LINE = { depth: 2, breakLength: Infinity, maxStringLength: 500, getters: false } as const;

function safeName(error: Error): string {
  try {
    return String(error.name) || 'Error';
  } catch {
    return 'Error';
  }
}

export interface LogOptions {
  level: string;
  name?: string;
  /** Where JSON lines go; defaults to stdout (journald picks it up under systemd). */
  destination?: pino.DestinationStream;
}

export function createLogger(options: LogOptions): Logger {
  return pino(
    {
      name: options.name ?? 'broadcast-queued',
      level: options.level,
      redact: {
        paths: ['token', 'password', 'apiToken', 'connectionString', '*.token', '*.password', '*.apiToken', '*.connectionString', 'headers.authorization'],
        censor: '***',
      },
      formatters: {
        log(fields) {
          for (const [key, value] of Object.entries(fields)) {
            if (typeof value === 'string') fields[key] = scrubSecrets(value);
          }
          return fields;
        },
      },
    },
    options.destination,
  );
}

/** A logger that drops everything; the default for library users who pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
