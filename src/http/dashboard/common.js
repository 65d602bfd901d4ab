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
function mb(b) { return (b / 1e6).toFixed(1) + ' MB'; }
function progress(t) {
  const box = el('span', null, t.state);
  if (t.total) {
    const bar = el('span', null, 'bar');
    const fill = el('span');
    fill.style.width = Math.min(100, Math.floor(t.bytes * 100 / t.total)) + '%';
    bar.appendChild(fill);
    box.appendChild(bar);
  }
  const name = t.path.split('/').pop();
  let text = name + ' ' + mb(t.bytes) + (t.total ? ' / ' + mb(t.total) : '') + ' ' + mb(t.rate_bps) + '/s';
  if (t.eta_secs !== null && t.eta_secs !== undefined) text += ' eta ' + t.eta_secs + 's';
  box.appendChild(el('span', text + ' ' + t.state));
  return box;
}
