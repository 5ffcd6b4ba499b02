// The parameters a new EMA registers: every parameter classified, this rank's share of them under
// options.shard, and none whose contents are already lost (a disposed variable, a detached buffer).
import { withCode } from './errors';
import { toEntries, type ParameterEntry } from './parameters';
import { ShardLayout, type ShardOptions } from './shard/layout';

export function entriesToRegister(parameters: unknown, shard: ShardOptions | null): { entries: ParameterEntry[]; layout: ShardLayout | null } {
  const all = toEntries(parameters, 'parameters');
  const layout = shard && new ShardLayout(shard, all, (e) => e.kind.numel(e.value));
  const positions = layout?.own ?? all.map((_, i) => i);
  for (const i of positions) {
    const lost = all[i].kind.lostContents?.(all[i].value);
    if (lost !== undefined) throw withCode(new TypeError(`parameters[${i}] ${lost.refused}`), 'PARAMETER_GONE');
  }
  return { entries: layout?.pick(all) ?? all, layout };
}
