#!/usr/bin/env python3
"""Writes a corpus of malformed inputs for every kind of file and flag Fovea reads, and a manifest of the runs.

    scripts/hostile-corpus.py DIR [--run FOVEA]

DIR must hold a valid model pair (DIR/model/model.safetensors + model.json, a LeNet-5 on 1×28×28 input) and a valid
image (DIR/model/image.png): the hostile model files are made from them. Everything else is generated here, from
nothing but the standard library. DIR/manifest.json lists one case per run:

    {"kind": ..., "label": ..., "arguments": [...], "status": N, "mention": ["text the error must contain", ...]}

`arguments` follow `fovea`; "{D}" stands for DIR. The test suite (HostileInputCorpusTests) runs every case against
the release binary and checks the exit status, the message, the time and the peak memory. Run by hand, the corpus
also seeds the fuzzers (scripts/fuzz.sh). With `--run FOVEA` the script then runs every case against that binary, as
the test does, and prints per kind of input how many cases ended as expected, crashed (a signal), hung (20 s),
went past 300 MB of resident memory, or exited otherwise (e.g. 0 with a wrong answer): the way to compare builds.
"""
import gzip
import hashlib
import json
import os
import shutil
import struct
import sys
import zlib

ROOT = sys.argv[1]
RUN = sys.argv[sys.argv.index("--run") + 1] if "--run" in sys.argv else None
CASES = []


def case(kind, label, arguments, status, *mention):
    CASES.append({"kind": kind, "label": label, "arguments": arguments, "status": status, "mention": list(mention)})


def path(*parts):
    return os.path.join(ROOT, *parts)


def folder(*parts):
    p = path(*parts)
    os.makedirs(p, exist_ok=True)
    return p


def write(p, data):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)


def fifo(p):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    if os.path.lexists(p):
        os.remove(p)
    os.mkfifo(p)


def place(p, content):
    """Puts `content` at `p`: bytes as a file, "fifo" as a named pipe, "dir" as a folder."""
    if content == "fifo":
        fifo(p)
    elif content == "dir":
        os.makedirs(p, exist_ok=True)
    else:
        write(p, content)


def gzip_stream(chunks, level=6):
    """A gzip member of the concatenated chunks."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    out = [compressor.compress(chunk) for chunk in chunks]
    out.append(compressor.flush())
    return b"".join(out)


def zero_bomb(prefix, megabytes, container="gzip"):
    """`prefix` then `megabytes` MiB of zeros, compressed without compressing them: after a full flush the compressor
    forgets its history, so each MiB of zeros compresses to the same bytes, which are repeated. A gzip member (CRC-32
    and size trailer) or a zlib stream (Adler-32 trailer), valid to the last byte."""
    block = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    segment = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert segment == again
    tail = compressor.flush()
    body = head + segment * megabytes + tail
    if container == "gzip":
        crc = zlib.crc32(prefix)
        for _ in range(megabytes):
            crc = zlib.crc32(block, crc)
        size = (len(prefix) + (megabytes << 20)) & 0xFFFFFFFF
        return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + body + struct.pack("<II", crc, size)
    adler = zlib.adler32(prefix)
    for _ in range(megabytes):
        adler = zlib.adler32(block, adler)
    return b"\x78\xda" + body + struct.pack(">I", adler)


# ---------------------------------------------------------------- model files: sidecars and safetensors weights
MODEL = path("model")
IMAGE = path("model", "image.png")
with open(os.path.join(MODEL, "model.json")) as f:
    SIDECAR = json.load(f)
with open(os.path.join(MODEL, "model.safetensors"), "rb") as f:
    WEIGHTS = f.read()


def model_case(label, sidecar=None, weights=None, status=65, mention=(), sidecar_text=None, sidecar_kind=None):
    """A model folder with the given sidecar (dict, raw text, or a 'fifo'/'dir'/'missing' kind) and weights bytes."""
    name = "m%02d" % len(CASES)
    d = folder("models", name)
    w = os.path.join(d, "model.safetensors")
    s = os.path.join(d, "model.json")
    place(w, WEIGHTS if weights is None else weights)
    if sidecar_kind in ("fifo", "dir"):
        place(s, sidecar_kind)
    elif sidecar_kind != "missing":
        write(s, sidecar_text if sidecar_text is not None else json.dumps(sidecar or SIDECAR).encode())
    about_sidecar = (sidecar is not None or sidecar_text is not None or sidecar_kind is not None) and "shape mismatch" not in mention
    shown = "{D}/models/%s/%s" % (name, "model.json" if about_sidecar else "model.safetensors")
    case("model file", label, ["predict", "--weights", "{D}/models/%s/model.safetensors" % name, IMAGE_ARG], status,
         *(list(mention) + ([shown] if status != 0 else [])))


IMAGE_ARG = "{D}/model/image.png"


def with_field(field, value):
    changed = dict(SIDECAR)
    changed[field] = value
    return changed


model_case("sidecar over 16 MB", sidecar_text=b'{"classes": [' + b'"x",' * (5 << 20) + b'"x"]}', mention=["bytes"])
model_case("sidecar with 1,000,000 classes", with_field("classes", ["c"] * 1_000_000), mention=["classes"])
model_case("sidecar nested 100,000 deep", sidecar_text=b'{"classes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
           mention=["sidecar is not valid"])
model_case("sidecar of binary garbage", sidecar_text=os.urandom(4096), mention=["sidecar is not valid"])
model_case("sidecar that is a folder", sidecar_kind="dir", mention=["not a regular file"])
model_case("sidecar that is a FIFO", sidecar_kind="fifo", mention=["not a regular file"])
model_case("sidecar missing", sidecar_kind="missing", mention=["sidecar missing"])
model_case("std of zero", with_field("std", [0.0]), mention=["std"])
model_case("input side 2^62", with_field("input_shape", [1, 1 << 62, 28]), mention=["input_shape"])
model_case("100000 × 100000 input", with_field("input_shape", [1, 100000, 100000]), mention=["input_shape"])
model_case("four channels", with_field("input_shape", [4, 28, 28]), mention=["input_shape"])
model_case("class count differs from the weights", with_field("classes", ["a", "b"]), mention=["shape mismatch"])

header_length = struct.unpack("<Q", WEIGHTS[:8])[0]
header = json.loads(WEIGHTS[8:8 + header_length])
data = WEIGHTS[8 + header_length:]


def safetensors(header_object, data_bytes, sign=True):
    """A safetensors file; with `sign`, carrying Fovea's digest as its writer does."""
    header_object = json.loads(json.dumps(header_object))
    metadata = header_object.get("__metadata__", {}) or {}
    metadata.pop("fovea_sha256", None)
    if sign:
        header_object["__metadata__"] = metadata
        unsigned = canonical_header(header_object)
        metadata["fovea_sha256"] = hashlib.sha256(unsigned.encode() + data_bytes).hexdigest()
    text = canonical_header(header_object).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data_bytes


def canonical_header(h):
    """The header as Fovea writes it: metadata first, tensors by name, fields in a fixed order, no spaces."""
    parts = []
    metadata = {k: v for k, v in (h.get("__metadata__") or {}).items()}
    if "fovea_sha256" in metadata and metadata["fovea_sha256"] is None:
        del metadata["fovea_sha256"]
    if metadata:
        parts.append('"__metadata__":{' + ",".join(json.dumps(k, ensure_ascii=False) + ":" + json.dumps(metadata[k], ensure_ascii=False)
                                                   for k in sorted(metadata)) + "}")
    for name in sorted(k for k in h if k != "__metadata__"):
        t = h[name]
        parts.append(json.dumps(name) + ':{"dtype":%s,"shape":[%s],"data_offsets":[%d,%d]}'
                     % (json.dumps(t["dtype"]), ",".join(str(d) for d in t["shape"]), t["data_offsets"][0], t["data_offsets"][1]))
    return "{" + ",".join(parts) + "}"


def weights_case(label, weights, mention=(), status=65):
    model_case(label, weights=weights, status=status, mention=mention)


weights_case("empty weights file", b"", ["bytes"])
weights_case("7-byte weights file", b"\x08" * 7, ["bytes"])
weights_case("header length 2^63", struct.pack("<Q", 1 << 63) + WEIGHTS[8:], ["header"])
weights_case("header length 90 MB in a small file", struct.pack("<Q", 90_000_000) + WEIGHTS[8:], ["header"])
big = json.loads(json.dumps(header))
first = sorted(k for k in big if k != "__metadata__")[0]
big[first]["shape"] = [1 << 40]
weights_case("tensor shape 2^40", safetensors(big, data), [first])
weights_case("header nested 100,000 deep",
             struct.pack("<Q", 200_002) + b"{" + b"[" * 100_000 + b"]" * 100_000 + b"}", ["header"])
weights_case("1 MB of random bytes", os.urandom(1 << 20), ["afetensors"])
many = dict(header)
for i in range(50_000):  # a 3.6 MB header, under the 4 MiB limit
    many["stray.%05d" % i] = {"dtype": "F32", "shape": [0], "data_offsets": [len(data), len(data)]}
weights_case("50,000 empty stray tensors, correctly signed", safetensors(many, data), ["unexpected key", "and 49980 more"])
many["stray.50000"] = {"dtype": "F32", "shape": [0], "data_offsets": [len(data), len(data)]}
for i in range(50_001, 80_000):
    many["stray.%05d" % i] = many["stray.50000"]
weights_case("80,000 empty stray tensors: a header over the limit", safetensors(many, data), ["header"])
objects = b"{" + b",".join(b'"%05x":{}' % i for i in range(370_000)) + b"}"  # 4.07 MB of empty JSON objects
objects += b" " * ((8 - (8 + len(objects)) % 8) % 8)
weights_case("370,000 empty objects in a header", struct.pack("<Q", len(objects)) + objects, ["afetensors"])
flipped = bytearray(WEIGHTS)
flipped[len(flipped) - 101] ^= 0x04
weights_case("one flipped data byte", bytes(flipped), ["damaged"])
flipped = bytearray(WEIGHTS)
position = WEIGHTS.index(b'"shape":[') + 9
flipped[position] = ord("9") if flipped[position] != ord("9") else ord("8")
weights_case("one changed shape digit", bytes(flipped), ["afetensors"])
weights_case("weights cut in half", WEIGHTS[: len(WEIGHTS) // 2], ["afetensors"])
weights_case("weights that are a FIFO", "fifo", ["not a regular file"])
weights_case("weights that are a folder", "dir", ["not a regular file"])
nan = bytearray(data)
nan[0:4] = struct.pack("<f", float("nan"))
weights_case("a NaN weight, correctly signed", safetensors(header, bytes(nan)), ["nan"])
huge = b"".join(struct.pack("<f", 3e38) for _ in range(len(data) // 4))
weights_case("finite weights whose outputs overflow", safetensors(header, huge), ["no answer"])

# ---------------------------------------------------------------- images (predict with the valid model)


def png_chunk(kind, payload, length=None):
    body = kind + payload
    return struct.pack(">I", len(payload) if length is None else length) + body + struct.pack(">I", zlib.crc32(body))


def png(width, height, extra=b"", idat=None, grey=True):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0 if grey else 2, 0, 0, 0)
    if idat is None:
        row = b"\x00" + bytes(width * (1 if grey else 3))
        idat = zlib.compress(row * height)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def image_case(label, name, content, status=65, mention=()):
    p = path("images", name)
    place(p, content)
    case("image", label, ["predict", "--weights", "{D}/model/model.safetensors", "{D}/images/" + name], status,
         *(list(mention) + (["{D}/images/" + name] if status not in (0, None) else [])))


image_case("tEXt chunk claiming 2 GB", "text-claim.png",
           b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
           + struct.pack(">I", 0x7FFF_FFF0) + b"tEXtkey\x00value", mention=["claims"])
image_case("zTXt chunk inflating to 256 MB (a valid image)", "ztxt-bomb.png",
           png(28, 28, png_chunk(b"zTXt", b"comment\x00\x00" + zero_bomb(b"", 256, "zlib"))), status=0)
image_case("iTXt chunk inflating to 256 MB (a valid image)", "itxt-bomb.png",
           png(28, 28, png_chunk(b"iTXt", b"comment\x00\x01\x00\x00\x00" + zero_bomb(b"", 256, "zlib"))), status=0)
image_case("IDAT of a 100000 × 100000 image", "huge.png", png(100_000, 100_000, idat=zlib.compress(b"\x00" * 1000)),
           mention=["pixels"])
image_case("IDAT inflating past the image", "idat-bomb.png", png(28, 28, idat=zero_bomb(b"", 64, "zlib")),
           status=None)
image_case("truncated PNG", "truncated.png", png(28, 28)[:60])
image_case("JPEG claiming 65500 × 65500", "huge.jpg",
           b"\xff\xd8\xff\xc0\x00\x0b\x08\xff\xdc\xff\xdc\x01\x01\x11\x00\xff\xc4\x00\x14\x00\x01" + bytes(16)
           + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + bytes(100) + b"\xff\xd9", mention=["pixels"])
image_case("JPEG cut after its header", "truncated.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
image_case("random bytes named .png", "random.png", os.urandom(5000))
image_case("empty image file", "empty.png", b"")
image_case("image that is a FIFO", "fifo.png", "fifo", mention=["not a regular file"])
image_case("image that is a folder", "folder.png", "dir")

# ---------------------------------------------------------------- IDX and gzip (train --dataset mnist)
IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


def idx(dimensions, payload=None):
    header = bytes([0, 0, 8, len(dimensions)]) + b"".join(struct.pack(">I", d) for d in dimensions)
    if payload is None:
        count = 1
        for d in dimensions:
            count *= d
        payload = bytes(count)
    return header + payload


def mnist_case(label, files, mention=(), status=65, extra=(), names_split=False):
    name = "d%02d" % len(CASES)
    d = folder("mnist", name)
    defaults = {IMAGES: idx([64, 28, 28]), LABELS: idx([64]), TEST_IMAGES: idx([16, 28, 28]), TEST_LABELS: idx([16])}
    defaults.update(files)
    for file, content in defaults.items():
        if content is None:
            continue
        if content == "fifo":
            fifo(os.path.join(d, file))
        else:
            write(os.path.join(d, file), content)
    # The first file given is the one the error must name, unless the problem is a split rather than a file.
    shown = ["{D}/mnist/%s/%s" % (name, next(iter(files)))] if status != 0 and not names_split else []
    case("IDX / gzip", label, ["train", "--dataset", "mnist", "--data-dir", "{D}/mnist/" + name, "--epochs", "1",
                               "--batch-size", "16", "--quiet"] + list(extra), status, *(list(mention) + shown))
    return name


mnist_case("gzip bomb of 1 GB zeros (no IDX header)", {IMAGES + ".gz": zero_bomb(b"", 1024), IMAGES: None},
           ["magic"])
mnist_case("gzip bomb whose header declares 47 MB, stream 1 GB",
           {IMAGES + ".gz": zero_bomb(idx([60000, 28, 28], b""), 1024), IMAGES: None}, ["more than"])
mnist_case("header declares 400,000 images (313 MB), 1 MB follow",
           {IMAGES + ".gz": gzip_stream([idx([400_000, 28, 28], os.urandom(1 << 20))]), IMAGES: None}, ["truncated"])
mnist_case("header declares 4M images (3 GB), 1 MB follow",
           {IMAGES + ".gz": gzip_stream([idx([4_000_000, 28, 28], os.urandom(1 << 20))]), IMAGES: None}, ["compressed bytes"])
mnist_case("header declares 65535³ bytes", {IMAGES: idx([65535, 65535, 65535], b"")}, ["too large"])
mnist_case("header declaring more than the gzip can hold",
           {IMAGES + ".gz": gzip_stream([idx([3_000_000, 28, 28], b"")]), IMAGES: None}, ["compressed bytes"])
mnist_case("gzip cut short", {IMAGES + ".gz": gzip_stream([idx([64, 28, 28])])[:-20], IMAGES: None}, ["truncated"])
mnist_case("gzip followed by garbage", {IMAGES + ".gz": gzip_stream([idx([64, 28, 28])]) + b"garbage", IMAGES: None},
           ["unexpected data"])
mnist_case("uncompressed file cut short", {IMAGES: idx([64, 28, 28])[:5000]}, ["truncated"])
with_fifo = mnist_case("images file that is a FIFO", {IMAGES: "fifo"}, ["not a regular file"])
# `fovea datasets` reports each dataset it cannot use and goes on (exit 0): it must not wait on the FIFO.
case("IDX / gzip", "fovea datasets over a FIFO", ["datasets", "--data-dir", "{D}/mnist/" + with_fifo], 0)
mnist_case("label 200 of 10 classes", {LABELS: idx([64], bytes([200]) * 64)}, ["200"])
mnist_case("63 labels for 64 images", {LABELS: idx([63])}, ["63"])
mnist_case("rank-255 header of ones", {IMAGES: idx([1] * 255)}, ["shape"])
mnist_case("empty test split", {TEST_IMAGES: idx([0, 28, 28]), TEST_LABELS: idx([0])}, ["test split", "no sample"],
           names_split=True)
mnist_case("magic of a float IDX", {IMAGES: bytes([0, 0, 0x0D, 3]) + bytes(12)}, ["0x08"])

# Outputs: evaluate --output must replace only a regular file (as root, replacing a device node destroyed it).
valid = folder("mnist", "valid")
for file, content in {IMAGES: idx([64, 28, 28]), LABELS: idx([64]), TEST_IMAGES: idx([16, 28, 28]), TEST_LABELS: idx([16])}.items():
    write(os.path.join(valid, file), content)
for label, kind in [("evaluate --output at a FIFO", "fifo"), ("evaluate --output at a folder", "dir")]:
    target = path("outputs", "report-%s.json" % kind)
    place(target, kind)
    case("output", label, ["evaluate", "--weights", "{D}/model/model.safetensors", "--dataset", "mnist", "--data-dir",
                           "{D}/mnist/valid", "--output", "{D}/outputs/report-%s.json" % kind], 1,
         "{D}/outputs/report-%s.json" % kind, "not a regular file")

# ---------------------------------------------------------------- CIFAR-10 binary release


def cifar_case(label, files, mention=(), status=65):
    name = "c%02d" % len(CASES)
    d = folder("cifar", name)
    record = bytes([1]) + bytes(3072)
    defaults = {"data_batch_%d.bin" % i: record * 4 for i in range(1, 6)}
    defaults["test_batch.bin"] = record * 4
    defaults.update(files)
    for file, content in defaults.items():
        if content == "fifo":
            fifo(os.path.join(d, file))
        else:
            write(os.path.join(d, file), content)
    case("CIFAR", label, ["train", "--model", "resnet20", "--dataset", "cifar10", "--data-dir", "{D}/cifar/" + name,
                          "--epochs", "1", "--quiet"], status, *(list(mention) + ["{D}/cifar/%s/%s" % (name, next(iter(files)))]))


cifar_case("record cut short", {"data_batch_2.bin": (bytes([1]) + bytes(3072)) * 4 + bytes(100)}, ["records"])
cifar_case("label 10 of 10 classes", {"data_batch_3.bin": bytes([10]) + bytes(3072)}, ["label 10"])
cifar_case("empty batch file", {"data_batch_1.bin": b""}, ["records"])
cifar_case("batch file that is a FIFO", {"data_batch_4.bin": "fifo"}, ["not a regular file"])
cifar_case("class-name file that is a FIFO", {"batches.meta.txt": "fifo"}, ["not a regular file"])

# ---------------------------------------------------------------- image folders (train --dataset imagefolder)
GOOD_PNG = open(IMAGE, "rb").read()


def folder_case(label, layout, mention=(), status=65, extra=()):
    name = "f%02d" % len(CASES)
    for relative, content in layout.items():
        p = path("folders", name, relative)
        place(p, content)
    case("image folder", label, ["train", "--dataset", "imagefolder", "--data-dir", "{D}/folders/" + name, "--image-size",
                                 "28", "--epochs", "1", "--batch-size", "4", "--quiet"] + list(extra), status, *mention)


good = {"train/a/1.png": GOOD_PNG, "train/b/1.png": GOOD_PNG, "val/a/1.png": GOOD_PNG, "val/b/1.png": GOOD_PNG}
folder_case("every training image damaged, --skip-bad-files",
            dict(good, **{"train/a/1.png": b"junk", "train/b/1.png": b"junk"}), ["no sample"], extra=["--skip-bad-files"])
folder_case("every validation image damaged, --skip-bad-files",
            dict(good, **{"val/a/1.png": b"junk", "val/b/1.png": b"junk"}), ["no sample"], extra=["--skip-bad-files"])
folder_case("a FIFO among the images", dict(good, **{"train/a/2.png": "fifo"}), ["not a regular file", "2.png"])
folder_case("a folder named like an image", dict(good, **{"train/b/2.png": "dir"}), ["2.png"])
folder_case("an empty class folder", dict(good, **{"train/c": "dir"}), ["train/c"])
folder_case("no class folders", {"train/x.png": GOOD_PNG, "val/a/1.png": GOOD_PNG}, ["class"])

# ---------------------------------------------------------------- flags and checkpoints
BASE = ["train", "--dataset", "mnist", "--data-dir", "{D}/mnist/none", "--quiet"]
for flags, mention in [(["--batch-size", str(1 << 62)], "--batch-size"), (["--epochs", str((1 << 63) - 1)], "--epochs"),
                       (["--image-size", "65537"], "--image-size"), (["--gamma", "nan"], "--gamma"),
                       (["--gamma", "-1"], "--gamma"), (["--accumulate", str(1 << 62)], "--accumulate"),
                       (["--milestones", str(1 << 62)], "--milestones"), (["--momentum", "nan"], "--momentum")]:
    case("flag", " ".join(flags), BASE + flags, 64, mention)
case("flag", "models --classes 100000000", ["models", "--classes", "100000000"], 64, "--classes")
case("flag", "bench --model lenet5 --batch-size 2^62", ["bench", "--model", "lenet5", "--batch-size", str(1 << 62)], 64,
     "--batch-size")
case("flag", "evaluate --batch-size 2^62", ["evaluate", "--weights", "{D}/model/model.safetensors", "--data-dir",
                                            "{D}/mnist/none", "--batch-size", str(1 << 62)], 64, "--batch-size")
case("flag", "predict --top-k 0", ["predict", "--weights", "{D}/model/model.safetensors", IMAGE_ARG, "--top-k", "0"], 64,
     "--top-k")
case("flag", "bench --batch-size without --model", ["bench", "--batch-size", "8"], 64, "--model")
for label, content in [("checkpoint that is a FIFO", "fifo"), ("checkpoint that is a folder", "dir"),
                       ("checkpoint of random bytes", os.urandom(3000))]:
    name = "k%02d" % len(CASES)
    p = path("runs", name, "checkpoint-last.safetensors")
    place(p, content)
    case("checkpoint", label, ["train", "--resume", "{D}/runs/" + name, "--quiet"], 65, "{D}/runs/%s/checkpoint-last.safetensors" % name)

# ---------------------------------------------------------------- ONNX models
# A minimal protobuf writer (field numbers from onnx.proto), so the corpus needs nothing beyond the standard library.
def varint(n):
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def field(number, payload):
    """A length-delimited field (bytes) or a varint field (int)."""
    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def onnx_tensor(name, dims, raw=None, data_type=1, external=None):
    body = b"".join(field(1, d) for d in dims) + field(2, data_type) + field(8, name.encode())
    if raw is not None:
        body += field(9, raw)
    if external is not None:
        body += b"".join(field(13, field(1, k.encode()) + field(2, v.encode())) for k, v in external) + field(14, 1)
    return body


def onnx_node(op, inputs, outputs, name, attributes=b""):
    return (b"".join(field(1, i.encode()) for i in inputs) + b"".join(field(2, o.encode()) for o in outputs)
            + field(3, name.encode()) + field(4, op.encode()) + attributes)


def value_info(name, dims):
    shape = b"".join(field(1, field(1, d)) for d in dims)
    return field(1, name.encode()) + field(2, field(1, field(1, 1) + field(2, shape)))


def onnx_model(nodes, initializers, inputs=(("input", [1, 1, 28, 28]),), outputs=(("logits", [1, 10]),)):
    graph = (b"".join(field(1, n) for n in nodes) + field(2, b"g") + b"".join(field(5, t) for t in initializers)
             + b"".join(field(11, value_info(*i)) for i in inputs) + b"".join(field(12, value_info(*o)) for o in outputs))
    return field(1, 8) + field(7, graph) + field(8, field(2, 17))


def floats(count):
    return struct.pack("<%df" % count, *[(i % 7) * 0.1 for i in range(count)])


# A valid Gemm classifier on flattened 28×28 images: weight 'fc.weight' (10, 784), bias 'fc.bias' (10).
FC = [onnx_node("Flatten", ["input"], ["flat"], "flatten"), onnx_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], "fc",
      field(5, field(1, b"transB") + field(3, 1) + field(20, 2)))]
GOOD = [onnx_tensor("fc.weight", [10, 784], floats(7840)), onnx_tensor("fc.bias", [10], floats(10))]


def onnx_case(label, data, mention, name=None, status=65):
    name = name or "o%02d" % len(CASES)
    p = path("onnx", name, "model.onnx")
    if data == "fifo":
        fifo(p)
    else:
        write(p, data)
    case("onnx", label, ["predict", "--weights", "{D}/onnx/%s/model.onnx" % name, IMAGE_ARG], status, "model.onnx", *mention)


VALID_ONNX = onnx_model(FC, GOOD)
onnx_case("a valid Gemm model (control)", VALID_ONNX, [], status=0)
onnx_case("truncated protobuf", VALID_ONNX[: len(VALID_ONNX) // 3], ["protobuf"])
onnx_case("1 MB of random bytes", os.urandom(1 << 20), [])
onnx_case("a length past the end of the file", field(1, 8)[:2] + varint(7 << 3 | 2) + varint(1 << 40), ["protobuf"])
onnx_case("dims 2^31 × 2^31", onnx_model(FC, [onnx_tensor("fc.weight", [1 << 31, 1 << 31]), GOOD[1]]), ["fc.weight", "limit"])
onnx_case("raw_data of the wrong size", onnx_model(FC, [onnx_tensor("fc.weight", [10, 784], floats(100)), GOOD[1]]),
          ["fc.weight", "raw_data"])
onnx_case("a cycle", onnx_model([onnx_node("Relu", ["b"], ["a"], "first"), onnx_node("Relu", ["a"], ["b"], "second")], []),
          ["cycle"])
onnx_case("an input used before it is defined", onnx_model([onnx_node("Relu", ["ghost"], ["logits"], "reader")], []),
          ["reader", "ghost"])
nested = b""
for _ in range(3334):
    nested = field(1, field(5, field(6, nested)))
onnx_case("nesting 10,000 deep", field(7, nested), ["protobuf"])
for label, location in [("external data ../../etc/passwd", "../../etc/passwd"), ("external data at /etc/passwd", "/etc/passwd"),
                        ("external data through a symlink out", "link.bin")]:
    name = "o%02d" % len(CASES)
    if location == "link.bin":
        write(path("onnx", name, "outside", "x"), b"")
        os.makedirs(path("onnx", name), exist_ok=True)
        link = path("onnx", name, "link.bin")
        if os.path.lexists(link):
            os.remove(link)
        os.symlink("/etc/passwd", link)
    bias = onnx_tensor("fc.bias", [10], external=[("location", location), ("length", "40")])
    onnx_case(label, onnx_model(FC, [GOOD[0], bias]), ["fc.bias", "outside" if location == "link.bin" else "leaves"], name=name)
onnx_case("an unsupported operator", onnx_model([onnx_node("Hardmax", ["input"], ["logits"], "odd")], []), ["'odd'", "Hardmax"])
onnx_case("a model that is a FIFO", "fifo", ["not a regular file"])
onnx_case("a NaN weight", onnx_model(FC, [onnx_tensor("fc.weight", [10, 784], struct.pack("<f", float("nan")) + floats(7839)), GOOD[1]]),
          ["fc.weight", "non-finite"])

with open(path("manifest.json"), "w") as f:
    json.dump(CASES, f, indent=1)
print("%d cases in %s" % (len(CASES), path("manifest.json")))


def peak_kilobytes(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_all(binary, timeout=20.0, memory_limit_mb=300):
    import subprocess
    import time
    table = {}
    for entry in CASES:
        arguments = [a.replace("{D}", ROOT) for a in entry["arguments"]]
        started = time.time()
        with open(path("stderr"), "wb") as err:
            process = subprocess.Popen([binary] + arguments, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            peak, hung = 0, False
            while process.poll() is None:
                peak = max(peak, peak_kilobytes(process.pid))
                if time.time() - started > timeout:
                    process.kill()
                    process.wait()
                    hung = True
                    break
                time.sleep(0.002)
        message = open(path("stderr"), errors="replace").read()
        status = process.returncode
        expected = [entry["status"]] if entry["status"] is not None else [0, 65]
        mentions = [m.replace("{D}", ROOT) for m in entry["mention"]]
        if hung:
            outcome = "hung"
        elif status < 0:
            outcome = "crashed"
        elif peak / 1024 > memory_limit_mb:
            outcome = "memory"
        elif status in expected and all(m in message for m in mentions):
            outcome = "as expected"
        else:
            outcome = "other"
        row = table.setdefault(entry["kind"], {})
        row[outcome] = row.get(outcome, 0) + 1
        if outcome != "as expected":
            print("  %-11s [%s] %s: exit %s, %.0f MB, %.1f s: %s" % (outcome, entry["kind"], entry["label"], status,
                  peak / 1024, time.time() - started, message.strip().splitlines()[-1][:160] if message.strip() else ""))
    outcomes = ["as expected", "crashed", "hung", "memory", "other"]
    print("%-14s %6s" % ("kind", "cases") + "".join("%13s" % o for o in outcomes))
    for kind, row in table.items():
        print("%-14s %6d" % (kind, sum(row.values())) + "".join("%13d" % row.get(o, 0) for o in outcomes))
    total = {o: sum(r.get(o, 0) for r in table.values()) for o in outcomes}
    print("%-14s %6d" % ("all", len(CASES)) + "".join("%13d" % total[o] for o in outcomes))


if RUN:
    run_all(RUN)
