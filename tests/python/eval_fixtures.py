"""Evaluation data in the official formats, built from real images that packages ship: Fashion-MNIST
(Debian's dataset-fashion-mnist) and scikit-image's photographs, with captions written here."""

import gzip
import json
import os
import shutil

import numpy as np
from PIL import Image

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
CLS_PROMPT = "<|image_1|>\nRepresent the given image for classification\n"

# scikit-image photographs with captions (two per image), and SugarCrepe-style hard negatives.
PHOTOS = {
    "astronaut.png": ["an astronaut in a white spacesuit in front of a flag", "a smiling woman astronaut posing"],
    "chelsea.png": ["a tabby cat looking to the side", "a close-up photo of a cat"],
    "coffee.png": ["a cup of coffee on a saucer", "a red coffee cup with a spoon"],
    "rocket.jpg": ["a rocket launching into the sky", "a rocket lifting off with smoke below"],
    "camera.png": ["a man with a camera on a tripod", "a black and white photo of a photographer"],
    "coins.png": ["old coins on a dark background", "a grid of coins"],
    "horse.png": ["the silhouette of a horse", "a black horse shape on white"],
    "moon.png": ["the surface of the moon", "craters on the moon"],
}
SUGARCREPE = {
    "replace_obj": [("chelsea.png", "a tabby cat looking to the side", "a tabby dog looking to the side"),
                    ("coffee.png", "a cup of coffee on a saucer", "a cup of coffee on a laptop")],
    "swap_att": [("astronaut.png", "a woman in a white spacesuit in front of a red flag",
                  "a woman in a red spacesuit in front of a white flag")],
    "add_obj": [("rocket.jpg", "a rocket launching into the sky", "a rocket and a plane launching into the sky"),
                ("horse.png", "the silhouette of a horse", "the silhouette of a horse and its rider")],
}


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion_mnist(per_class, split="t10k"):
    images = read_idx(f"{FASHION_MNIST}/{split}-images-idx3-ubyte.gz")
    labels = read_idx(f"{FASHION_MNIST}/{split}-labels-idx1-ubyte.gz")
    picks = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
    return images[picks], labels[picks]


def write_fashion_mnist(root, per_class=3):
    """Fashion-MNIST as (1) an MMEB classification set (jsonl, with three malformed rows appended),
    (2) an MMEB text-to-image retrieval set (parquet, the hub's layout), (3) an image folder for
    zero-shot classification. Returns {name: path} and the per-row truth."""
    images, labels = fashion_mnist(per_class)
    image_dir = os.path.join(root, "images")
    os.makedirs(image_dir, exist_ok=True)
    names = []
    for i, (im, label) in enumerate(zip(images, labels)):
        name = f"fmnist_{i:03d}.png"
        Image.fromarray(im).convert("RGB").resize((56, 56), Image.NEAREST).save(os.path.join(image_dir, name))
        folder = os.path.join(root, "folder", FASHION_CLASSES[label].replace("/", "-"))
        os.makedirs(folder, exist_ok=True)
        shutil.copy(os.path.join(image_dir, name), folder)
        names.append(name)
    mmeb_dir = os.path.join(root, "mmeb")
    os.makedirs(mmeb_dir, exist_ok=True)
    cls_rows = []
    for name, label in zip(names, labels):
        others = [c for c in FASHION_CLASSES if c != FASHION_CLASSES[label]]
        cls_rows.append({"qry_text": CLS_PROMPT, "qry_img_path": name, "tgt_text": [FASHION_CLASSES[label], *others],
                         "tgt_img_path": [""] * 10})
    with open(os.path.join(mmeb_dir, "FashionMNIST-CLS.jsonl"), "w") as f:
        for row in cls_rows:
            f.write(json.dumps(row) + "\n")
        f.write('{"qry_text": "broken\n')  # line len(rows)+1: not JSON
        f.write(json.dumps({"qry_text": CLS_PROMPT, "qry_img_path": names[0], "tgt_text": []}) + "\n")  # no candidates
        f.write(json.dumps({**cls_rows[0], "qry_img_path": "missing.png"}) + "\n")  # image not on disk
    rng = np.random.default_rng(0)
    t2i_rows = []
    for i, label in enumerate(labels):
        others = [j for j in rng.permutation(len(names)) if labels[j] != label][:5]
        t2i_rows.append({"qry_text": f"Find me an image of a {FASHION_CLASSES[label].lower()}\n", "qry_img_path": "",
                         "tgt_text": ["<|image_1|>\nRepresent the given image.\n"] * 6,
                         "tgt_img_path": [names[i], *[names[j] for j in others]]})
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(os.path.join(mmeb_dir, "FashionMNIST-T2I"), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(t2i_rows),
                   os.path.join(mmeb_dir, "FashionMNIST-T2I", "test-00000-of-00001.parquet"))
    return {"image_dir": image_dir, "mmeb_dir": mmeb_dir, "folder": os.path.join(root, "folder"),
            "cls_rows": cls_rows, "t2i_rows": t2i_rows}


def write_photos(root):
    """scikit-image photos as a Flickr30K-format retrieval set (jsonl) and a SugarCrepe-format folder."""
    import skimage

    source = os.path.join(os.path.dirname(skimage.__file__), "data")
    image_dir = os.path.join(root, "photos")
    os.makedirs(image_dir, exist_ok=True)
    for name in PHOTOS:
        Image.open(os.path.join(source, name)).convert("RGB").save(os.path.join(image_dir, name))
    retrieval = os.path.join(root, "photos_test.jsonl")
    with open(retrieval, "w") as f:
        for name, captions in PHOTOS.items():
            f.write(json.dumps({"image": name, "caption": captions}) + "\n")
        f.write(json.dumps({"image": "chelsea.png", "caption": []}) + "\n")  # malformed: no captions
    sugar = os.path.join(root, "sugarcrepe")
    os.makedirs(sugar, exist_ok=True)
    for subset, items in SUGARCREPE.items():
        with open(os.path.join(sugar, subset + ".json"), "w") as f:
            json.dump({str(i): {"filename": fn, "caption": pos, "negative_caption": neg}
                       for i, (fn, pos, neg) in enumerate(items)}, f)
    return {"image_dir": image_dir, "retrieval": retrieval, "sugarcrepe": sugar}
