// Shipping the averaged weights as an ordinary TensorFlow.js model, and a file:// equivalent for
// plain @tensorflow/tfjs (only tfjs-node registers a file:// handler).
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../checkpoint/atomic_write';
import { readRegularFile } from '../checkpoint/checkpoint_file';
// Types only (erased from the JavaScript): this entry point is for tfjs users, and the core package's
// own declarations never mention tfjs.
import type { io } from '@tensorflow/tfjs';
import type { ExponentialMovingAverage } from '../ema';
import { codedError, expectedTypeError, invalidArgument } from '../errors';
import type { Parameter } from '../parameters';

/**
 * Runs `model.save(handlerOrUrl, config)` with the averaged weights swapped in (an
 * averageParameters() scope over the EMA's registered parameters), then puts the raw weights back,
 * whether the save succeeds or fails. Returns what model.save() returns.
 *
 * `handlerOrUrl` is anything model.save() takes: an IOHandler (`fileIOHandler(dir)`,
 * `tf.io.withSaveHandler(...)`), or a URL ('file://...' needs tfjs-node; 'localstorage://',
 * 'indexeddb://' and 'http(s)://' work as in tfjs).
 */
export function saveAveragedModel<H, C, R>(
  model: { save(handlerOrUrl: H, config?: C): Promise<R> },
  ema: ExponentialMovingAverage,
  handlerOrUrl: H,
  config?: C,
  parameters?: Iterable<Parameter>,
): Promise<R> {
  if (typeof model !== 'object' || model === null || typeof model.save !== 'function') {
    throw expectedTypeError('a tfjs LayersModel (with save())', 'model', model);
  }
  if (typeof ema !== 'object' || ema === null || typeof ema.withAveragedParameters !== 'function') {
    throw expectedTypeError('an ExponentialMovingAverage', 'ema', ema);
  }
  return ema.withAveragedParameters(() => model.save(handlerOrUrl, config), parameters);
}

/** A tf.io.IOHandler that keeps a model in a folder, as tfjs-node's file:// handler does. */
export interface FileIOHandler {
  save(artifacts: io.ModelArtifacts): Promise<io.SaveResult>;
  load(): Promise<io.ModelArtifacts>;
}

const MODEL_JSON = 'model.json';
const WEIGHTS_BIN = 'weights.bin';

// The model.json fields besides the topology and the manifest, as tf.io writes them.
const OPTIONAL_FIELDS = [
  'trainingConfig',
  'format',
  'generatedBy',
  'convertedBy',
  'signature',
  'userDefinedMetadata',
  'modelInitializer',
  'initializerSignature',
] as const;

function chunksOf(weightData: ArrayBuffer | ArrayBuffer[] | undefined): ArrayBuffer[] {
  if (weightData === undefined) return [];
  return Array.isArray(weightData) ? weightData : [weightData];
}

/**
 * Saves to and loads from `directory` (created if needed) in the layout of tfjs-node's
 * `file://` handler: `model.json` (topology, training config, weight manifest) next to
 * `weights.bin`. Each file is replaced atomically, weights first, so a crash mid-save never leaves
 * a model.json that points at missing or partial weights. Works with plain @tensorflow/tfjs:
 * `model.save(fileIOHandler(dir))`, `tf.loadLayersModel(fileIOHandler(dir))`; with tfjs-node,
 * `tf.loadLayersModel('file://<dir>/model.json')` reads the same files.
 */
export function fileIOHandler(directory: string): FileIOHandler {
  if (typeof directory !== 'string' || directory.length === 0) {
    throw expectedTypeError('a folder path', 'directory', directory);
  }
  const folder = directory.startsWith('file://') ? directory.slice('file://'.length) : directory;
  return {
    async save(artifacts: io.ModelArtifacts): Promise<io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer || ArrayBuffer.isView(artifacts.modelTopology)) {
        throw invalidArgument('fileIOHandler: binary (GraphDef) model topologies are not supported; save a layers model', Error);
      }
      await mkdir(folder, { recursive: true });
      const chunks = chunksOf(artifacts.weightData);
      await writeFileAtomic(path.join(folder, WEIGHTS_BIN), async (sink) => {
        for (const chunk of chunks) await sink.append(new Uint8Array(chunk));
      });
      const json: Record<string, unknown> = {
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
      };
      for (const field of OPTIONAL_FIELDS) {
        if (artifacts[field] !== undefined) json[field] = artifacts[field];
      }
      const text = Buffer.from(JSON.stringify(json), 'utf8');
      await writeFileAtomic(path.join(folder, MODEL_JSON), (sink) => sink.append(text));
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          modelTopologyBytes: Buffer.byteLength(JSON.stringify(artifacts.modelTopology ?? null), 'utf8'),
          weightSpecsBytes: Buffer.byteLength(JSON.stringify(artifacts.weightSpecs ?? []), 'utf8'),
          weightDataBytes: chunks.reduce((n, c) => n + c.byteLength, 0),
        },
      };
    },

    async load(): Promise<io.ModelArtifacts> {
      const jsonPath = path.join(folder, MODEL_JSON);
      let json: Record<string, unknown>;
      try {
        json = JSON.parse((await readRegularFile(jsonPath)).toString('utf8')) as Record<string, unknown>;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code; // a file-system error keeps its own (ENOENT, ...)
        const wrapped = codedError('INVALID_CHECKPOINT', `fileIOHandler: cannot read ${jsonPath}: ${(error as Error).message}`, { cause: error });
        throw typeof code === 'string' ? Object.assign(wrapped, { code }) : wrapped;
      }
      const manifest = json.weightsManifest;
      if (!Array.isArray(manifest)) throw codedError('INVALID_CHECKPOINT', `fileIOHandler: ${jsonPath} has no weightsManifest array`);
      const weightSpecs: io.WeightsManifestEntry[] = [];
      const buffers: Buffer[] = [];
      for (const group of manifest as { paths?: unknown; weights?: unknown }[]) {
        if (!Array.isArray(group?.paths) || !Array.isArray(group.weights)) {
          throw codedError('INVALID_CHECKPOINT', `fileIOHandler: ${jsonPath} has a weightsManifest group without paths and weights`);
        }
        weightSpecs.push(...(group.weights as io.WeightsManifestEntry[]));
        for (const file of group.paths as unknown[]) {
          if (typeof file !== 'string' || path.isAbsolute(file) || file.split(/[\\/]/).includes('..')) {
            throw codedError('INVALID_CHECKPOINT', `fileIOHandler: ${jsonPath} names a weights file outside its folder: ${JSON.stringify(file)}`);
          }
          buffers.push(await readRegularFile(path.join(folder, file)));
        }
      }
      const all = Buffer.concat(buffers);
      const artifacts: io.ModelArtifacts = {
        modelTopology: json.modelTopology as {},
        weightSpecs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer,
      };
      for (const field of OPTIONAL_FIELDS) {
        if (json[field] !== undefined) (artifacts as Record<string, unknown>)[field] = json[field];
      }
      return artifacts;
    },
  };
}
