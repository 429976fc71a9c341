"""Golden fixtures for convert/fewshot_pickle (the official few-shot split caches,
../shared/spec/data.md §1.3), written by Python's own pickle module as the official code writes
them.

/usr/bin/python3 with torch. Writes into OUT_DIR/fewshot_pickles/:
  data/oxford_pets/     a small dataset in the CoOp layout: images/<class>_<subset><i>.jpg (empty
                        files), split_zhou_OxfordPets.json (3 classes), captions.txt with captions
                        for the even-numbered train images only
    split_fewshot/shot_{1,2}-seed_1.pkl    CoOp: {"train": [Datum...], "val": [Datum...]},
                        pickle.HIGHEST_PROTOCOL, instances of a class Datum registered as
                        dassl.data.datasets.base_dataset.Datum (so the GLOBAL names are Dassl's),
                        _impath absolute under the author's root AUTHOR_ROOT
    split_fewshot2/shot_2-seed_1.pkl       TGP-T: the same lists of plain dicts {impath, label,
                        classname, caption, tokenized_caption}, tokenized_caption a torch tensor
                        of 77 ids (plain pickle.dumps: its storage goes through
                        torch.storage._load_from_bytes)
  damaged/*.pkl         caches that must be refused (see DAMAGED below); evil.pkl would run
                        `touch OUT_DIR/fewshot_pickles/EXECUTED` if it were executed
  expected.json         per cache: train and val as [relpath under images/, label, classname] in
                        pickle order; TGP-T: the pickle's captions; the author root; the damaged
                        files with a part of the expected error message
"""
import json
import os
import pathlib
import pickle
import random
import sys
import types

import torch

AUTHOR_ROOT = "/nas/author/CoOp/DATA"
CLASSES = ["abyssinian", "boxer", "pug"]
SIZES = {"train": [6, 3, 5], "val": [3, 3, 3], "test": [2, 2, 2]}


def _dassl_datum_class():
    """A class pickled as dassl.data.datasets.base_dataset.Datum (Dassl's own is a plain class
    whose __init__ stores _impath, _label, _domain, _classname)."""
    names = ["dassl", "dassl.data", "dassl.data.datasets", "dassl.data.datasets.base_dataset"]
    for n in names:
        sys.modules.setdefault(n, types.ModuleType(n))
    mod = sys.modules[names[-1]]

    class Datum:
        def __init__(self, impath="", label=0, domain=0, classname=""):
            self._impath = impath
            self._label = label
            self._domain = domain
            self._classname = classname

    Datum.__module__ = mod.__name__
    Datum.__qualname__ = "Datum"
    mod.Datum = Datum
    return Datum


class _Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def _dump(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _tokens(n):
    t = torch.zeros(77, dtype=torch.long)
    t[0], t[1], t[2] = 49406, 320 + n, 49407
    return t


def generate(out_dir):
    root = pathlib.Path(out_dir) / "fewshot_pickles"
    ds = root / "data" / "oxford_pets"
    items = {}
    split = {}
    caps = []
    for subset in ["train", "val", "test"]:
        split[subset] = []
        for c, name in enumerate(CLASSES):
            for i in range(SIZES[subset][c]):
                rel = f"{name}_{subset}{i}.jpg"
                split[subset].append([rel, c, name])
                p = ds / "images" / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(b"")
                if subset == "train" and i % 2 == 0:
                    caps.append(f"{rel}\tcaptions.txt says {rel}\t{name}\n")
        items[subset] = split[subset]
    (ds / "split_zhou_OxfordPets.json").write_text(json.dumps(split, indent=4))
    (ds / "captions.txt").write_text("".join(caps))

    Datum = _dassl_datum_class()
    rng = random.Random(7)

    def pick(subset, k):
        out = []
        for c in range(len(CLASSES)):
            pool = [it for it in items[subset] if it[1] == c]
            out += rng.sample(pool, min(k, len(pool)))
        rng.shuffle(out)  # any order: the importer must keep it
        return out

    def author_path(rel):
        return f"{AUTHOR_ROOT}/oxford_pets/images/{rel}"

    expected = {"author_root": AUTHOR_ROOT, "classnames": CLASSES}
    for shots in [1, 2]:
        tr, va = pick("train", shots), pick("val", min(shots, 4))
        cache = {
            "train": [Datum(author_path(r), l, 0, n) for r, l, n in tr],
            "val": [Datum(author_path(r), l, 0, n) for r, l, n in va],
        }
        _dump(ds / "split_fewshot" / f"shot_{shots}-seed_1.pkl", cache)
        expected[f"coop_shot{shots}"] = {"train": tr, "val": va}

    tr, va = pick("train", 2), pick("val", 2)

    def tgpt_item(r, l, n, k):
        cap = f"the pickle's caption {k} of {r}"
        return {"impath": author_path(r), "label": l, "classname": n, "caption": cap,
                "tokenized_caption": _tokens(k)}

    cache = {"train": [tgpt_item(*it, k) for k, it in enumerate(tr)],
             "val": [tgpt_item(*it, 100 + k) for k, it in enumerate(va)]}
    _dump(ds / "split_fewshot2" / "shot_2-seed_1.pkl", cache)
    expected["tgpt_shot2"] = {
        "train": tr, "val": va,
        "captions": [c["caption"] for c in cache["train"]],
    }

    # Damaged caches: file -> a part of the error.
    good = [Datum(author_path(r), l, 0, n) for r, l, n in tr]
    marker = root / "EXECUTED"
    damaged = {
        "evil.pkl": ({"train": good[:1] + [_Evil(f"touch '{marker}'")]}, "'posix.system'"),
        "evil_root.pkl": (_Evil(f"touch '{marker}'"), "'posix.system'"),
        "label_str.pkl": ({"train": [{"impath": author_path(tr[0][0]), "label": "1",
                                      "classname": tr[0][2]}]}, "'label' is a str, not a int"),
        "wrong_class.pkl": ({"train": [Datum(author_path(tr[0][0]), tr[0][1], 0, "sphynx")]},
                            "class name 'sphynx'"),
        "label_range.pkl": ({"train": [Datum(author_path(tr[0][0]), 7, 0, "pug")]},
                            "label 7 is out of range"),
        "missing_image.pkl": ({"train": [Datum(author_path("nothere.jpg"), 0, 0, CLASSES[0])]},
                              "nothere.jpg' does not exist"),
        "no_dataset_folder.pkl": ({"train": [Datum("/nas/x/pets/a.jpg", 0, 0, CLASSES[0])]},
                                  "holds no folder named"),
        "climbs_out.pkl": ({"train": [Datum(f"{AUTHOR_ROOT}/oxford_pets/../../etc/passwd", 0, 0,
                                            CLASSES[0])]}, "climbs out"),
        "not_dict.pkl": ([1, 2, 3], "not a dict"),
        "no_train.pkl": ({"val": []}, "no \"train\" list"),
        "empty_train.pkl": ({"train": [], "val": []}, "\"train\" list is empty"),
        "mixed.pkl": ({"train": [good[0], {"impath": author_path(tr[1][0]), "label": tr[1][1],
                                           "classname": tr[1][2]}]}, "after CoOp"),
        "item_int.pkl": ({"train": [5]}, "train[0] is a int"),
    }
    expected["damaged"] = {}
    for name, (obj, part) in damaged.items():
        _dump(root / "damaged" / name, obj)
        expected["damaged"][name] = part
    expected["marker"] = str(marker)
    (root / "expected.json").write_text(json.dumps(expected, indent=1))
