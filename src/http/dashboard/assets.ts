// The dashboard's script and style, and uPlot's, served from the installed package: no CDN, no
// build step. Read once, on first use, and served with a long cache only when the URL is versioned.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { ServerResponse } from 'node:http';
import { SECURITY_HEADERS } from './respond.js';

// dist/src/http/dashboard/ → the package root's assets/dashboard/.
const OWN = fileURLToPath(new URL('../../../../assets/dashboard/', import.meta.url));
const require = createRequire(import.meta.url);

const FILES: Record<string, { path: () => string; type: string }> = {
  'dashboard.js': { path: () => `${OWN}dashboard.js`, type: 'text/javascript; charset=utf-8' },
  'subscribers.js': { path: () => `${OWN}subscribers.js`, type: 'text/javascript; charset=utf-8' },
  'dashboard.css': { path: () => `${OWN}dashboard.css`, type: 'text/css; charset=utf-8' },
  'compose.js': { path: () => `${OWN}compose.js`, type: 'text/javascript; charset=utf-8' },
  'compose.css': { path: () => `${OWN}compose.css`, type: 'text/css; charset=utf-8' },
  // The formatting parser the server checks with (src/telegram/markup.ts, an import-free module), for the preview.
  'telegram-markup.js': { path: () => fileURLToPath(new URL('../../telegram/markup.js', import.meta.url)), type: 'text/javascript; charset=utf-8' },
  'uplot.js': { path: () => require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  'uplot.css': { path: () => require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

const cache = new Map<string, Buffer>();

/** Answers /assets/<name>; false when there is no such asset. */
export function sendAsset(res: ServerResponse, name: string): boolean {
  const file = FILES[name];
  if (!file || !Object.hasOwn(FILES, name)) return false;
  let body = cache.get(name);
  if (!body) {
    body = readFileSync(file.path());
    cache.set(name, body);
  }
  res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': file.type, 'content-length': body.length, 'cache-control': 'no-cache' });
  res.end(body);
  return true;
}
