"""Golden fixtures for data/layout_readers (the FGVCAircraft and ImageNet layouts and their
few-shot draws, ../shared/spec/data.md §1.1, §1.3), made by Python itself.

Plain /usr/bin/python3, no torch. Writes into OUT_DIR/dataset_layouts/:
  fgvc_aircraft/   variants.txt, images_variant_{train,val,test}.txt (shuffled, classes smaller
                   than K, variant names with spaces, '/' and '-'), images/<id>.jpg (empty
                   files), captions.txt for the train images
  imagenet/        classnames.txt, images/{train,val}/<wnid>/<file> (empty files, created in an
                   unsorted order), split_ImageNet.json ({"val": [...]}, TGP-T's val pool)
  expected.json    per dataset, shots and seed: the few-shot train and val as
                   [relpath under the image root, label, classname], drawn as the official code
                   does: FGVC as Dassl's datasets/fgvc_aircraft.py reads the lists and
                   generate_fewshot_dataset draws train (K) then val (min(K, 4)); ImageNet as
                   Dassl's read_data lists the class folders (sorted file names, i.e. a sorted
                   os.listdir) and TGP-T draws train (K) then split_ImageNet.json's val
                   (max(K, 8)) from the same stream after random.seed(seed)
"""
import json
import os
import pathlib
import random
from collections import defaultdict

SHOTS = [1, 2, 4, 8, 16]
SEEDS = [1, 2, 3]


class Datum:
    def __init__(self, impath, label, classname):
        self.impath, self.label, self.classname = impath, label, classname


def split_dataset_by_label(data_source):
    output = defaultdict(list)
    for item in data_source:
        output[item.label].append(item)
    return output


def generate_fewshot_dataset(data_source, num_shots):
    """Dassl's DatasetBase.generate_fewshot_dataset (repeat=False) for one data source."""
    tracker = split_dataset_by_label(data_source)
    dataset = []
    for label, items in tracker.items():
        if len(items) >= num_shots:
            sampled_items = random.sample(items, num_shots)
        else:
            sampled_items = items
        dataset.extend(sampled_items)
    return dataset


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


# ---------------------------------------------------------------------------------------------
# FGVCAircraft


def write_fgvc(root, rng):
    variants = ["707-320", "A300B4", "F-16A/B", "Cessna 172", "DC-10", "Boeing 717",
                "Tu-134", "DHC-8-100"]
    (root / "variants.txt").write_text("".join(v + "\n" for v in variants))
    sizes = {"train": [20, 3, 17, 1, 9, 16, 30, 5], "val": [6, 2, 4, 1, 5, 3, 8, 4],
             "test": [2, 1, 2, 1, 1, 2, 3, 1]}
    ids = rng.sample(range(1000000, 9999999), sum(sum(v) for v in sizes.values()))
    captions = []
    for subset, counts in sizes.items():
        lines = [v for c, v in enumerate(variants) for _ in range(counts[c])]
        rng.shuffle(lines)
        out = []
        for v in lines:
            image_id = str(ids.pop())
            out.append(f"{image_id} {v}\n")
            touch(root / "images" / (image_id + ".jpg"))
            if subset == "train":
                captions.append(f"{image_id}.jpg\tA photo of a {v} aircraft.\t{v}\n")
        (root / f"images_variant_{subset}.txt").write_text("".join(out))
    (root / "captions.txt").write_text("".join(captions))


class FGVCAircraft:
    """Dassl's datasets/fgvc_aircraft.py, reading and drawing."""

    def __init__(self, dataset_dir):
        self.dataset_dir = str(dataset_dir)
        self.image_dir = os.path.join(self.dataset_dir, "images")
        classnames = []
        with open(os.path.join(self.dataset_dir, "variants.txt"), "r") as f:
            for line in f.readlines():
                classnames.append(line.strip())
        cname2lab = {c: i for i, c in enumerate(classnames)}
        self.train = self.read_data(cname2lab, "images_variant_train.txt")
        self.val = self.read_data(cname2lab, "images_variant_val.txt")
        self.test = self.read_data(cname2lab, "images_variant_test.txt")

    def read_data(self, cname2lab, split_file):
        filepath = os.path.join(self.dataset_dir, split_file)
        items = []
        with open(filepath, "r") as f:
            for line in f.readlines():
                line = line.strip().split(" ")
                imname = line[0] + ".jpg"
                classname = " ".join(line[1:])
                impath = os.path.join(self.image_dir, imname)
                label = cname2lab[classname]
                items.append(Datum(impath=impath, label=label, classname=classname))
        return items

    def fewshot(self, shots, seed):
        random.seed(seed)
        train = generate_fewshot_dataset(self.train, num_shots=shots)
        val = generate_fewshot_dataset(self.val, num_shots=min(shots, 4))
        return train, val


# ---------------------------------------------------------------------------------------------
# ImageNet


def write_imagenet(root, rng):
    classes = [("n01440764", "tench"), ("n01443537", "goldfish"),
               ("n01484850", "great white shark"), ("n01491361", "tiger shark"),
               ("n01494475", "hammerhead shark"), ("n02085620", "Chihuahua")]
    (root / "classnames.txt").write_text("".join(f"{w} {n}\n" for w, n in classes))
    train_sizes = [12, 3, 20, 9, 17, 8]
    val_sizes = [2, 3, 1, 2, 2, 3]
    pool = []
    for (wnid, _), n_train, n_val in zip(classes, train_sizes, val_sizes):
        names = [f"{wnid}_{rng.randrange(10**6):06d}_{i}.JPEG" for i in range(n_train)]
        rng.shuffle(names)  # created in an unsorted order
        for name in names:
            touch(root / "images" / "train" / wnid / name)
        for i in range(n_val):
            touch(root / "images" / "val" / wnid / f"ILSVRC2012_val_{wnid}_{i:03d}.JPEG")
        pool.extend(names)
    # TGP-T's val pool: [path under images/, label, classname], classes interleaved.
    val = []
    for label, (wnid, name) in enumerate(classes):
        files = sorted(os.listdir(root / "images" / "train" / wnid))
        for f in files[: max(2, len(files) - 2)]:
            val.append([f"train/{wnid}/{f}", label, name])
    rng.shuffle(val)
    (root / "split_ImageNet.json").write_text(
        json.dumps({"val": val}, indent=4, separators=(",", ": ")))


class ImageNet:
    """Dassl's datasets/imagenet.py reading (with a sorted listdir) and TGP-T's draw."""

    def __init__(self, dataset_dir):
        self.dataset_dir = str(dataset_dir)
        self.image_dir = os.path.join(self.dataset_dir, "images")
        classnames = self.read_classnames(os.path.join(self.dataset_dir, "classnames.txt"))
        self.train = self.read_data(classnames, "train")
        with open(os.path.join(self.dataset_dir, "split_ImageNet.json")) as f:
            self.val = [Datum(os.path.join(self.image_dir, p), y, c)
                        for p, y, c in json.load(f)["val"]]

    @staticmethod
    def read_classnames(text_file):
        classnames = {}
        with open(text_file, "r") as f:
            for line in f.readlines():
                line = line.strip().split(" ")
                classnames[line[0]] = " ".join(line[1:])
        return classnames

    def read_data(self, classnames, split_dir):
        split_dir = os.path.join(self.image_dir, split_dir)
        folders = sorted(f.name for f in os.scandir(split_dir) if f.is_dir())
        items = []
        for label, folder in enumerate(folders):
            imnames = sorted(f for f in os.listdir(os.path.join(split_dir, folder))
                             if not f.startswith("."))
            for imname in imnames:
                impath = os.path.join(split_dir, folder, imname)
                items.append(Datum(impath=impath, label=label, classname=classnames[folder]))
        return items

    def fewshot(self, shots, seed):
        random.seed(seed)
        train = generate_fewshot_dataset(self.train, num_shots=shots)
        val = generate_fewshot_dataset(self.val, num_shots=max(shots, 8))
        return train, val


def entries(items, image_dir):
    return [[os.path.relpath(d.impath, image_dir), d.label, d.classname] for d in items]


def generate(out_dir):
    out = pathlib.Path(out_dir) / "dataset_layouts"
    rng = random.Random(20261206)  # only builds the trees
    expected = {}
    for name, write, cls in (("fgvc_aircraft", write_fgvc, FGVCAircraft),
                             ("imagenet", write_imagenet, ImageNet)):
        root = out / name
        if root.exists():
            for p in sorted(root.rglob("*"), reverse=True):
                p.rmdir() if p.is_dir() else p.unlink()
        root.mkdir(parents=True, exist_ok=True)
        write(root, rng)
        ds = cls(root)
        cases = []
        for shots in SHOTS:
            for seed in SEEDS:
                train, val = ds.fewshot(shots, seed)
                cases.append({"shots": shots, "seed": seed,
                              "train": entries(train, ds.image_dir),
                              "val": entries(val, ds.image_dir)})
        expected[name] = {"cases": cases, "num_train": len(ds.train), "num_val": len(ds.val)}
    (out / "expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    import sys
    generate(sys.argv[1] if len(sys.argv) > 1 else "golden")
