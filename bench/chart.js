'use strict';
// The benchmark chart (SVG): what a user asks first, "how much faster than what I would use
// otherwise?". Per workload, one bar per alternative (plain JS loop, tfjs backends, PyTorch where a
// driver measured it) whose length is how many times longer that alternative takes per update than
// model-ema's update() (float32, all threads), on a linear axis from 0: 150x is 75 times longer
// than 2x. The internals (threads, bfloat16, async, native arena, the C++ ceiling) stay in the
// table and the JSON; the chart states model-ema's own time and its fraction of the ceiling in one line.

/** The row every ratio is against: the public class's update(), float32, the default thread pool. */
const BASELINE = 'model-ema-update-f32';
/** Families a user compares with, in the chart's order. */
const ALTERNATIVES = ['plain-js', 'tfjs', 'pytorch'];
const COLOURS = { 'plain-js': '#ff7f0e', tfjs: '#9467bd', pytorch: '#d62728' };

function esc(text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function formatMs(v) {
  return v >= 1000 ? v.toFixed(0) : v.toPrecision(3);
}

function formatRatio(v) {
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/**
 * Per workload: model-ema's row and, for each alternative, `times` = its median / model-ema's
 * (how many times faster model-ema is), or a status ('skipped: ...', 'failed') when not measured.
 */
function comparisons(doc) {
  return doc.workloads.map((w) => {
    const rows = doc.results.filter((r) => r.workload === w.name);
    const base = rows.find((r) => r.driver === BASELINE && r.status === 'ok');
    const ceiling = rows.find((r) => r.driver === 'ceiling' && r.status === 'ok');
    const others = rows
      .filter((r) => ALTERNATIVES.includes(r.family))
      .sort((a, b) => ALTERNATIVES.indexOf(a.family) - ALTERNATIVES.indexOf(b.family))
      .map((r) => ({
        label: r.label,
        family: r.family,
        ms: r.status === 'ok' ? r.msMedian : null,
        times: r.status === 'ok' && base ? r.msMedian / base.msMedian : null,
        note: r.status === 'ok' ? null : r.status === 'skipped' ? `not measured: ${r.note}` : `${r.status}${r.note ? `: ${r.note}` : ''}`,
      }));
    return { workload: w, base, vsCeiling: base && ceiling ? ceiling.msMedian / base.msMedian : null, others };
  });
}

/** One line per workload for the terminal: "model-ema update() is 19.3x plain JS loop, 608x tfjs ops (cpu backend), ...". */
function formatComparisonLine(c) {
  if (!c.base) return `${c.workload.name}: model-ema update() was not measured`;
  const parts = c.others.filter((o) => o.times !== null).map((o) => `${formatRatio(o.times)}x faster than ${o.label}`);
  return `${c.workload.name}: model-ema update() ${parts.length > 0 ? parts.join(', ') : '(no alternative measured)'}`;
}

/** A round axis end and tick step for a linear axis from 0 to at least `max`. */
function niceAxis(max) {
  const target = Math.max(max, 1);
  const magnitude = 10 ** Math.floor(Math.log10(target));
  const step = [0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5].map((m) => m * magnitude).find((s) => target / s <= 8) || magnitude * 10;
  return { end: Math.ceil(target / step) * step, step };
}

function renderSvg(doc) {
  const width = 1000;
  const labelW = 260;
  const plotX = labelW + 12;
  const plotW = 560;
  const rowH = 22;
  const top = 70;
  const body = [];
  let y = top;
  for (const c of comparisons(doc)) {
    const w = c.workload;
    body.push(`<text x="10" y="${y + 16}" class="group">${esc(w.name)}: ${w.tensors} tensors, ${w.params.toLocaleString('en-US')} parameters</text>`);
    y += 24;
    const baseText = c.base
      ? `model-ema update(): ${formatMs(c.base.msMedian)} ms per update (float32, ${c.base.threads || 'all'} threads)` +
        (c.vsCeiling !== null ? `, ${c.vsCeiling.toFixed(2)}x the speed of a plain C++ loop over one arena` : '')
      : 'model-ema update() was not measured: no ratios';
    body.push(`<text x="10" y="${y + 12}" class="label">${esc(baseText)}</text>`);
    y += 20;
    const measured = c.others.filter((o) => o.times !== null);
    const axis = niceAxis(Math.max(1, ...measured.map((o) => o.times)));
    const x = (v) => plotX + (v / axis.end) * plotW;
    const groupTop = y;
    const groupBottom = y + c.others.length * rowH;
    // The linear axis of this group, from 0, drawn under the bars; model-ema itself is the dashed 1x.
    for (let t = 0; t <= axis.end + 1e-9; t += axis.step) {
      const gx = x(t).toFixed(1);
      body.push(`<line x1="${gx}" y1="${groupTop}" x2="${gx}" y2="${groupBottom}" class="${t === 0 ? 'axis' : 'grid'}"/>`);
      body.push(`<text x="${gx}" y="${groupBottom + 13}" class="tick" text-anchor="middle">${formatRatio(t).replace(/\.0+$/, '')}x</text>`);
    }
    body.push(`<line x1="${x(1).toFixed(1)}" y1="${groupTop}" x2="${x(1).toFixed(1)}" y2="${groupBottom}" class="one"/>`);
    for (const o of c.others) {
      body.push(`<text x="${labelW}" y="${y + 15}" class="label" text-anchor="end">${esc(`vs ${o.label}`)}</text>`);
      if (o.times !== null) {
        const end = x(o.times);
        body.push(`<rect x="${plotX}" y="${y + 4}" width="${Math.max(1, end - plotX).toFixed(1)}" height="${rowH - 8}" fill="${COLOURS[o.family] || '#444'}"><title>${esc(`${o.label}: ${formatMs(o.ms)} ms per update`)}</title></rect>`);
        body.push(`<text x="${(end + 6).toFixed(1)}" y="${y + 15}" class="value">${esc(`${formatRatio(o.times)}x slower (${formatMs(o.ms)} ms)`)}</text>`);
      } else {
        body.push(`<text x="${plotX + 4}" y="${y + 15}" class="value muted">${esc(o.note)}</text>`);
      }
      y += rowH;
    }
    y += 34;
  }
  const m = doc.machine;
  const height = y + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    '<style>.group{font-size:14px;font-weight:bold}.label,.value{font-size:12px}.tick{font-size:11px;fill:#444}.muted{fill:#999}.axis{stroke:#444}.grid{stroke:#e4e4e4}.one{stroke:#1f77b4;stroke-dasharray:3 2}</style>',
    `<rect width="${width}" height="${height}" fill="white"/>`,
    '<text x="10" y="22" font-size="16" font-weight="bold">How many times longer one EMA update takes than with model-ema (linear scale from 0; dashed: 1x)</text>',
    `<text x="10" y="42" class="label">${esc(`${m.cpuModel}, ${m.cores} cores, Node ${m.node}, model-ema ${m.modelEma && m.modelEma.version}, ${doc.date.slice(0, 10)}, ${doc.mode} run; medians`)}</text>`,
    '<text x="10" y="58" class="label muted">Threads, bfloat16, updateAsync and the native internals are in the table (npm run bench) and the JSON next to this file.</text>',
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

module.exports = { BASELINE, comparisons, formatComparisonLine, niceAxis, renderSvg };

// `node bench/chart.js <results.json>`: renders (again) the chart of a saved run next to it.
if (require.main === module) {
  const fs = require('node:fs');
  const file = process.argv[2];
  if (!file) {
    console.error('Usage: node bench/chart.js <bench/results/...json>');
    process.exit(2);
  }
  const out = file.replace(/\.json$/, '.svg');
  fs.writeFileSync(out, renderSvg(JSON.parse(fs.readFileSync(file, 'utf8'))));
  console.log(`wrote ${out}`);
}
