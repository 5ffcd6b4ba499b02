// The benchmark chart leads with the user's comparison: per workload, how many times longer each
// alternative (plain JS, tfjs backends, PyTorch where measured) takes than model-ema's update(), as
// bars on a linear axis from 0, so 150x is drawn 75 times longer than 2x; internals stay out of it.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const chart = require('../bench/chart.js') as {
  comparisons(doc: unknown): { others: { label: string; times: number | null; note: string | null }[]; vsCeiling: number | null }[];
  formatComparisonLine(c: unknown): string;
  niceAxis(max: number): { end: number; step: number };
  renderSvg(doc: unknown): string;
};
// eslint-disable-next-line @typescript-eslint/no-require-imports
const report = require('../bench/report.js') as { formatTable(rows: unknown[], workloads: unknown[]): string };

const row = (driver: string, family: string, label: string, msMedian: number, extra: Record<string, unknown> = {}) => ({
  workload: 'w', driver, family, label, dtype: 'float32', threads: 2, status: 'ok', note: null, msMedian, msP10: msMedian, msP90: msMedian, reps: 10, ...extra,
});

const doc = {
  date: '2026-12-03T00:00:00.000Z',
  mode: 'default',
  machine: { cpuModel: 'Test CPU', cores: 2, node: 'v20', modelEma: { version: '0.1.0' } },
  workloads: [{ name: 'w', tensors: 3, params: 1000 }],
  results: [
    row('ceiling', 'ceiling', 'C++ ceiling', 0.5),
    row('model-ema-update-f32', 'model-ema', 'model-ema update', 1),
    row('model-ema-update-bf16', 'model-ema', 'model-ema update', 0.8, { dtype: 'bfloat16' }),
    row('native-update-f32', 'native', 'native arena update', 0.9),
    row('plain-js', 'plain-js', 'plain JS loop', 2),
    row('tfjs-cpu', 'tfjs', 'tfjs ops (cpu backend)', 150),
    row('tfjs-node', 'tfjs', 'tfjs ops (tfjs-node)', NaN, { status: 'skipped', note: '@tensorflow/tfjs-node is not installed' }),
    row('torch-foreach', 'pytorch', 'PyTorch _foreach', 4),
  ],
};

function bars(svg: string): Map<string, number> {
  const widths = new Map<string, number>();
  for (const m of svg.matchAll(/<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)" height="[\d.]+" fill="[^"]+"><title>([^:]+):/g)) widths.set(m[2], Number(m[1]));
  return widths;
}

describe('bench chart', () => {
  test('ratios against model-ema update() float32, alternatives only, in the order plain JS, tfjs, PyTorch', () => {
    const [c] = chart.comparisons(doc);
    expect(c.others.map((o) => [o.label, o.times])).toEqual([
      ['plain JS loop', 2],
      ['tfjs ops (cpu backend)', 150],
      ['tfjs ops (tfjs-node)', null],
      ['PyTorch _foreach', 4],
    ]);
    expect(c.others[2].note).toBe('not measured: @tensorflow/tfjs-node is not installed');
    expect(c.vsCeiling).toBe(0.5);
    expect(chart.formatComparisonLine(c)).toBe('w: model-ema update() 2.00x faster than plain JS loop, 150x faster than tfjs ops (cpu backend), 4.00x faster than PyTorch _foreach');
  });

  test('bars are linear from 0: 150x is 75 times as long as 2x; internals have no bar', () => {
    const svg = chart.renderSvg(doc);
    const widths = bars(svg);
    expect([...widths.keys()]).toEqual(['plain JS loop', 'tfjs ops (cpu backend)', 'PyTorch _foreach']);
    expect(widths.get('tfjs ops (cpu backend)')! / widths.get('plain JS loop')!).toBeCloseTo(75, 1);
    expect(widths.get('PyTorch _foreach')! / widths.get('plain JS loop')!).toBeCloseTo(2, 2);
    expect(svg).toContain('>0x</text>');
    expect(svg).toContain('linear scale from 0');
    expect(svg).not.toMatch(/native arena|C\+\+ ceiling \(|bfloat16 \(/);
    expect(svg).toContain('1.00 ms per update (float32, 2 threads), 0.50x the speed of a plain C++ loop');
  });

  test('axis ends are round and cover the largest ratio', () => {
    expect(chart.niceAxis(607)).toEqual({ end: 700, step: 100 });
    expect(chart.niceAxis(19.3)).toEqual({ end: 20, step: 2.5 });
    expect(chart.niceAxis(0.5)).toEqual({ end: 1, step: 0.2 });
  });

  test('the terminal table leads each workload with the same comparison line', () => {
    const table = report.formatTable(doc.results, [{ name: 'w', sizes: [1, 2, 997], total: 1000 }]);
    const lines = table.split('\n');
    expect(lines[0]).toBe('w (3 tensors, 1,000 parameters)');
    expect(lines[1]).toMatch(/^w: model-ema update\(\) 2\.00x faster than plain JS loop, 150x faster than tfjs ops/);
  });
});
