import CDNNL

/// oneDNN's binary primitive: `destination = a ∘ b` elementwise over plain (row-major) views of the buffers, with `b`
/// broadcast along every dimension where its size is 1. Runs on all cores, vectorised (a Swift loop runs on one core
/// while oneDNN's other threads spin).
///
/// Returns false, without running anything, when oneDNN has only its reference implementation for this broadcast
/// pattern (slower than a Swift loop); the caller then computes the result itself. The answer is cached per shape.
///
/// With `activation`, the destination is `activation(a ∘ b)`, in the same pass (an eltwise post-op).
func binaryKernel(_ algorithm: dnnl_alg_kind_t, _ a: Storage, _ aShape: [Int], _ b: Storage, _ bShape: [Int],
                  into destination: Storage, activation: Activation? = nil) throws -> Bool {
    let kind = algorithm == dnnl_binary_add ? "binary_add" : "binary_mul"
    let epilogue = Epilogue(activation: activation)
    let key = PrimitiveKey(kind: kind, values: aShape + [-1] + bShape + (epilogue.isEmpty ? [] : epilogue.keyValues))
    let primitive = try PrimitiveCache.shared.primitive(key) {
        var desc = dnnl_binary_desc_t()
        var left = try memoryDescriptor(aShape, .plain)
        var right = try memoryDescriptor(bShape, .plain)
        var output = left
        try check(dnnl_binary_desc_init(&desc, algorithm, &left, &right, &output), "dnnl_binary_desc_init(\(kind))")
        return try makePrimitiveDescriptor(&desc, epilogue: epilogue, name: kind)
    }
    guard !primitive.isReference else { return false }
    try primitive.execute([(DNNL_ARG_SRC_0, a), (DNNL_ARG_SRC_1, b), (DNNL_ARG_DST, destination)])
    return true
}

/// Below this many elements a plain loop beats a primitive call.
let binaryKernelThreshold = 16_384
