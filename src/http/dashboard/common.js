// Shared by the dashboard pages: no external assets, all text set with textContent.
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
const tokenInput = document.getElementById('token');
tokenInput.value = sessionStorage.getItem('pnp-token') || '';
tokenInput.addEventListener('input', () => sessionStorage.setItem('pnp-token', tokenInput.value));
// One time convention everywhere (the API, `status`, the logs): UTC, zone written.
function utc(s) {
  if (!s) return '';
  const d = new Date(s);
  return isNaN(d) ? String(s) : d.toISOString().slice(0, 19) + 'Z';
}
function clock(s) { return utc(s).slice(11); }
// Bytes as IOS `dir` counts them (powers of 1024).
function bytes(n) {
  if (n === null || n === undefined) return '';
  if (n >= 1 << 30) return (n / (1 << 30)).toFixed(1) + ' GB';
  if (n >= 1 << 20) return Math.floor(n / (1 << 20)) + ' MB';
  return Math.ceil(n / 1024) + ' KB';
}
function secs(s) {
  if (s >= 3600) return Math.floor(s / 3600) + 'h' + String(Math.floor(s % 3600 / 60)).padStart(2, '0') + 'm';
  if (s >= 60) return Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's';
  return s + 's';
}
// A state badge; it may break after an underscore where the column is narrow (a phone).
function stateBadge(state) {
  const b = el('span', null, 'state state-' + state);
  String(state).split('_').forEach((part, i) => {
    if (i) { b.append('_'); b.appendChild(document.createElement('wbr')); }
    b.append(part);
  });
  return b;
}
// Step k of n as a segmented bar, coloured by how the router stands.
function stepBar(r) {
  const p = r.progress, box = el('span');
  const bar = el('span', null, 'steps');
  const now = r.state === 'FAILED' ? 'bad' : r.group === 'needs_you' ? 'wait' : 'now';
  for (let i = 1; i <= p.of; i++) {
    bar.appendChild(el('span', null, p.done || i < p.step ? 'done' : i === p.step ? now : ''));
  }
  bar.title = 'step ' + p.step + ' of ' + p.of + ': ' + p.name;
  box.append(bar, el('span', p.step + '/' + p.of + ' ' + p.name, 'step-name'));
  return box;
}
// One compact download bar: %, rate, ETA; no URL.
function download(t) {
  const box = el('span', null, 'dl ' + t.state);
  const bar = el('span', null, 'bar'), fill = el('span');
  const pct = t.total ? Math.min(100, Math.floor(t.bytes * 100 / t.total)) : 0;
  fill.style.width = pct + '%';
  bar.appendChild(fill);
  // The rate and ETA hide on a phone; the percentage stays.
  let rest = bytes(t.rate_bps) + '/s';
  if (t.state === 'stalled') rest += ' stalled';
  else if (t.eta_secs !== null && t.eta_secs !== undefined) rest += ' ' + secs(t.eta_secs);
  box.title = t.path.split('/').pop() + ': ' + bytes(t.bytes) + (t.total ? ' of ' + bytes(t.total) : '');
  box.append(bar, el('span', pct + '%', 'pct'), el('span', rest, 'txt'));
  return box;
}
// An action's answer in words an operator can act on.
async function act(serial, action) {
  const resp = await fetch('/api/devices/' + encodeURIComponent(serial) + '/' + action,
    {method: 'POST', headers: {'X-Admin-Token': tokenInput.value}});
  const text = (await resp.text()).trim();
  if (resp.status === 401) {
    return 'refused (401): enter the admin token in the box at the top right (the server printed it at start; it is in state/admin-token)';
  }
  return (resp.ok ? 'done: ' : 'refused (' + resp.status + '): ') + text;
}
