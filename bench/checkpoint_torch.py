# torch.save (with fsync, as model-ema's save() does) and torch.load of the same tensors as
# bench/checkpoint.js, timed in this process. Usage: python3 checkpoint_torch.py SIZES_JSON DIR
# Prints one JSON line: seconds and peak resident-set growth (MiB) of each phase.
import json
import os
import sys
import time

import torch


def status_kib(field):
    with open('/proc/self/status') as f:
        line = next(l for l in f if l.startswith(field))
    return int(line.split()[1])


def phase(fn):
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # resets VmHWM to the current RSS, as the Node side does
    before = status_kib('VmRSS:')
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    return result, seconds, (status_kib('VmHWM:') - before) / 1024


def main():
    with open(sys.argv[1]) as f:
        sizes = json.load(f)
    path = os.path.join(sys.argv[2], 'torch.pt')
    # Named as the EMA names them; filled and touched before timing, as the EMA's shadows are.
    tensors = {f'shadow.{i}': torch.full((n,), 0.25, dtype=torch.float32) for i, n in enumerate(sizes)}

    def save():
        with open(path, 'wb') as f:
            torch.save(tensors, f)
            f.flush()
            os.fsync(f.fileno())

    _, save_s, save_mib = phase(save)
    loaded, load_s, load_mib = phase(lambda: torch.load(path))
    assert all(torch.equal(loaded[k], tensors[k]) for k in ('shadow.0', f'shadow.{len(sizes) - 1}'))
    del loaded
    os.remove(path)
    print(json.dumps({'save': save_s, 'saveMiB': save_mib, 'load': load_s, 'loadMiB': load_mib, 'version': torch.__version__}))


main()
