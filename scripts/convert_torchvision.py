#!/usr/bin/env python3
"""Convert torchvision weights into a Fovea model file: NAME.safetensors plus the sidecar NAME.json.

Usage: convert_torchvision.py --model NAME [--weights ENUM] [--checkpoint FILE.pth | --random-init [--seed N]]
                              [--num-classes N] [--check-input-output IO.safetensors] --output NAME.safetensors

The weights file is the model's float32 state_dict under torchvision's keys (num_batches_tracked stays int64, as
torchvision keeps it); the sidecar (Fovea's ModelSidecar, "fovea-model/1") names the architecture, the classes, the
input shape and the normalisation, taken from the weights' own transforms.

Where the weights come from:
  (default)           torchvision.models.get_model(NAME, weights=ENUM). ENUM is a member such as IMAGENET1K_V2 or a
                      full name such as ResNet50_Weights.IMAGENET1K_V2 (default: DEFAULT). If the weights are not in
                      torch's cache (~/.cache/torch/hub/checkpoints, or $TORCH_HOME) torchvision downloads them.
  --checkpoint FILE   a state dict, or a whole model saved with torch.save; a dict with a "state_dict" or "model" entry
                      is unwrapped. A file that is not plain tensors is unpickled in full: convert only trusted files.
                      ENUM then only chooses the transforms and class names written to the sidecar; torchvision's
                      own files (from its cache, named as downloaded, e.g. resnet50-11ad3fa6.pth) are recognised.
  --random-init       torchvision's initialisation under --seed, batch-norm statistics and affine parameters
                      randomised too: for Fovea's parity tests; nothing is downloaded.

--check-input-output also writes "input" (2, 3, S, S) from torch.randn under the seed and "logits" (eval mode) so a
test can compare Fovea's logits on the same input.

GoogLeNet is written without its auxiliary heads (Fovea's googlenet has none); Inception v3 keeps AuxLogits. The
trained GoogLeNet and Inception v3 weights expect torchvision's transform_input (an internal re-normalisation that
Fovea does not have): it is folded into the sidecar, whose mean and std become 0.5, which is the same arithmetic.
A state-dict checkpoint of these two is taken to be for transform_input=False unless it is torchvision's own file;
a whole saved model says itself.

Exit status: 0 done, 64 usage (unknown model, missing output folder), 65 bad checkpoint, 69 torch missing or the
weights not obtainable, 73 cannot write.
Example: scripts/convert_torchvision.py --model resnet50 --weights IMAGENET1K_V2 --output resnet50.safetensors
"""
import argparse, json, os, sys, tempfile

ARCHITECTURES = ["alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
                 "googlenet", "inception_v3", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                 "resnext50_32x4d", "wide_resnet50_2", "mobilenet_v2",
                 "mobilenet_v3_small", "mobilenet_v3_large"] + [f"efficientnet_b{i}" for i in range(8)]


class Failure(Exception):
    """A reported error: message and exit status (sysexits), never a traceback."""
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors too: exit 64 with this script's prefix (not 2)
        raise Failure(64, f"{message} (--help for usage)")


def build(torch, torchvision, name, weights, num_classes, random_init):
    """The model as Fovea's registry has it; `weights` None gives torchvision's random initialisation."""
    options = {} if num_classes is None else {"num_classes": num_classes}
    if name == "googlenet":
        options.update(aux_logits=False)  # with weights, torchvision drops the aux heads it loaded
        if weights is None:
            options.update(init_weights=True)  # explicit: silences torchvision's FutureWarning
    if name == "inception_v3" and weights is None:
        # Torchvision's own init (truncated normal, std up to 0.1) gives logits around 1e13 under random batch norm,
        # useless for a parity test; PyTorch's default init is random too and keeps them finite and small.
        options.update(init_weights=False)
    model = torchvision.models.get_model(name, weights=weights, **options)
    if random_init:
        # Non-trivial batch-norm state, so that eval mode in a parity test exercises it (not identity 0/1 values).
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 1.5)
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.2, 0.2)
                    module.num_batches_tracked.fill_(7)
    return model


def read_checkpoint(torch, path, name):
    """The state dict in a .pth file, and the saved model's transform_input (False for a bare state dict)."""
    try:
        try:  # plain tensors first: unpickling in full runs whatever code the file names
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            if "Weights only load failed" not in str(error):
                raise
            print(f"convert_torchvision: {path} is not plain tensors; unpickling it in full", file=sys.stderr)
            saved = torch.load(path, map_location="cpu", weights_only=False)
    except OSError as error:
        raise Failure(65, f"cannot read checkpoint {path}: {error.strerror or error}")
    except Exception as error:  # torch reports a text file as e.g. KeyError: 101, hence the type in the message
        reason = (str(error).splitlines() or [""])[0][:300]
        raise Failure(65, f"cannot read checkpoint {path}: not a torch.save file? ({type(error).__name__}: {reason})")
    if isinstance(saved, dict):
        saved = saved.get("state_dict", saved.get("model", saved))
    transform_input = bool(getattr(saved, "transform_input", False))
    if isinstance(saved, torch.nn.Module):
        saved = saved.state_dict()
    if not isinstance(saved, dict) or not all(isinstance(v, torch.Tensor) for v in saved.values()):
        raise Failure(65, f"{path} holds a {type(saved).__name__}, not a state dict or a model")
    if saved and all(key.startswith("module.") for key in saved):  # saved from DataParallel
        saved = {key[len("module."):]: value for key, value in saved.items()}
    if name == "googlenet":  # Fovea's googlenet has no auxiliary heads
        saved = {key: value for key, value in saved.items() if not key.startswith(("aux1.", "aux2."))}
    return saved, transform_input


def load(model, state, path):
    """Loads `state` strictly, reporting missing, unexpected and mis-shaped keys (the first 20 of each)."""
    expected = model.state_dict()
    # Torchvision's own older .pth files predate num_batches_tracked; a fresh counter (0) is what torch itself fills in.
    state = dict(state, **{key: value.clone() for key, value in expected.items()
                           if key.endswith("num_batches_tracked") and key not in state})
    problems, counts = [], []
    for label, keys in (("missing", [k for k in expected if k not in state]),
                        ("unexpected", [k for k in state if k not in expected]),
                        ("mis-shaped", [f"{k} {tuple(state[k].shape)} (model {tuple(v.shape)})"
                                        for k, v in expected.items() if k in state and state[k].shape != v.shape])):
        counts.append(len(keys))
        if keys:
            problems.append(f"{len(keys)} {label}: " + ", ".join(keys[:20]) + (", …" if len(keys) > 20 else ""))
    if problems:
        # Only the classifier's weight and bias differing: most likely a fine-tuned model with other classes.
        hint = " (another class count? pass --num-classes)" if counts[:2] == [0, 0] and counts[2] <= 2 else ""
        raise Failure(65, f"{path} does not match the model{hint}; " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def write_atomically(path, data):
    """Temporary file in the same folder, fsync, rename: readers see the old file or the whole new one."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".convert-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        umask = os.umask(0); os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 would otherwise survive the rename
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def convert(args):
    if args.model not in ARCHITECTURES:
        raise Failure(64, f"'{args.model}' is not a Fovea zoo model with torchvision weights; known: "
                      + ", ".join(ARCHITECTURES))
    if not args.output.endswith(".safetensors"):
        raise Failure(64, f"--output {args.output} must end in .safetensors (the sidecar goes to NAME.json)")
    for path in filter(None, (args.output, args.check_input_output)):
        if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise Failure(64, f"output folder {os.path.dirname(os.path.abspath(path))} does not exist")
    if args.checkpoint and args.random_init:
        raise Failure(64, "--checkpoint and --random-init exclude each other")
    if args.num_classes is not None and not (args.checkpoint or args.random_init):
        raise Failure(64, "--num-classes needs --checkpoint or --random-init (trained weights have 1,000 classes)")
    if args.num_classes is not None and args.num_classes < 1:
        raise Failure(64, f"--num-classes {args.num_classes} must be at least 1")
    try:
        import torch, torchvision
        from safetensors.torch import save as safetensors_bytes
    except ImportError as error:
        raise Failure(69, f"needs torch, torchvision and safetensors ({error})")

    enum = torchvision.models.get_model_weights(args.model)
    # Torchvision's own file from its cache (e.g. resnet50-11ad3fa6.pth) is recognised by name: its transforms and, for
    # GoogLeNet and Inception v3, the transform_input that torchvision builds them with for those weights.
    known = [w for w in enum if args.checkpoint and os.path.basename(w.url) == os.path.basename(args.checkpoint)]
    args.weights = args.weights or (known[0].name if known else "DEFAULT")
    try:  # the enum names the source (default mode) and, in every mode, the sidecar's transforms and classes
        if "." in args.weights:
            weights = torchvision.models.get_weight(args.weights)
        else:
            weights = enum[args.weights]
    except (KeyError, ValueError, AttributeError):
        members = ", ".join(enum.__members__)
        raise Failure(64, f"--weights {args.weights}: not weights of {args.model}; members: {members}")
    if weights not in enum:
        raise Failure(64, f"--weights {args.weights} are not weights of {args.model}")

    torch.manual_seed(args.seed)
    transform_input = False
    if args.checkpoint:
        state, transform_input = read_checkpoint(torch, args.checkpoint, args.model)
        model = build(torch, torchvision, args.model, None, args.num_classes, random_init=False)
        load(model, state, args.checkpoint)
        transform_input = transform_input or (bool(known) and args.model in ("googlenet", "inception_v3"))
        if args.model in ("googlenet", "inception_v3") and not transform_input:
            print("convert_torchvision: taking the checkpoint to be for transform_input=False (normalisation as the "
                  "weights' transforms); save the whole model to carry that flag", file=sys.stderr)
    elif args.random_init:
        model = build(torch, torchvision, args.model, None, args.num_classes, random_init=True)
    else:
        try:  # from torch's cache, else downloaded by torchvision
            model = build(torch, torchvision, args.model, weights, None, random_init=False)
        except Exception as error:
            raise Failure(69, f"cannot get {weights} ({type(error).__name__}: {str(error)[:300]}); "
                          "without internet, put the .pth file in torch's cache or pass --checkpoint")
        transform_input = bool(getattr(model, "transform_input", False))
    transforms = weights.transforms()
    mean, std = [float(v) for v in transforms.mean], [float(v) for v in transforms.std]
    if transform_input:
        # transform_input maps ImageNet-normalised input to (pixel - 0.5) / 0.5; Fovea normalises once, so the sidecar
        # asks for that normalisation and the model runs without the re-normalisation.
        model.transform_input = False
        mean, std = [0.5] * 3, [0.5] * 3
    model.eval()

    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    state = {key: value.float() if value.is_floating_point() else value for key, value in state.items()}
    if args.num_classes is not None and args.num_classes != 1000:
        classes = [f"class_{i}" for i in range(args.num_classes)]
    else:
        classes = list(weights.meta["categories"])
    crop = int(transforms.crop_size[0])
    sidecar = {
        "format": "fovea-model/1", "architecture": args.model, "classes": classes, "input_shape": [3, crop, crop],
        "dataset": "random-init" if args.random_init else "imagenet" if len(classes) == 1000 else "custom",
        "mean": mean, "std": std,
        "preprocessing": {"resize_size": int(transforms.resize_size[0]), "crop_size": crop,
                          "interpolation": transforms.interpolation.value,
                          "weights": f"{type(weights).__name__}.{weights.name}"},
    }
    if transform_input:
        sidecar["preprocessing"]["transform_input"] = "folded into mean and std"
    sidecar_path = args.output[:-len(".safetensors")] + ".json"
    try:
        write_atomically(args.output, safetensors_bytes(state, metadata={"format": "pt", "architecture": args.model}))
        write_atomically(sidecar_path, (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode())
        if args.check_input_output:
            torch.manual_seed(args.seed)  # the input depends on the seed alone, not on how the model was built
            images = torch.randn(2, 3, crop, crop)
            with torch.no_grad():
                logits = model(images).float()
            write_atomically(args.check_input_output,
                             safetensors_bytes({"input": images.contiguous(), "logits": logits.contiguous()}))
    except OSError as error:
        raise Failure(73, f"cannot write: {error}")
    parameters = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.output} ({len(state)} tensors, {parameters:,} parameters) and {sidecar_path} "
          f"({args.model}, {len(classes)} classes, input 3×{crop}×{crop}, mean {[round(v, 4) for v in mean]}, "
          f"std {[round(v, 4) for v in std]})")


def main():
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Fovea zoo / torchvision name, e.g. resnet50")
    parser.add_argument("--weights", help="weights enum member or full name (default DEFAULT)")
    parser.add_argument("--checkpoint", help="a .pth state dict or saved model instead of torchvision's weights")
    parser.add_argument("--random-init", action="store_true", help="random weights, nothing downloaded (tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-classes", type=int, help="class count (with --checkpoint or --random-init)")
    parser.add_argument("--check-input-output", metavar="IO.safetensors", help="also write an input and its logits")
    parser.add_argument("--output", required=True, metavar="NAME.safetensors")
    try:
        convert(parser.parse_args())
    except Failure as failure:
        print(f"convert_torchvision: {failure}", file=sys.stderr)
        sys.exit(failure.status)


if __name__ == "__main__":
    main()
