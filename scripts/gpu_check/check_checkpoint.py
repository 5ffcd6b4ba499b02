#!/usr/bin/env python3
"""Reads checkpoints written by model-ema (fixtures/, made by make_checkpoint_fixture.js) as a
Python user would, and checks them against the JSON written alongside each.

Two parts, each run when its libraries are installed and skipped with a note otherwise:
  numpy:              the README's own reader (examples/readme/load_checkpoint.py): its functions
                      on every fixture (names, dtypes, shapes, metadata, values, checksums), and
                      the whole snippet run as a user runs it;
  safetensors, torch: the real library reads every file (safetensors.torch.load_file, safe_open's
                      metadata), then the shadows go into a torch.nn.Module (load_state_dict) and
                      into torch_ema's shadow_params as the README shows.

Usage: python3 scripts/gpu_check/check_checkpoint.py [fixture_dir]
One line per check; the last line is the summary: "check_checkpoint: PASS ..." (exit 0, parts
skipped are named there), "check_checkpoint: FAIL ..." (exit 1).
"""
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
README_SNIPPET = os.path.join(HERE, "..", "..", "examples", "readme", "load_checkpoint.py")
TORCH_DTYPES = {"float32": "float32", "float64": "float64", "float16": "float16", "bfloat16": "bfloat16"}
SAFETENSORS_DTYPES = {"float32": "F32", "float64": "F64", "float16": "F16", "bfloat16": "BF16"}


class Log:
    def __init__(self):
        self.checks = 0
        self.failed = 0
        self.skipped = []

    def report(self, name, failures):
        self.checks += 1
        if not failures:
            print(f"ok    {name}", flush=True)
            return
        self.failed += 1
        print(f"FAIL  {name}: {len(failures)} failure(s)", flush=True)
        for failure in failures[:5]:
            print(f"        {failure}", flush=True)


def same_values(got, expected, what):
    """Exact equality of flat number lists (every fixture value is finite)."""
    got = [float(v) for v in got]
    if len(got) != len(expected):
        return [f"{what}: {len(got)} values, expected {len(expected)}"]
    for i, (a, b) in enumerate(zip(got, expected)):
        if not (a == b or (math.isnan(a) and math.isnan(b))):
            return [f"{what}[{i}]: {a!r}, expected {b!r}"]
    return []


def expected_metadata(fx):
    return {
        "format": "model-ema",
        "dtype": fx["dtype"],
        "collected_dtype": fx["collectedDtype"],
        "names": fx["names"],
        "num_updates": "null" if fx["numUpdates"] is None else str(fx["numUpdates"]),
    }


def check_metadata(metadata, fx):
    failures = []
    want = expected_metadata(fx)
    for key in ("format", "dtype", "collected_dtype", "num_updates"):
        if metadata.get(key) != want[key]:
            failures.append(f"metadata {key}: {metadata.get(key)!r}, expected {want[key]!r}")
    if float(metadata.get("decay", "nan")) != fx["decay"]:
        failures.append(f"metadata decay: {metadata.get('decay')!r}, expected {fx['decay']!r}")
    if json.loads(metadata.get("names", "null")) != fx["names"]:
        failures.append(f"metadata names: {metadata.get('names')!r}, expected {fx['names']!r}")
    for key in ("format_version", "schedule", "metadata_sha256", "checksums"):
        if key not in metadata:
            failures.append(f"metadata has no {key}")
    return failures


def tensor_names(fx):
    return [f"shadow.{k}" for k in fx["keys"]] + [f"collected.{k}" for k in fx["keys"]]


def load_readme_reader():
    """The README snippet's functions, without its last lines (which read ./ema.safetensors)."""
    with open(README_SNIPPET, encoding="utf-8") as f:
        source = f.read()
    definitions = source.split("\ntensors, meta = read_safetensors(")[0]
    namespace = {}
    exec(compile(definitions, README_SNIPPET, "exec"), namespace)  # noqa: S102 - our own file
    return namespace


def numpy_part(fixtures, log):
    import numpy as np  # noqa: F401 - the snippet imports it too

    reader = load_readme_reader()
    for path, fx in fixtures:
        name = os.path.basename(path)
        failures = []
        tensors, metadata = reader["read_safetensors"](path)  # verifies every checksum
        if sorted(tensors) != sorted(tensor_names(fx)):
            failures.append(f"tensor names {sorted(tensors)}, expected {sorted(tensor_names(fx))}")
        if reader["parameter_keys"](json.loads(metadata["names"])) != fx["keys"]:
            failures.append(f"parameter_keys gives {reader['parameter_keys'](json.loads(metadata['names']))}")
        failures += check_metadata(metadata, fx)
        for key, shape, shadow, collected in zip(fx["keys"], fx["shapes"], fx["shadows"], fx["collected"]):
            for prefix, values in (("shadow.", shadow), ("collected.", collected)):
                array = tensors.get(prefix + key)
                if array is None:
                    continue
                if list(array.shape) != shape:
                    failures.append(f"{prefix}{key}: shape {list(array.shape)}, expected {shape}")
                failures += same_values(array.reshape(-1).tolist(), values, prefix + key)
        log.report(f"numpy (README reader)  {name}: names, shapes, metadata, values, checksums", failures)

    # The snippet as a user runs it: in a folder holding ema.safetensors.
    path, fx = fixtures[0]
    with tempfile.TemporaryDirectory() as folder:
        shutil.copyfile(path, os.path.join(folder, "ema.safetensors"))
        run = subprocess.run([sys.executable, README_SNIPPET], cwd=folder, capture_output=True, text=True, timeout=60)
    num_updates = fx["numUpdates"]
    want = f"decay {fx['decay']}, num_updates {num_updates}, dtype {fx['dtype']}, {len(fx['keys'])} shadows"
    failures = [] if run.returncode == 0 and run.stdout.strip() == want else [f"exit {run.returncode}, printed {run.stdout.strip()!r} {run.stderr.strip()[-300:]!r}, expected {want!r}"]
    log.report("numpy (README snippet run as is)", failures)


def torch_part(fixtures, log):
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    for path, fx in fixtures:
        name = os.path.basename(path)
        failures = []
        tensors = load_file(path)
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata()
            if sorted(f.keys()) != sorted(tensor_names(fx)):
                failures.append(f"safe_open keys {sorted(f.keys())}")
        if sorted(tensors) != sorted(tensor_names(fx)):
            failures.append(f"tensor names {sorted(tensors)}, expected {sorted(tensor_names(fx))}")
        failures += check_metadata(metadata, fx)
        shadow_dtype = getattr(torch, TORCH_DTYPES[fx["dtype"]])
        collected_dtype = getattr(torch, TORCH_DTYPES[fx["collectedDtype"]])
        for key, shape, shadow, collected in zip(fx["keys"], fx["shapes"], fx["shadows"], fx["collected"]):
            for prefix, values, dtype in (("shadow.", shadow, shadow_dtype), ("collected.", collected, collected_dtype)):
                t = tensors.get(prefix + key)
                if t is None:
                    continue
                if t.dtype != dtype:
                    failures.append(f"{prefix}{key}: dtype {t.dtype}, expected {dtype}")
                if list(t.shape) != shape:
                    failures.append(f"{prefix}{key}: shape {list(t.shape)}, expected {shape}")
                failures += same_values(t.double().reshape(-1).tolist(), values, prefix + key)
        log.report(f"safetensors+torch {torch.__version__}  {name}: names, dtypes, shapes, metadata, values", failures)

        # Into a model: a Module whose parameters have the checkpoint's shapes, in parameter order.
        failures = []
        model = torch.nn.Module()
        for i, shape in enumerate(fx["shapes"]):
            model.register_parameter(f"p{i}", torch.nn.Parameter(torch.zeros(shape, dtype=torch.float64)))
        state = {f"p{i}": tensors[f"shadow.{key}"].double() for i, key in enumerate(fx["keys"])}
        model.load_state_dict(state)
        for (param_name, p), values in zip(model.named_parameters(), fx["shadows"]):
            failures += same_values(p.detach().reshape(-1).tolist(), values, f"model.{param_name}")
        # torch_ema's shadow_params, as the README's comment builds them from the numpy shadows.
        try:
            reader = load_readme_reader()
            arrays, meta = reader["read_safetensors"](path)
            shadows = [arrays[f"shadow.{k}"] for k in reader["parameter_keys"](json.loads(meta["names"]))]
            shadow_params = [torch.from_numpy(s.copy()).view_as(p) for s, p in zip(shadows, model.parameters())]
            for i, (s, values) in enumerate(zip(shadow_params, fx["shadows"])):
                failures += same_values(s.double().reshape(-1).tolist(), values, f"shadow_params[{i}]")
        except ImportError as error:  # numpy missing: the torch_ema line needs it
            print(f"note  torch_ema shadow_params line skipped: {error}")
        log.report(f"torch.nn.Module.load_state_dict  {name}: shadows into a model", failures)


def main():
    fixture_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "fixtures")
    fixtures = []
    for json_path in sorted(glob.glob(os.path.join(fixture_dir, "*.json"))):
        with open(json_path, encoding="utf-8") as f:
            fx = json.load(f)
        fixtures.append((os.path.join(fixture_dir, fx["file"]), fx))
    log = Log()
    if not fixtures:
        log.report(f"fixtures found in {fixture_dir}", ["none"])
    for part, needs, run in (("numpy", ("numpy",), numpy_part), ("torch", ("torch", "safetensors"), torch_part)):
        if not fixtures:
            break
        missing = []
        for module in needs:
            try:
                __import__(module)
            except ImportError:
                missing.append(module)
        if missing:
            note = f"{part} part skipped: {', '.join(missing)} not installed for {sys.executable}"
            print(f"SKIP  {note}", flush=True)
            log.skipped.append(note)
            continue
        try:
            run(fixtures, log)
        except Exception as error:  # a crash is a failure, reported like the others
            log.report(f"{part} part ran", [f"{type(error).__name__}: {error}"])
    skipped = f"; {'; '.join(log.skipped)}" if log.skipped else ""
    if log.failed:
        print(f"check_checkpoint: FAIL {log.failed} of {log.checks} checks failed{skipped}")
        return 1
    print(f"check_checkpoint: PASS {log.checks} checks on {len(fixtures)} checkpoints{skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
