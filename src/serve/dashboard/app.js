// The fuseflow dashboard: hash-routed views over the REST API (docs/rest-api.md).
// No library, no build step. Data from the API only ever reaches the page
// through textContent and setAttribute.
'use strict';

const SVG_NS = 'http://www.w3.org/2000/svg';
const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted'];
const ACTIVE = new Set(['queued', 'running']);
const PAGE_SIZE = 25;
const TOKEN_KEY = 'fuseflow.token';

let token = null;            // the bearer token, when one is known
let generation = 0;          // bumped on every navigation; stale async work checks it
let pollTimer = null;        // the pending poll of the current view
const seenPipelines = new Set();

const $ = (selector) => document.querySelector(selector);
const enc = encodeURIComponent;

// ---------------------------------------------------------------- DOM helpers

// Set attributes (keys starting with "on" become listeners) and append children (nodes or text).
function build(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
const el = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
const svg = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);
const add = (parent, ...children) => build(parent, {}, children);

// A <dl> from [label, value] pairs; pairs whose value is null are left out.
function facts(pairs, attrs = {}) {
  return el('dl', { class: 'facts', ...attrs },
    pairs.filter(([, v]) => v != null).map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

function badge(status, id) {
  return el('span', { id, class: `badge status-${status}` }, status);
}

const truncate = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);
const runHref = (id) => `#/runs/${enc(id)}`;
const stepHref = (run, step) => `#/runs/${enc(run)}/steps/${enc(step)}`;

// ---------------------------------------------------------------- formatting

function fmtBytes(n) {
  if (n == null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

function fmtDuration(ms) {
  if (ms == null) return '—';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

const fmtTime = (ms) => (ms == null ? '—' : new Date(ms).toLocaleString());
const fmtInt = (n) => (n == null ? '—' : Number(n).toLocaleString('en-US'));

// A metric value with up to 6 significant digits.
function fmtNum(v) {
  if (v == null) return '—';
  if (typeof v !== 'number') return String(v);
  return String(Number(v.toPrecision(6)));
}

// A run's duration; a running one counts up from its start.
function runDuration(run) {
  if (run.duration_ms != null) return run.duration_ms;
  if (run.started_ms != null && run.ended_ms == null && run.status === 'running') return Date.now() - run.started_ms;
  return null;
}

// ---------------------------------------------------------------- token, API, banner

// Split the fragment into a path and its query; "#token=T" is a query without a path.
function splitHash() {
  const raw = location.hash.replace(/^#/, '');
  const i = raw.indexOf('?');
  let path = i < 0 ? raw : raw.slice(0, i);
  let qs = i < 0 ? '' : raw.slice(i + 1);
  if (!path.startsWith('/') && path.includes('=')) { qs = qs ? `${path}&${qs}` : path; path = ''; }
  return { path, query: new URLSearchParams(qs) };
}

// Take a token from the fragment once, keep it in sessionStorage, and remove it from the address bar.
function takeToken() {
  const { path, query } = splitHash();
  const fromUrl = query.get('token');
  try {
    if (fromUrl) sessionStorage.setItem(TOKEN_KEY, fromUrl);
    token = fromUrl || sessionStorage.getItem(TOKEN_KEY) || token;
  } catch (_) {
    token = fromUrl || token;
  }
  if (!fromUrl) return;
  query.delete('token');
  const qs = query.toString();
  const hash = path + (qs ? `?${qs}` : '');
  history.replaceState(null, '', location.pathname + location.search + (hash ? `#${hash}` : ''));
}

function showBanner(message) {
  $('#banner-text').textContent = message;
  $('#banner').hidden = false;
}

// Every API call goes through here: adds the token, parses JSON, and turns an
// {"error"} answer into a banner (unless quiet) and a thrown Error with .status.
async function api(path, options = {}) {
  const { raw, quiet, ...init } = options;
  const headers = new Headers(init.headers || {});
  if (token) headers.set('Authorization', `Bearer ${token}`);
  const fail = (err) => { if (!quiet) showBanner(err.message); throw err; };
  let res;
  try {
    res = await fetch(path, { ...init, headers });
  } catch (e) {
    return fail(new Error(`Cannot reach the server: ${e.message}`));
  }
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = await res.json();
      if (body && body.error) message = body.error;
    } catch (_) { /* not JSON */ }
    const err = new Error(message);
    err.status = res.status;
    return fail(err);
  }
  if (raw) return res;
  return res.status === 204 ? null : res.json();
}

// Download through fetch (so the token is sent), then save the Blob via an object URL.
async function saveWithToken(path, filename) {
  const res = await api(path, { raw: true });
  const url = URL.createObjectURL(await res.blob());
  const a = el('a', { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

function downloadLink(path, filename, format) {
  const onclick = (e) => {
    if (!token) return; // a plain href works without a token
    e.preventDefault();
    saveWithToken(path, filename).catch(() => {});
  };
  return el('a', { href: path, download: filename, class: 'download button', 'data-format': format, onclick },
    `Download ${format}`);
}

// ---------------------------------------------------------------- polling

function stopPolling() {
  clearTimeout(pollTimer);
  pollTimer = null;
  $('#live').hidden = true;
}

// Run fn every `ms` while it resolves true and view `gen` is still shown.
function poll(gen, fn, ms) {
  if (gen !== generation) return;
  stopPolling();
  $('#live').hidden = false;
  const tick = async () => {
    let again = true;
    try { again = await fn(); } catch (_) { /* the banner shows it; keep trying */ }
    if (gen !== generation) return;
    if (again) pollTimer = setTimeout(tick, ms);
    else stopPolling();
  };
  pollTimer = setTimeout(tick, ms);
}

// ---------------------------------------------------------------- tables and charts

// Compare for sorting: empty values last, numbers numerically, text naturally.
function compare(a, b, numeric) {
  if (a == null || a === '') return b == null || b === '' ? 0 : 1;
  if (b == null || b === '') return -1;
  if (numeric || (typeof a === 'number' && typeof b === 'number')) return Number(a) - Number(b);
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

// Numeric columns align right unless the column names its own class.
const cellClass = (c) => ('cls' in c ? c.cls : c.numeric ? 'num' : null);

// A table sorted by clicking a header. A column: {label, value(row), cell(row)?, numeric?, cls?}.
function sortableTable(columns, rows, attrs) {
  const state = { col: -1, dir: 1 };
  const table = el('table', { class: 'grid sortable', ...attrs });
  const draw = () => {
    const sorted = rows.slice();
    if (state.col >= 0) {
      const c = columns[state.col];
      sorted.sort((a, b) => {
        const [va, vb] = [c.value(a), c.value(b)];
        if (va == null || vb == null) return compare(va, vb, c.numeric);
        return state.dir * compare(va, vb, c.numeric);
      });
    }
    const head = columns.map((c, i) => {
      const sort = i === state.col ? (state.dir > 0 ? 'ascending' : 'descending') : 'none';
      const onclick = () => { state.dir = i === state.col ? -state.dir : 1; state.col = i; draw(); };
      return el('th', { 'aria-sort': sort, 'data-col': c.label, class: cellClass(c), onclick },
        c.label, el('span', { class: 'arrow' }, sort === 'ascending' ? ' ▲' : sort === 'descending' ? ' ▼' : ''));
    });
    const body = sorted.map((r) => el('tr', {}, columns.map((c) =>
      el('td', { class: cellClass(c) }, c.cell ? c.cell(r) : c.value(r) ?? '—'))));
    table.replaceChildren(el('thead', {}, el('tr', {}, head)), el('tbody', {}, body));
  };
  draw();
  return table;
}

// A linear map from [d0, d1] to [r0, r1].
const scale = (d0, d1, r0, r1) => (v) => (d1 === d0 ? (r0 + r1) / 2 : r0 + ((v - d0) / (d1 - d0)) * (r1 - r0));

// A <select> over names, calling onchange with the chosen one.
function chooser(id, names, onchange) {
  return el('select', { id, onchange: (e) => onchange(e.target.value) },
    names.map((n) => el('option', { value: n }, n)));
}

// A bar chart: one bar per label, with a zero baseline.
function barChart(id, labels, values) {
  const nums = values.filter((v) => typeof v === 'number');
  if (!nums.length) return el('p', { class: 'empty' }, 'No values for this metric.');
  const [W, H, L, B, T] = [900, 260, 64, 46, 18];
  let lo = Math.min(0, ...nums);
  let hi = Math.max(0, ...nums);
  if (lo === hi) hi = 1;
  const y = scale(lo, hi, H - B, T);
  const slot = (W - L - 10) / labels.length;
  const barW = Math.min(56, slot * 0.7);
  const chart = svg('svg', { id, class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H },
    svg('line', { class: 'axis', x1: L, x2: W - 10, y1: y(0), y2: y(0) }),
    svg('text', { class: 'tick', x: L - 6, y: y(hi) + 4, 'text-anchor': 'end' }, fmtNum(hi)),
    svg('text', { class: 'tick', x: L - 6, y: y(lo) + 4, 'text-anchor': 'end' }, fmtNum(lo)));
  labels.forEach((label, i) => {
    const v = values[i];
    const cx = L + i * slot + slot / 2;
    chart.append(svg('text', { class: 'tick', x: cx, y: H - B + 16, 'text-anchor': 'middle' }, truncate(label, 14)));
    if (typeof v !== 'number') return;
    chart.append(svg('rect', {
      class: 'bar', 'data-label': label, x: cx - barW / 2, width: barW,
      y: Math.min(y(v), y(0)), height: Math.max(1, Math.abs(y(v) - y(0))),
    }, svg('title', {}, `${label}: ${fmtNum(v)}`)),
    svg('text', { class: 'value', x: cx, y: Math.min(y(v), y(0)) - 4, 'text-anchor': 'middle' }, fmtNum(v)));
  });
  return chart;
}

// A line chart of points {x: time ms, y, label}, oldest left.
function lineChart(id, points) {
  if (!points.length) return el('p', { class: 'empty' }, 'No values for this metric.');
  const [W, H, L, R, T, B] = [900, 280, 72, 24, 18, 40];
  const ys = points.map((p) => p.y);
  let lo = Math.min(...ys);
  let hi = Math.max(...ys);
  if (lo === hi) { lo -= 1; hi += 1; }
  const x = scale(points[0].x, points[points.length - 1].x, L, W - R);
  const y = scale(lo, hi, H - B, T);
  const d = points.map((p, i) => `${i ? 'L' : 'M'}${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`).join(' ');
  const first = points[0];
  const last = points[points.length - 1];
  return svg('svg', { id, class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H },
    svg('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }),
    svg('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }),
    svg('text', { class: 'tick', x: L - 6, y: y(hi) + 4, 'text-anchor': 'end' }, fmtNum(hi)),
    svg('text', { class: 'tick', x: L - 6, y: y(lo) + 4, 'text-anchor': 'end' }, fmtNum(lo)),
    svg('text', { class: 'tick', x: L, y: H - B + 18, 'text-anchor': 'start' }, fmtTime(first.x)),
    points.length > 1 && svg('text', { class: 'tick', x: W - R, y: H - B + 18, 'text-anchor': 'end' }, fmtTime(last.x)),
    svg('path', { class: 'line', d }),
    points.map((p) => svg('circle', { class: 'point', cx: x(p.x), cy: y(p.y), r: 4, 'data-run': p.label },
      svg('title', {}, `${p.label} (${fmtTime(p.x)}): ${fmtNum(p.y)}`))));
}

// ---------------------------------------------------------------- #/runs

// Fill the pipeline filter from every pipeline seen so far; rebuilt only when that set grows.
function fillPipelineSelect(select, selected) {
  if (Number(select.dataset.count) === seenPipelines.size) return;
  select.dataset.count = String(seenPipelines.size);
  select.replaceChildren(el('option', { value: '' }, 'all pipelines'),
    ...[...seenPipelines].sort().map((n) => el('option', { value: n, selected: n === selected }, n)));
}

function runsTable(runs) {
  const heads = ['Run', 'Pipeline', 'Status', 'Started', 'Duration', 'Steps', 'Hits', 'Failed steps'];
  const rows = runs.map((r) => el('tr', { 'data-run': r.id },
    el('td', {}, el('a', { href: runHref(r.id), class: 'mono' }, r.id)),
    el('td', {}, r.pipeline),
    el('td', {}, badge(r.status)),
    el('td', {}, fmtTime(r.started_ms)),
    el('td', { class: 'num' }, fmtDuration(runDuration(r))),
    el('td', { class: 'num' }, fmtInt(r.steps)),
    el('td', { class: 'num' }, fmtInt(r.hits)),
    el('td', { class: r.failed_steps ? 'num bad' : 'num' }, fmtInt(r.failed_steps))));
  return [
    el('table', { id: 'runs', class: 'grid' },
      el('thead', {}, el('tr', {}, heads.map((h, i) => el('th', { class: i > 3 ? 'num' : null }, h)))),
      el('tbody', {}, rows)),
    !runs.length && el('p', { class: 'empty' }, 'No runs match.'),
  ];
}

function pager(total, offset, count, go) {
  const shown = count ? `${offset + 1}–${offset + count} of ${total}` : `0 of ${total}`;
  return [
    el('button', { id: 'prev', disabled: offset <= 0, onclick: () => go({ offset: Math.max(0, offset - PAGE_SIZE) }) }, '← Previous'),
    el('span', { id: 'page-info' }, shown),
    el('button', { id: 'next', disabled: offset + count >= total, onclick: () => go({ offset: offset + PAGE_SIZE }) }, 'Next →'),
  ];
}

// The runs list, filtered by the fragment's query, refreshed every 2 s while any run is active.
async function viewRuns(root, query, gen) {
  const filter = {
    pipeline: query.get('pipeline') || '',
    status: query.get('status') || '',
    offset: Math.max(0, parseInt(query.get('offset'), 10) || 0),
  };
  const go = (changes) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries({ ...filter, ...changes })) if (v) q.set(k, v);
    location.hash = `#/runs${q.toString() ? `?${q}` : ''}`;
  };
  if (filter.pipeline) seenPipelines.add(filter.pipeline);
  const pipeSelect = el('select', { id: 'filter-pipeline', onchange: (e) => go({ pipeline: e.target.value, offset: 0 }) });
  fillPipelineSelect(pipeSelect, filter.pipeline);
  const statusSelect = el('select', { id: 'filter-status', onchange: (e) => go({ status: e.target.value, offset: 0 }) },
    el('option', { value: '' }, 'all statuses'),
    STATUSES.map((s) => el('option', { value: s, selected: s === filter.status }, s)));
  const tableBox = el('div', { class: 'table-box' });
  const pagerBox = el('div', { class: 'pager' });
  add(root, el('h1', {}, 'Runs'),
    el('div', { class: 'filters' }, el('label', {}, 'Pipeline ', pipeSelect), el('label', {}, 'Status ', statusSelect)),
    tableBox, pagerBox);

  api('/pipelines', { quiet: true }).then((ps) => {
    ps.forEach((p) => seenPipelines.add(p.name));
    fillPipelineSelect(pipeSelect, filter.pipeline);
  }).catch(() => {});

  const load = async () => {
    const q = new URLSearchParams({ limit: PAGE_SIZE, offset: filter.offset });
    if (filter.pipeline) q.set('pipeline', filter.pipeline);
    if (filter.status) q.set('status', filter.status);
    const page = await api(`/runs?${q}`);
    page.runs.forEach((r) => seenPipelines.add(r.pipeline));
    fillPipelineSelect(pipeSelect, filter.pipeline);
    tableBox.replaceChildren(...runsTable(page.runs).filter(Boolean));
    pagerBox.replaceChildren(...pager(page.total, filter.offset, page.runs.length, go));
    return page.runs.some((r) => ACTIVE.has(r.status));
  };
  if (await load()) poll(gen, load, 2000);
}

// ---------------------------------------------------------------- #/runs/{id}

function runHeader(run, onCancel) {
  // The recorded text: a rerun line, then `[params]` and one `name = value` per line.
  const params = (run.params || '').split('\n').filter((line) => line && line !== '[params]').join(', ');
  const cancel = ACTIVE.has(run.status) && el('button', {
    id: 'cancel-run', class: 'danger',
    onclick: (e) => { e.target.disabled = true; onCancel(); },
  }, 'Cancel');
  return [
    el('div', { class: 'run-title' },
      el('h1', {}, 'Run ', el('span', { class: 'mono' }, run.id)), badge(run.status, 'run-status'), cancel),
    facts([
      ['Pipeline', el('a', { href: `#/pipelines/${enc(run.pipeline)}/metrics`, id: 'run-pipeline' }, run.pipeline)],
      ['Started', fmtTime(run.started_ms)],
      ['Duration', el('span', { id: 'run-duration' }, fmtDuration(runDuration(run)))],
      ['Steps', `${fmtInt(run.steps)} (${fmtInt(run.hits)} hits, ${fmtInt(run.failed_steps)} failed)`],
      ['Params', params || null],
    ]),
    run.error && el('pre', { id: 'run-error', class: 'error' }, run.error),
  ];
}

// hit | ran | failed | pending, for a step's record (or its absence).
function stepState(sr) {
  if (!sr) return 'pending';
  if (sr.error) return 'failed';
  return sr.cache_hit || sr.reused_from ? 'hit' : 'ran';
}

// The graph's steps, plus any recorded step the graph does not name.
function dagSteps(graph, stepRuns) {
  const steps = (graph.steps || []).map((s) => ({ step: s.step, kind: s.kind, inputs: s.inputs || [], bindings: s.bindings || [] }));
  const known = new Set(steps.map((s) => s.step));
  for (const sr of stepRuns) if (!known.has(sr.step)) steps.push({ step: sr.step, kind: sr.kind, inputs: [], bindings: [] });
  return steps;
}

// Layers by longest path from the sources: a source is layer 0, any other step one past its deepest input.
function layerSteps(steps) {
  const byName = new Map(steps.map((s) => [s.step, s]));
  const depth = new Map();
  const visit = (name, onPath) => {
    if (depth.has(name)) return depth.get(name);
    if (onPath.has(name)) return 0; // a cycle; should not happen
    onPath.add(name);
    const ins = byName.get(name).inputs.filter((i) => byName.has(i));
    const d = ins.length ? 1 + Math.max(...ins.map((i) => visit(i, onPath))) : 0;
    onPath.delete(name);
    depth.set(name, d);
    return d;
  };
  const layers = [];
  for (const s of steps) (layers[visit(s.step, new Set())] ||= []).push(s);
  // Order each layer by the mean position of its inputs, to cut down on crossings.
  const pos = new Map();
  layers.forEach((layer) => {
    const key = (s) => {
      const ps = s.inputs.filter((i) => pos.has(i)).map((i) => pos.get(i));
      return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : 0;
    };
    layer.sort((a, b) => key(a) - key(b));
    layer.forEach((s, i) => pos.set(s.step, i));
  });
  return layers;
}

// The rows behind one bound input ('step' for a step's only output, 'step.port' for one of several).
function boundRows(records, reference) {
  const dot = reference.indexOf('.');
  const sr = records.get(dot < 0 ? reference : reference.slice(0, dot));
  if (!sr) return null;
  const outputs = sr.outputs || [];
  // A step that ran fused into the next stored no output: its record has the rows.
  if (dot < 0 && !outputs.length) return sr.rows != null ? sr.rows : null;
  const out = dot < 0 ? outputs[0] : outputs.find((o) => o.port === reference.slice(dot + 1));
  return out && out.rows != null ? out.rows : null;
}

// Steps whose outputs are statistics or models, not rows of their input: fewer rows out is their job.
const REDUCING_KINDS = /^(fit_|train_|evaluate)/;

// One node: name, kind and device, cache or duration, rows in (the largest bound input) → rows out.
function dagNode(runId, s, sr, rowsIn, x, y, size) {
  const [W, H] = size;
  const state = stepState(sr);
  const rowsOut = sr ? sr.rows : null;
  const kind = s.kind || (sr && sr.kind) || '';
  const dropped = rowsIn != null && rowsOut != null && rowsOut < rowsIn && !REDUCING_KINDS.test(kind);
  let cache = 'pending';
  if (sr && sr.reused_from) cache = `reused from ${sr.reused_from}`;
  else if (sr && sr.cache_hit) cache = 'hit';
  else if (sr) cache = (sr.error ? 'failed · ' : '') + fmtDuration(sr.duration_ms);
  const open = () => { location.hash = stepHref(runId, s.step); };
  const meta = [kind, sr && sr.device].filter(Boolean).join(' · ');
  return svg('g', {
    class: dropped ? 'dag-node dropped-rows' : 'dag-node', 'data-step': s.step, 'data-status': state,
    'data-rows-in': rowsIn, 'data-rows-out': rowsOut,
    transform: `translate(${x},${y})`, tabindex: 0, role: 'link', onclick: open,
    onkeydown: (e) => { if (e.key === 'Enter') open(); },
  },
  svg('title', {}, `${s.step}\n${cache}`),
  svg('rect', { class: 'node-box', width: W, height: H, rx: 7 }),
  svg('text', { class: 'node-name', x: 10, y: 20 }, truncate(s.step, 18)),
  svg('text', { class: 'node-meta', x: 10, y: 38 }, truncate(meta || '—', 22)),
  svg('text', { class: 'node-cache', x: 10, y: 55 }, truncate(cache, 20)),
  svg('text', { class: 'node-rows', x: 10, y: 72 }, `rows ${fmtInt(rowsIn)} → ${fmtInt(rowsOut)}`),
  dropped && svg('g', { class: 'drop-marker' },
    svg('title', {}, `fewer rows out (${fmtInt(rowsOut)}) than in (${fmtInt(rowsIn)})`),
    svg('circle', { cx: W - 14, cy: 14, r: 8 }),
    svg('text', { x: W - 14, y: 18, 'text-anchor': 'middle' }, '↓')));
}

// The DAG as SVG: layers left to right, edges as curves from output to input.
function dagView(runId, graph, stepRuns) {
  const steps = dagSteps(graph, stepRuns);
  if (!steps.length) return el('p', { class: 'empty' }, 'No steps.');
  const records = new Map(stepRuns.map((sr) => [sr.step, sr]));
  const layers = layerSteps(steps);
  const [W, H, GX, GY, PAD] = [150, 82, 26, 20, 12];
  const tallest = Math.max(...layers.map((l) => l.length));
  const place = new Map();
  layers.forEach((layer, li) => {
    const shift = ((tallest - layer.length) * (H + GY)) / 2;
    layer.forEach((s, i) => place.set(s.step, { x: PAD + li * (W + GX), y: PAD + shift + i * (H + GY) }));
  });
  const width = PAD * 2 + layers.length * W + (layers.length - 1) * GX;
  const height = PAD * 2 + tallest * H + (tallest - 1) * GY;
  const root = svg('svg', { id: 'dag', class: 'dag', width, height, viewBox: `0 0 ${width} ${height}` },
    svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' },
      svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow-head' }))));
  for (const s of steps) {
    const to = place.get(s.step);
    for (const input of s.inputs) {
      const from = place.get(input);
      if (!from) continue;
      const [x1, y1, x2, y2] = [from.x + W, from.y + H / 2, to.x, to.y + H / 2];
      const dx = Math.max(24, (x2 - x1) / 2);
      add(root, svg('path', { class: 'dag-edge', 'data-from': input, 'data-to': s.step, 'marker-end': 'url(#arrow)',
        d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}` }));
    }
  }
  for (const s of steps) {
    const ins = s.bindings.map(([, reference]) => boundRows(records, reference));
    const rowsIn = ins.length && ins.every((r) => r != null) ? Math.max(...ins) : null;
    const { x, y } = place.get(s.step);
    add(root, dagNode(runId, s, records.get(s.step), rowsIn, x, y, [W, H]));
  }
  return root;
}

// When a step began, in ms after the run's start (from recorded_ms - duration_ms if started_ms is absent).
function stepStart(sr, t0) {
  const start = sr.started_ms != null ? sr.started_ms : (sr.recorded_ms != null ? sr.recorded_ms - (sr.duration_ms || 0) : null);
  if (start == null) return null;
  return start >= 1e11 ? start - t0 : start; // absolute Unix ms, or already relative
}

// A Gantt chart: one bar per recorded step, so steps that ran at once overlap.
function timelineView(run, stepRuns) {
  const t0 = run.started_ms || 0;
  const bars = stepRuns.map((sr) => ({ sr, start: stepStart(sr, t0), dur: sr.duration_ms || 0 }))
    .filter((b) => b.start != null).sort((a, b) => a.start - b.start);
  if (!bars.length) return el('p', { class: 'empty' }, 'No steps recorded yet.');
  const [W, L, R, ROW, TOP] = [1000, 190, 20, 22, 24];
  const end = Math.max(1, ...bars.map((b) => b.start + b.dur));
  const x = scale(0, end, L, W - R);
  const height = TOP + bars.length * ROW + 8;
  const chart = svg('svg', { id: 'timeline', class: 'timeline', width: W, height, viewBox: `0 0 ${W} ${height}` });
  for (let i = 0; i <= 5; i++) {
    const t = (end * i) / 5;
    chart.append(svg('line', { class: 'grid-line', x1: x(t), x2: x(t), y1: TOP - 6, y2: height - 4 }),
      svg('text', { class: 'tick', x: x(t), y: 12, 'text-anchor': i === 0 ? 'start' : i === 5 ? 'end' : 'middle' }, fmtDuration(t)));
  }
  bars.forEach(({ sr, start, dur }, i) => {
    const y = TOP + i * ROW;
    const state = stepState(sr);
    chart.append(
      svg('text', { class: 'bar-label', x: L - 8, y: y + 14, 'text-anchor': 'end' }, truncate(sr.step, 26)),
      svg('rect', { class: `bar bar-${state}`, 'data-step': sr.step, x: x(start), y: y + 3, height: ROW - 6,
        width: Math.max(2, x(start + dur) - x(start)), rx: 3 },
      svg('title', {}, `${sr.step}: +${fmtDuration(start)}, ${state === 'hit' ? 'hit, ' : ''}${fmtDuration(dur)}`)));
  });
  return chart;
}

function metricsTable(metrics) {
  return [
    el('table', { id: 'metrics', class: 'grid' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Step'), el('th', {}, 'Metric'), el('th', { class: 'num' }, 'Value'))),
      el('tbody', {}, metrics.map((m) => el('tr', {},
        el('td', {}, m.step), el('td', {}, m.name),
        el('td', { class: 'metric', 'data-metric': `${m.step}.${m.name}` }, fmtNum(m.value)))))),
    !metrics.length && el('p', { class: 'empty' }, 'No metrics recorded.'),
  ];
}

// A sweep's variants: a sortable table and a bar chart of one chosen metric.
function variantsView(v) {
  if (!v.variants || !v.variants.length) return [el('p', { class: 'empty' }, 'No variants.')];
  const dims = v.dimensions || [];
  const names = v.metrics || [];
  const dimValue = (row, d) => ((row.assignment || []).find((p) => p[0] === d) || [])[1] ?? null;
  const columns = [
    { label: 'Variant', value: (r) => r.name },
    ...dims.map((d) => ({ label: d, value: (r) => dimValue(r, d), cell: (r) => fmtNum(dimValue(r, d)) })),
    { label: 'Status', value: (r) => r.status,
      cell: (r) => [badge(r.status), r.error && el('div', { class: 'error small' }, r.error)] },
    ...names.map((n, i) => ({ label: n, numeric: true, value: (r) => (r.metrics || [])[i] ?? null,
      cell: (r) => fmtNum((r.metrics || [])[i]) })),
    { label: 'Time', numeric: true, value: (r) => r.time_ms, cell: (r) => fmtDuration(r.time_ms) },
    { label: 'Hits', numeric: true, value: (r) => r.hits },
    { label: 'Steps', numeric: true, value: (r) => r.steps },
  ];
  const parts = [el('div', { class: 'table-box' }, sortableTable(columns, v.variants, { id: 'variants' }))];
  if (names.length) {
    const chartBox = el('div', { class: 'chart-box' });
    const draw = (name) => {
      const i = names.indexOf(name);
      chartBox.replaceChildren(barChart('variant-chart', v.variants.map((r) => r.name), v.variants.map((r) => (r.metrics || [])[i])));
    };
    parts.push(el('label', { class: 'chart-pick' }, 'Metric ', chooser('variant-metric', names, draw)), chartBox);
    draw(names[0]);
  }
  return parts;
}

// One run: header, DAG, timeline, metrics and variants; polled every 1 s while active.
async function viewRun(root, runId, gen) {
  let run = await api(`/runs/${enc(runId)}`);
  const id = run.id;
  const graph = await api(`/runs/${enc(id)}/graph`, { quiet: true }).catch(() => ({ steps: [] }));
  const header = el('section', { id: 'run-header', class: 'card' });
  const dagBox = el('div', { class: 'dag-box' });
  const timeBox = el('div', { class: 'timeline-box' });
  const metricsBox = el('div', { class: 'table-box' });
  const variantsBox = el('section', { id: 'variants-section', class: 'card', hidden: true });
  add(root, header,
    el('section', { class: 'card' }, el('h2', {}, 'Steps'), dagBox,
      el('p', { class: 'legend' }, ['ran', 'hit', 'failed', 'pending'].map((s) => el('span', { class: `key key-${s}` }, s)))),
    el('section', { class: 'card' }, el('h2', {}, 'Timeline'), timeBox),
    el('section', { class: 'card' }, el('h2', {}, 'Metrics'), metricsBox),
    variantsBox);

  const loadVariants = async () => {
    const v = await api(`/runs/${enc(id)}/variants`);
    variantsBox.hidden = false;
    variantsBox.replaceChildren(el('h2', {}, 'Variants'), ...variantsView(v));
  };
  const draw = () => {
    const stepRuns = run.step_runs || [];
    header.replaceChildren(...runHeader(run, cancel).filter(Boolean));
    dagBox.replaceChildren(dagView(id, graph, stepRuns));
    timeBox.replaceChildren(timelineView(run, stepRuns));
    metricsBox.replaceChildren(...metricsTable(run.metrics || []).filter(Boolean));
  };
  const refresh = async () => {
    run = await api(`/runs/${enc(id)}`);
    if (gen !== generation) return false;
    draw();
    const live = ACTIVE.has(run.status);
    if (!live && run.variants && run.variants.length) loadVariants().catch(() => {});
    return live;
  };
  async function cancel() {
    await api(`/runs/${enc(id)}/cancel`, { method: 'POST' }).catch(() => {});
    await refresh().catch(() => {});
  }

  draw();
  if (run.variants && run.variants.length) loadVariants().catch(() => {});
  if (ACTIVE.has(run.status)) poll(gen, refresh, 1000);
}

// ---------------------------------------------------------------- #/runs/{id}/steps/{step}

function previewTable(p) {
  const schema = p.schema || [];
  const rows = p.rows || [];
  const cell = (v) => {
    if (v === null || v === undefined) return el('span', { class: 'null' }, 'null');
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  };
  return [
    el('p', { class: 'muted preview-count' }, `First ${fmtInt(rows.length)} of ${fmtInt(p.total_rows)} rows`),
    el('div', { class: 'table-box' }, el('table', { class: 'grid preview' },
      el('thead', {}, el('tr', {}, schema.map((f) =>
        el('th', {}, f.name, el('span', { class: 'type' }, `${f.type}${f.nullable ? '?' : ''}`))))),
      el('tbody', {}, rows.map((r) => el('tr', {}, r.map((v) => el('td', {}, cell(v)))))))),
  ];
}

// One output port: its facts, download links and a preview.
function portSection(runId, step, out) {
  const base = `/runs/${enc(runId)}/steps/${enc(step)}`;
  const q = `port=${enc(out.port)}`;
  const previewBox = el('div', { class: 'preview-box' }, el('p', { class: 'muted' }, 'Loading preview…'));
  api(`${base}/preview?${q}&rows=20`, { quiet: true })
    .then((p) => previewBox.replaceChildren(...previewTable(p)))
    .catch((e) => previewBox.replaceChildren(el('p', { class: 'notice' }, `No preview: ${e.message}`)));
  return el('section', { class: 'card port', 'data-port': out.port },
    el('h2', {}, 'Output ', el('span', { class: 'mono' }, out.port)),
    facts([['Hash', el('span', { class: 'mono' }, out.hash)], ['Rows', fmtInt(out.rows)], ['Bytes', fmtBytes(out.bytes)]]),
    el('p', { class: 'downloads' },
      downloadLink(`${base}/output?${q}&format=arrow`, `${step}-${out.port}.arrow`, 'arrow'),
      downloadLink(`${base}/output?${q}&format=parquet`, `${step}-${out.port}.parquet`, 'parquet')),
    previewBox);
}

async function viewStep(root, runId, step) {
  const run = await api(`/runs/${enc(runId)}`);
  const sr = (run.step_runs || []).find((s) => s.step === step);
  add(root, el('p', { class: 'crumbs' }, el('a', { href: runHref(run.id) }, `← Run ${run.id}`)),
    el('h1', {}, 'Step ', el('span', { class: 'mono' }, step), ' ', badge(stepState(sr), 'step-status')));
  if (!sr) {
    add(root, el('p', { class: 'notice' }, 'This step has not been recorded yet.'));
    return;
  }
  let cache = sr.cache_hit ? 'hit' : 'miss';
  if (sr.reused_from) cache = ['reused from ', el('a', { href: runHref(sr.reused_from), class: 'mono' }, sr.reused_from)];
  const why = el('div', { id: 'why-box' }, el('p', { class: 'muted' }, 'Loading…'));
  add(root, el('section', { class: 'card', id: 'step-detail' },
    facts([
      ['Kind', sr.kind], ['Device', sr.device], ['Cache', el('span', { id: 'step-cache' }, cache)],
      ['Duration', fmtDuration(sr.duration_ms)], ['Rows', fmtInt(sr.rows)], ['Bytes', fmtBytes(sr.bytes)],
      ['Cache key', el('span', { class: 'mono', id: 'cache-key' }, sr.cache_key || '—')],
    ]),
    sr.notes && [el('h3', {}, 'Notes'), el('pre', { id: 'step-notes' }, sr.notes)],
    sr.error && [el('h3', {}, 'Error'), el('pre', { id: 'step-error', class: 'error' }, sr.error)]),
  el('section', { class: 'card' }, el('h2', {}, 'Why it missed the cache'), why),
  (sr.outputs || []).map((o) => portSection(run.id, step, o)));

  api(`/runs/${enc(run.id)}/steps/${enc(step)}/why`, { quiet: true })
    .then((w) => why.replaceChildren(el('pre', { id: 'why' }, w.text)))
    .catch((e) => {
      if (!(e.status >= 400 && e.status < 500)) showBanner(e.message);
      why.replaceChildren(el('p', { class: 'notice', id: 'why-notice' }, e.message));
    });
}

// ---------------------------------------------------------------- #/pipelines

function pipelineCard(p) {
  const versions = (p.versions || []).map((v) => {
    const isDefault = v.version === p.default_version;
    return el('tr', { 'data-version': v.version, class: [isDefault && 'is-default', !v.enabled && 'is-disabled'].filter(Boolean).join(' ') || null },
      el('td', {}, `v${v.version} `, isDefault && el('span', { class: 'tag tag-default' }, 'default'),
        !v.enabled && el('span', { class: 'tag tag-disabled' }, 'disabled')),
      el('td', { class: 'mono', title: v.spec_hash }, truncate(v.spec_hash || '', 13)),
      el('td', {}, fmtTime(v.published_ms)),
      el('td', {}, v.source));
  });
  return el('section', { class: 'card pipeline', 'data-pipeline': p.name },
    el('div', { class: 'card-head' }, el('h2', {}, p.name),
      el('a', { href: `#/runs?pipeline=${enc(p.name)}` }, 'Runs'),
      el('a', { href: `#/pipelines/${enc(p.name)}/metrics`, class: 'metrics-link' }, 'Metrics across runs →')),
    el('table', { class: 'grid versions' },
      el('thead', {}, el('tr', {}, ['Version', 'Spec hash', 'Published', 'Source'].map((h) => el('th', {}, h)))),
      el('tbody', {}, versions)));
}

async function viewPipelines(root) {
  const pipelines = await api('/pipelines');
  add(root, el('h1', {}, 'Pipelines'),
    el('div', { id: 'pipelines' }, pipelines.map(pipelineCard)),
    !pipelines.length && el('p', { class: 'empty' }, 'No pipeline is published yet (fuseflow publish SPEC).'));
}

// A pipeline's metrics across its latest runs: a sortable table and a line chart over time.
async function viewPipelineMetrics(root, name) {
  const data = await api(`/metrics?pipeline=${enc(name)}&limit=50`);
  const runs = data.runs || [];
  const values = new Map(runs.map((r) => [r, new Map((r.metrics || []).map((m) => [`${m.step}.${m.name}`, m.value]))]));
  const keys = [...new Set(runs.flatMap((r) => [...values.get(r).keys()]))];
  const columns = [
    { label: 'Run', value: (r) => r.run, cell: (r) => el('a', { href: runHref(r.run), class: 'mono' }, r.run) },
    { label: 'Started', numeric: true, value: (r) => r.started_ms, cell: (r) => fmtTime(r.started_ms), cls: null },
    { label: 'Status', value: (r) => r.status, cell: (r) => badge(r.status) },
    ...keys.map((k) => ({ label: k, numeric: true, value: (r) => values.get(r).get(k) ?? null,
      cell: (r) => fmtNum(values.get(r).get(k)) })),
  ];
  add(root, el('p', { class: 'crumbs' }, el('a', { href: '#/pipelines' }, '← Pipelines')),
    el('h1', {}, 'Metrics of ', el('span', { class: 'mono' }, name)));
  if (!runs.length) {
    add(root, el('p', { class: 'empty' }, 'No runs of this pipeline yet.'));
    return;
  }
  const chartBox = el('div', { class: 'chart-box' });
  const draw = (key) => {
    const points = runs.filter((r) => typeof values.get(r).get(key) === 'number' && r.started_ms != null)
      .map((r) => ({ x: r.started_ms, y: values.get(r).get(key), label: r.run }))
      .sort((a, b) => a.x - b.x);
    chartBox.replaceChildren(lineChart('metric-chart', points));
  };
  add(root, el('section', { class: 'card' }, el('div', { class: 'table-box' }, sortableTable(columns, runs, { id: 'pipeline-metrics' }))));
  if (keys.length) {
    add(root, el('section', { class: 'card' }, el('h2', {}, 'Over time'),
      el('label', { class: 'chart-pick' }, 'Metric ', chooser('metric-select', keys, draw)), chartBox));
    draw(keys[0]);
  }
}

// ---------------------------------------------------------------- router

// Pick the view for the fragment and render it into a fresh container.
function route() {
  takeToken();
  generation++;
  stopPolling();
  const gen = generation;
  const { path, query } = splitHash();
  let parts;
  try { parts = path.split('/').filter(Boolean).map(decodeURIComponent); } catch (_) { parts = ['?']; }
  const root = el('div', { class: 'view' });
  $('#app').replaceChildren(root);
  const section = parts[0] || 'runs';
  document.querySelectorAll('.nav a').forEach((a) => a.classList.toggle('active', a.dataset.nav === section));

  let work;
  const [a, b, c, d] = parts;
  if (!parts.length || (a === 'runs' && parts.length === 1)) work = viewRuns(root, query, gen);
  else if (a === 'runs' && parts.length === 2) work = viewRun(root, b, gen);
  else if (a === 'runs' && parts.length === 4 && c === 'steps') work = viewStep(root, b, d);
  else if (a === 'pipelines' && parts.length === 1) work = viewPipelines(root);
  else if (a === 'pipelines' && parts.length === 3 && c === 'metrics') work = viewPipelineMetrics(root, b);
  else add(root, el('p', { class: 'notice' }, 'No such page. '), el('a', { href: '#/runs' }, 'Go to the runs.'));
  Promise.resolve(work).catch((e) => {
    if (gen === generation) add(root, el('p', { class: 'notice' }, `Could not load this page: ${e.message}`));
  });
}

$('#banner-close').addEventListener('click', () => { $('#banner').hidden = true; });
window.addEventListener('hashchange', route);
route();
