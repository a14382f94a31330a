// broadcast-queued dashboard: the little script the server-rendered pages need. Confirms and
// sends actions (with the CSRF token), keeps data-live fields current from server-sent events,
// draws the throughput charts with uPlot, and fills the login form from a #token= link.
'use strict';
(function () {
  const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.getAttribute('content') ?? '';
  const base = meta('bq-base');
  const csrf = meta('bq-csrf');
  const sources = [];
  let acting = false;

  // A login link ending in #token=… (npm run demo prints one): the fragment never reaches a server.
  const login = document.getElementById('login');
  if (login && location.hash.startsWith('#token=')) {
    login.elements.token.value = decodeURIComponent(location.hash.slice('#token='.length));
    history.replaceState(null, '', location.pathname);
    login.submit();
  }

  // Actions: confirm, then POST with the CSRF token in a header too (X-Requested-With lets a
  // token-less dashboard's local-only guard tell this page from a form on another site).
  document.addEventListener('submit', async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute('data-action')) return;
    event.preventDefault();
    const question = form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) return;
    // The live stream would reload the page when the action changes the status; that reload could
    // race this one's navigation and use up the notice the action leaves for the next page.
    acting = true;
    for (const source of sources) source.close();
    for (const b of form.querySelectorAll('button')) b.disabled = true;
    try {
      const res = await fetch(form.action, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrf-token': csrf, 'x-requested-with': 'bq-dashboard' },
        body: new URLSearchParams(new FormData(form)).toString(),
        credentials: 'same-origin',
      });
      if (res.ok) location.assign((await res.json()).location);
      else document.documentElement.innerHTML = await res.text();
    } catch (error) {
      window.alert(`The request failed: ${error}`);
      for (const b of form.querySelectorAll('button')) b.disabled = false;
    }
  });

  function setLive(values) {
    for (const [key, value] of Object.entries(values)) {
      for (const el of document.querySelectorAll(`[data-live="${CSS.escape(key)}"]`)) {
        if (el instanceof HTMLProgressElement) el.value = Number(value);
        else if (el.textContent !== String(value)) el.textContent = String(value);
      }
    }
  }

  function stream(path, onUpdate) {
    const source = new EventSource(`${base}${path}`);
    sources.push(source);
    source.addEventListener('update', (e) => {
      if (!acting) onUpdate(JSON.parse(e.data));
    });
    source.addEventListener('problem', () => document.body.classList.add('stale'));
    source.onerror = () => document.body.classList.add('stale');
    source.onopen = () => document.body.classList.remove('stale');
    return source;
  }

  // Charts: messages sent and jobs finished, per bucket; uPlot draws them on a canvas.
  const charts = [];
  const chartData = document.getElementById('chart-data');
  function drawCharts(data) {
    if (typeof uPlot === 'undefined') return;
    for (const [id, key] of [['chart-hour', 'hour'], ['chart-day', 'day']]) {
      const el = document.getElementById(id);
      if (!el) continue;
      const existing = charts.find((c) => c.id === id);
      if (existing) {
        existing.plot.setData(data[key]);
        continue;
      }
      const width = Math.max(300, el.clientWidth || 600);
      const plot = new uPlot({
        title: el.getAttribute('data-title'), width, height: 220,
        series: [{}, { label: 'messages sent', stroke: '#2563eb', width: 2 }, { label: 'jobs completed', stroke: '#16a34a' }, { label: 'jobs failed', stroke: '#dc2626' }],
        axes: [{}, { size: 60 }],
      }, data[key], el);
      charts.push({ id, plot, el });
    }
  }
  if (chartData) {
    window.addEventListener('load', () => drawCharts(JSON.parse(chartData.textContent)));
    window.addEventListener('resize', () => {
      for (const c of charts) c.plot.setSize({ width: Math.max(300, c.el.clientWidth), height: 220 });
    });
  }

  const overview = document.getElementById('overview');
  if (overview) {
    const shape = overview.getAttribute('data-shape');
    stream('/events/overview', (update) => {
      if (update.shape !== shape) return location.reload();
      setLive(update.values);
      drawCharts(update.charts);
    });
  }

  const broadcast = document.querySelector('[data-broadcast]');
  if (broadcast) {
    const id = broadcast.getAttribute('data-broadcast');
    const status = document.querySelector(`[data-live="b:${CSS.escape(id)}:status"]`)?.textContent;
    const source = stream(`/events/broadcasts/${encodeURIComponent(id)}`, (update) => {
      setLive(update.values);
      // The buttons that apply change with the status: the server renders them again.
      // "counting…" was shown: the kept report is ready now.
      if (update.status !== status || (update.report && broadcast.hasAttribute('data-report-counting'))) {
        source.close();
        location.reload();
      }
    });
  }
})();
