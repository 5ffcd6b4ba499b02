'use strict';
// The parameter lists the benchmark averages: real layer shapes of three model sizes, so that the
// per-tensor overhead (161 or 292 tensors, many of them tiny biases and norms) is as in practice.

/** ResNet-50 as torchvision builds it: bias-free convs, BatchNorm gamma/beta, fc 2048x1000 + 1000. */
function resnet50Shapes(widthDivisor = 1) {
  const w = (channels) => Math.max(1, Math.round(channels / widthDivisor));
  const shapes = [];
  const conv = (name, out, inp, k) => shapes.push([`${name}.weight`, [out, inp, k, k]]);
  const bn = (name, c) => {
    shapes.push([`${name}.weight`, [c]]);
    shapes.push([`${name}.bias`, [c]]);
  };
  conv('conv1', w(64), 3, 7);
  bn('bn1', w(64));
  let inplanes = w(64);
  const stages = [
    [64, 3],
    [128, 4],
    [256, 6],
    [512, 3],
  ];
  stages.forEach(([planes, blocks], s) => {
    const width = w(planes);
    const out = w(planes * 4);
    for (let b = 0; b < blocks; b++) {
      const name = `layer${s + 1}.${b}`;
      conv(`${name}.conv1`, width, inplanes, 1);
      bn(`${name}.bn1`, width);
      conv(`${name}.conv2`, width, width, 3);
      bn(`${name}.bn2`, width);
      conv(`${name}.conv3`, out, width, 1);
      bn(`${name}.bn3`, out);
      if (b === 0) {
        conv(`${name}.downsample.0`, out, inplanes, 1);
        bn(`${name}.downsample.1`, out);
      }
      inplanes = out;
    }
  });
  shapes.push(['fc.weight', [1000, inplanes]]);
  shapes.push(['fc.bias', [1000]]);
  return shapes;
}

/** GPT-2 medium (Hugging Face names): 24 blocks of width 1024, vocabulary 50257, context 1024. */
function gpt2MediumShapes() {
  const d = 1024;
  const shapes = [
    ['wte', [50257, d]],
    ['wpe', [1024, d]],
  ];
  for (let b = 0; b < 24; b++) {
    const h = `h.${b}`;
    shapes.push([`${h}.ln_1.weight`, [d]], [`${h}.ln_1.bias`, [d]]);
    shapes.push([`${h}.attn.c_attn.weight`, [d, 3 * d]], [`${h}.attn.c_attn.bias`, [3 * d]]);
    shapes.push([`${h}.attn.c_proj.weight`, [d, d]], [`${h}.attn.c_proj.bias`, [d]]);
    shapes.push([`${h}.ln_2.weight`, [d]], [`${h}.ln_2.bias`, [d]]);
    shapes.push([`${h}.mlp.c_fc.weight`, [d, 4 * d]], [`${h}.mlp.c_fc.bias`, [4 * d]]);
    shapes.push([`${h}.mlp.c_proj.weight`, [4 * d, d]], [`${h}.mlp.c_proj.bias`, [d]]);
  }
  shapes.push(['ln_f.weight', [d]], ['ln_f.bias', [d]]);
  return shapes;
}

function mlpSmallShapes() {
  return [
    ['dense1.kernel', [784, 128]],
    ['dense1.bias', [128]],
    ['dense2.kernel', [128, 64]],
    ['dense2.bias', [64]],
    ['dense3.kernel', [64, 10]],
    ['dense3.bias', [10]],
  ];
}

// expect: tensor count and parameter count the shapes must add up to (null: not checked).
const WORKLOADS = {
  'mlp-small': { shapes: mlpSmallShapes, tensors: 6, params: 109386 },
  'resnet50-like': { shapes: () => resnet50Shapes(1), tensors: 161, params: 25557032 },
  // Smoke mode only: ResNet-50's 161 tensors at 1/8 of the width, so the per-tensor walk is the
  // same but an update takes well under a millisecond.
  'resnet50-tiny': { shapes: () => resnet50Shapes(8), tensors: 161, params: null },
  'gpt2-medium-like': { shapes: gpt2MediumShapes, tensors: 292, params: 354823168, large: true },
};

/** { name, large, names[], shapes[], sizes[], total } for one workload, its counts checked. */
function loadWorkload(name) {
  const spec = WORKLOADS[name];
  if (!spec) {
    throw new Error(`unknown workload '${name}' (known: ${Object.keys(WORKLOADS).join(', ')})`);
  }
  const list = spec.shapes();
  const sizes = list.map(([, shape]) => shape.reduce((a, b) => a * b, 1));
  const total = sizes.reduce((a, b) => a + b, 0);
  if (list.length !== spec.tensors) {
    throw new Error(`workload ${name}: ${list.length} tensors, expected ${spec.tensors}`);
  }
  if (spec.params !== null && total !== spec.params) {
    throw new Error(`workload ${name}: ${total} parameters, expected ${spec.params}`);
  }
  return {
    name,
    large: Boolean(spec.large),
    names: list.map(([n]) => n),
    shapes: list.map(([, s]) => s),
    sizes,
    total,
  };
}

module.exports = { WORKLOADS, loadWorkload };
