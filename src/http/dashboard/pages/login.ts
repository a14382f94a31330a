// The login page: the admin token (or the read-only one) typed once; a link ending in
// #token=… fills it in (a fragment never reaches the server or its logs).
import { html, type Html } from '../html.js';

export function loginPage(base: string, error: string | null): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · broadcast-queued</title><meta name="bq-base" content="${base}">
<link rel="stylesheet" href="${base}/assets/dashboard.css"><script src="${base}/assets/dashboard.js" defer></script>
</head><body class="login"><main>
<h1>broadcast-queued</h1>
<form method="post" action="${base}/login" id="login">
<label for="token">Admin or read-only token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
${error ? html`<p class="error" role="alert">${error}</p>` : ''}
<button>Log in</button>
</form>
<p class="muted">The token is BQ_API_TOKEN (everything) or BQ_VIEWER_TOKEN (look, change nothing).</p>
</main></body></html>`;
}
