#!/usr/bin/env python3
"""Damaged files through the command line, checked from outside.

Builds damaged copies of the files the CLI reads (random byte flips, truncations, spliced
chunks, and integers that size arithmetic trips on written over random offsets; number
fields rewritten in JSON), runs the command that reads each one under a time and memory
limit, and sorts the outcomes:

  clean error  exit 1 with one line on stderr
  success      exit 0
  crash        anything else: a signal, another exit code, or an exit 1 that is not one line
  hang         still running at the time limit

Usage: Fuzz/cli-damage.py [--runs N] [--seed S] [--timeout 20] [--memory-gib 8] [--binary PATH]
The release build must exist (swift build -c release). Failing inputs are kept in
.build-fuzz/damage/<kind>/ with the command that ran them; everything else is removed.
"""
import argparse, json, os, random, re, resource, shutil, struct, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
models = os.path.join(root, "Tests", "VisionMambaTests", "Resources")
cifar = os.path.join(root, "Tests", "TrainingTests", "Resources", "cifar")

# Values whose products and sums wrap, or whose allocation cannot succeed.
INTERESTING = [0, 1, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62, 2**62 + 2**60, 2**63 - 1, 2**64 - 1]


def mutate_bytes(data, rng):
    data = bytearray(data)
    kind = rng.randrange(5)
    if kind == 0 or len(data) < 16:          # flip a few bytes
        for _ in range(rng.randint(1, 8)):
            if data: data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1:                           # truncate
        del data[rng.randrange(len(data)):]
    elif kind == 2:                           # splice a chunk of the file elsewhere
        a = rng.randrange(len(data)); b = min(len(data), a + rng.randint(1, 256))
        at = rng.randrange(len(data)); data[at:at] = data[a:b]
    elif kind == 3:                           # an interesting integer, little or big endian
        v = rng.choice(INTERESTING); width = rng.choice([4, 8])
        raw = (v % 2 ** (8 * width)).to_bytes(width, rng.choice(["little", "big"]))
        at = rng.randrange(max(1, len(data) - width)); data[at:at + width] = raw
    else:                                     # a digit run in a header becomes a huge number
        text = bytes(data[:4096])
        runs = [m.span() for m in re.finditer(rb"\d+", text)]
        if runs:
            a, b = rng.choice(runs); data[a:b] = str(rng.choice(INTERESTING + [10**30])).encode()
        else:
            data[rng.randrange(len(data))] ^= 0xFF
    return bytes(data)


def mutate_json(data, rng):
    """One or two number fields of a config rewritten (huge, zero, negative, fractional), or a key
    dropped; one time in five the text is then damaged as bytes."""
    try:
        obj = json.loads(data)
    except ValueError:
        return mutate_bytes(data, rng)
    leaves = []   # (container, key) of every number
    def walk(o):
        items = o.items() if isinstance(o, dict) else enumerate(o) if isinstance(o, list) else []
        for k, v in items:
            if isinstance(v, (int, float)) and not isinstance(v, bool): leaves.append((o, k))
            else: walk(v)
    walk(obj)
    for _ in range(rng.randint(1, 2)):
        if not leaves: break
        o, k = rng.choice(leaves)
        if isinstance(o, dict) and rng.random() < 0.1: o.pop(k, None)
        else: o[k] = rng.choice(INTERESTING + [-1, -2**63, 0.5, 1e308, 2, 3, 4096, 65536, 1048576])
    out = json.dumps(obj).encode()
    return out if rng.random() < 0.8 else mutate_bytes(out, rng)


def limits(memory):
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def run(cmd, timeout, memory):
    env = dict(os.environ, SWIFT_BACKTRACE="enable=no")
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, preexec_fn=limits(memory), env=env)
    except subprocess.TimeoutExpired:
        return "hang", ""
    err = p.stderr.decode(errors="replace").strip()
    if p.returncode == 0: return "success", err
    if p.returncode == 1 and err and "\n" not in err: return "clean error", err
    return "crash", f"rc {p.returncode}: {err[-300:]}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100, help="damaged files per kind")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--memory-gib", type=float, default=8)
    ap.add_argument("--binary", default=os.path.join(root, ".build", "release", "vision-mamba"))
    args = ap.parse_args()
    vm, memory = args.binary, int(args.memory_gib * 2**30)
    if not os.path.exists(vm): sys.exit(f"{vm}: build first (swift build -c release)")
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="vm-damage-")
    keep = os.path.join(root, ".build-fuzz", "damage")
    try:
        # A training checkpoint of the bundled digits, and the same weights as a .pth.
        run_dir = os.path.join(work, "run")
        subprocess.run([vm, "train", "--model", "vim-digits", "--data-set", "digits", "--epochs", "1",
                        "--output-dir", run_dir], check=True, capture_output=True)
        checkpoint = next(os.path.join(run_dir, f) for f in sorted(os.listdir(run_dir)) if f.endswith(".safetensors"))
        checkpoint_pth = os.path.join(work, "checkpoint.pth")
        subprocess.run([vm, "convert", checkpoint, checkpoint_pth], check=True, capture_output=True)
        micro = lambda ext: os.path.join(models, "vim-micro" + ext)
        # kind: (source file, mutator, file name, command taking the damaged file's path)
        kinds = {
            "convert, small .pth": (micro(".pth"), mutate_bytes, "w.pth",
                                    lambda f: [vm, "convert", f, os.path.join(work, "o.safetensors")]),
            "convert, training-checkpoint .pth": (checkpoint_pth, mutate_bytes, "c.pth",
                                                  lambda f: [vm, "convert", f, os.path.join(work, "o.safetensors")]),
            "forward --weights, .pth": (micro(".pth"), mutate_bytes, "w.pth",
                                        lambda f: [vm, "forward", "--config", micro(".json"), "--weights", f, "--input",
                                                   micro(".io.safetensors"), "--output", os.path.join(work, "o.safetensors")]),
            "forward --config JSON": (micro(".json"), mutate_json, "c.json",
                                      lambda f: [vm, "forward", "--config", f, "--weights", micro(".safetensors"), "--input",
                                                 micro(".io.safetensors"), "--output", os.path.join(work, "o.safetensors")]),
            "eval, CIFAR python batch": (os.path.join(cifar, "cifar-10-batches-py", "test_batch"), mutate_bytes, None,
                                         lambda f: [vm, "eval", "--config", micro(".json"), "--weights", micro(".safetensors"),
                                                    "--data-set", "cifar10", "--data", f]),
            "forward --input safetensors": (micro(".io.safetensors"), mutate_bytes, "i.safetensors",
                                            lambda f: [vm, "forward", "--config", micro(".json"), "--weights", micro(".safetensors"),
                                                       "--input", f, "--output", os.path.join(work, "o.safetensors")]),
            "eval, checkpoint safetensors": (checkpoint, mutate_bytes, "c.safetensors",
                                             lambda f: [vm, "eval", "--weights", f]),
        }
        print("| command and file | runs | clean error | success | crash | hang |")
        print("|---|---|---|---|---|---|")
        failures = 0
        for kind, (source, mutator, name, command) in kinds.items():
            counts = {"clean error": 0, "success": 0, "crash": 0, "hang": 0}
            original = open(source, "rb").read()
            for i in range(-1, args.runs):
                damaged = original if i < 0 else mutator(original, rng)
                if name is None:   # a CIFAR folder whose test batch is damaged
                    folder = os.path.join(work, "cifar", "cifar-10-batches-py")
                    shutil.rmtree(os.path.join(work, "cifar"), ignore_errors=True)
                    shutil.copytree(os.path.join(cifar, "cifar-10-batches-py"), folder)
                    path = os.path.join(folder, "test_batch"); target = os.path.join(work, "cifar")
                else:
                    path = target = os.path.join(work, name)
                with open(path, "wb") as f: f.write(damaged)
                outcome, detail = run(command(target), args.timeout, memory)
                if i < 0:   # the undamaged file must work, or the rows below mean nothing
                    if outcome != "success": sys.exit(f"{kind}: the undamaged file gives {outcome}: {detail}")
                    continue
                counts[outcome] += 1
                if outcome in ("crash", "hang"):
                    failures += 1
                    slug = re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")
                    os.makedirs(os.path.join(keep, slug), exist_ok=True)
                    base = os.path.join(keep, slug, f"{outcome}-{i}")
                    with open(base + ".bin", "wb") as f: f.write(damaged)
                    with open(base + ".txt", "w") as f: f.write(" ".join(command(target)) + "\n" + detail + "\n")
            print(f"| `{kind}` | {args.runs} | {counts['clean error']} | {counts['success']} | {counts['crash']} | {counts['hang']} |",
                  flush=True)
        if failures: print(f"{failures} crashes or hangs; inputs in {keep}", file=sys.stderr)
        return 1 if failures else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
