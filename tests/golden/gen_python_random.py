"""Golden fixtures for data/python_random (CPython's random.Random) and data/fewshot (the
Dassl / TGP-T few-shot draw, ../shared/spec/data.md §1.3), made by Python itself.

Plain /usr/bin/python3, no torch. Writes into OUT_DIR/python_random/:
  random.json   per seed: |seed| as 32-bit words (least significant first), the first 32-bit
                outputs, getrandbits(k) for several k (as words), random() as integers
                random() * 2**53, _randbelow(n) for several n, a chain of sample(range(n), k)
                draws from one stream, and shuffles of range(n)
  split_zhou_Synthetic.json + fewshot_shot_4-seed_1.json  a synthetic CoOp split (Dassl's
                json.dump layout, non-ASCII class names) and its 4-shot seed-1 few-shot split as
                Python writes it with json.dump(indent=4, separators=(",", ": "))
  fewshot.json  synthetic label lists and the indices the reference few-shot draw picks for
                several seeds and shot counts (train with K = shots, then val from the same
                stream with K = min(shots, 4), or max(shots, 8) for ImageNet's val)
The fixtures record the Python version; the algorithms are those of CPython 3.11.
"""
import json
import pathlib
import random
import sys
from collections import defaultdict

SEEDS = [0, 1, 2, 3, 42, 2**32 + 5, -7, 2**63 - 1, 2**64 + 7, 2**100 + 12345,
         123456789012345678901234567890]
POP_SIZES = [1, 2, 3, 5, 6, 8, 16, 20, 21, 22, 30, 50, 64, 100, 101, 500, 1000, 1234, 2000]
KS = [1, 2, 4, 8, 16, 0]
BITS = [1, 31, 32, 33, 64, 100]
BELOW = [1, 2, 3, 7, 100, 2**31, 2**32, 2**32 + 1, 2**33 - 1, 2**53 + 3, 2**64 - 1]


def abs_words(seed):
    n = abs(seed)
    words = []
    while True:
        words.append(n & 0xFFFFFFFF)
        n >>= 32
        if n == 0:
            return words


def to_words(v, k):
    count = (k - 1) // 32 + 1 if k > 0 else 0
    return [(v >> (32 * i)) & 0xFFFFFFFF for i in range(count)]


def random_case(seed):
    r = random.Random(seed)
    case = {"seed": str(seed), "seed_words": abs_words(seed)}
    case["uint32"] = [r.getrandbits(32) for _ in range(16)]
    case["getrandbits"] = [{"k": k, "words": to_words(r.getrandbits(k), k)} for k in BITS]
    case["random53"] = [int(r.random() * 2**53) for _ in range(8)]
    case["randbelow"] = [{"n": str(n), "r": str(r._randbelow(n))} for n in BELOW]
    samples = []
    for n in POP_SIZES:
        for k in KS + [n]:
            if k <= n:
                samples.append({"n": n, "k": k, "picked": r.sample(range(n), k)})
    case["samples"] = samples
    shuffles = []
    for n in [0, 1, 2, 10, 25, 300]:
        x = list(range(n))
        r.shuffle(x)
        shuffles.append(x)
    case["shuffles"] = shuffles
    return case


def fewshot_reference(train_labels, val_labels, shots, seed, val_shots):
    """The few-shot draw of Dassl's generate_fewshot_dataset / TGP-T's datasets/basic.py, written
    from data.md §1.3: indices into the train and val lists, in draw order."""
    random.seed(seed)

    def draw(labels, k):
        groups = defaultdict(list)  # label -> item indices, labels in first-appearance order
        for idx, y in enumerate(labels):
            groups[y].append(idx)
        out = []
        for _, idxs in groups.items():
            if len(idxs) >= k:
                picked = random.sample(idxs, k)
            else:
                picked = idxs  # repeat=False: keep all of them
            out.extend(picked)
        return out

    train = draw(train_labels, shots)
    val = draw(val_labels, val_shots)
    return train, val


def make_labels(rng, class_sizes, interleave):
    """Labels for classes of the given sizes; interleaved (shuffled) or grouped in an order that
    is not sorted, so first-appearance order differs from label order."""
    order = list(range(len(class_sizes)))
    rng.shuffle(order)
    labels = [c for c in order for _ in range(class_sizes[c])]
    if interleave:
        rng.shuffle(labels)
    return labels


def fewshot_cases():
    rng = random.Random(20240401)  # only builds the synthetic label lists
    datasets = [
        # name, train class sizes, val class sizes, interleave
        ("small", [3, 1, 5, 2, 4], [2, 1, 3, 1, 2], False),
        ("mixed", [40, 16, 15, 1, 60, 25, 8, 17], [10, 4, 3, 1, 12, 5, 2, 6], True),
        ("pets_like", [80] * 37, [20] * 37, False),
        ("large_class", [2000, 700, 22, 21, 20], [500, 100, 9, 8, 7], True),
    ]
    labels = {}
    cases = []
    for name, tr_sizes, va_sizes, inter in datasets:
        train_labels = make_labels(rng, tr_sizes, inter)
        val_labels = make_labels(rng, va_sizes, inter)
        labels[name] = {"train_labels": train_labels, "val_labels": val_labels}
        for shots in [1, 2, 4, 8, 16]:
            for seed in [1, 2, 3, 0, 42]:
                for rule, val_shots in [("coop", min(shots, 4)), ("imagenet", max(shots, 8))]:
                    if rule == "imagenet" and seed not in (1, 2):
                        continue
                    train, val = fewshot_reference(train_labels, val_labels, shots, seed,
                                                   val_shots)
                    cases.append({"dataset": name, "shots": shots, "seed": seed, "val_rule": rule,
                                  "train": train, "val": val})
    return {"datasets": labels, "cases": cases}


def split_file_case(out):
    """A small split and its few-shot split written by Python, for the byte-level writer test."""
    rng = random.Random(7)
    names = ["abyssinian", "caf\u00e9 au lait", "smile \U0001F600", "sea or lake"]
    split = {"train": [], "val": [], "test": []}
    for subset, sizes in (("train", [9, 3, 12, 5]), ("val", [5, 2, 4, 6]), ("test", [2, 1, 1, 2])):
        for c, n in enumerate(sizes):
            for i in range(n):
                split[subset].append([f"{names[c].split()[0]}/{subset}_{i}.jpg", c, names[c]])
        rng.shuffle(split[subset])
    dump = dict(indent=4, separators=(",", ": "))
    (out / "split_zhou_Synthetic.json").write_text(json.dumps(split, **dump))
    labels = {k: [e[1] for e in v] for k, v in split.items()}
    train, val = fewshot_reference(labels["train"], labels["val"], 4, 1, 4)
    few = {"train": [split["train"][i] for i in train], "val": [split["val"][i] for i in val],
           "test": split["test"]}
    (out / "fewshot_shot_4-seed_1.json").write_text(json.dumps(few, **dump))


def generate(out_dir):
    out = pathlib.Path(out_dir) / "python_random"
    out.mkdir(parents=True, exist_ok=True)
    version = ".".join(str(v) for v in sys.version_info[:3])
    rnd = {"python": version, "cases": [random_case(s) for s in SEEDS]}
    rnd["golden"] = {"seed": 1, "n": 100, "k": 5}
    random.seed(1)
    rnd["golden"]["picked"] = random.sample(range(100), 5)
    (out / "random.json").write_text(json.dumps(rnd))
    fewshot = fewshot_cases()
    fewshot["python"] = version
    (out / "fewshot.json").write_text(json.dumps(fewshot))
    split_file_case(out)


if __name__ == "__main__":
    generate(sys.argv[1] if len(sys.argv) > 1 else "golden")
