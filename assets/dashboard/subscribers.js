// broadcast-queued dashboard, Subscribers pages: sends the chosen file as the request body (with
// the CSRF token, showing the upload's progress), then follows the import's progress over
// server-sent events and shows the report when it ends.
'use strict';
(function () {
  const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.getAttribute('content') ?? '';
  const base = meta('bq-base');
  const csrf = meta('bq-csrf');

  const form = document.getElementById('import-form');
  if (form) {
    const problem = document.getElementById('import-problem');
    const say = (text) => { problem.textContent = text; };
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const file = form.elements.file.files[0];
      if (!file) return say('Choose a file first.');
      const max = Number(form.getAttribute('data-max-bytes'));
      if (file.size > max) return say(`${file.name} is ${file.size.toLocaleString('en')} bytes; the dashboard takes at most ${max.toLocaleString('en')}. Import it with bqctl subscribers import.`);
      say('');
      const button = form.querySelector('button');
      button.disabled = true;
      const bar = document.createElement('progress');
      bar.max = 1;
      bar.value = 0;
      bar.setAttribute('aria-label', 'upload progress');
      form.append(bar);
      const xhr = new XMLHttpRequest();
      xhr.open('POST', `${form.action}?name=${encodeURIComponent(file.name)}`);
      xhr.setRequestHeader('content-type', 'application/octet-stream');
      xhr.setRequestHeader('x-csrf-token', csrf);
      xhr.setRequestHeader('x-requested-with', 'bq-dashboard');
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; };
      const failed = (text) => {
        bar.remove();
        button.disabled = false;
        say(text);
      };
      xhr.onload = () => {
        if (xhr.status === 200) return location.assign(JSON.parse(xhr.responseText).location);
        // The error page says why in its .error paragraph; shown as text, never as markup.
        const reason = new DOMParser().parseFromString(xhr.responseText, 'text/html').querySelector('.error')?.textContent;
        failed(`Not imported (${xhr.status}): ${reason || xhr.statusText}`);
      };
      xhr.onerror = () => failed('The upload failed: the connection was closed.');
      xhr.send(file);
    });
  }

  const run = document.querySelector('[data-import]');
  if (run) {
    const id = run.getAttribute('data-import');
    const state = run.getAttribute('data-state');
    if (state !== 'running') return;
    const source = new EventSource(`${base}/events/imports/${encodeURIComponent(id)}`);
    source.addEventListener('update', (e) => {
      const update = JSON.parse(e.data);
      for (const [key, value] of Object.entries(update.values)) {
        for (const el of document.querySelectorAll(`[data-live="${CSS.escape(key)}"]`)) {
          if (el instanceof HTMLProgressElement) el.value = Number(value);
          else el.textContent = String(value);
        }
      }
      // Ended: the server renders the report (the rejected rows) with the page.
      if (update.state !== state) {
        source.close();
        location.reload();
      }
    });
    source.onerror = () => document.body.classList.add('stale');
    source.onopen = () => document.body.classList.remove('stale');
  }
})();
